"""Which graphs a server serves, from what it was given, and each graph's version.

``graphnursery serve`` takes one or more graph sources (``Config.graph``, space-separated):

- ``package.module:attr`` or ``path/to/file.py:attr``: one graph, named after its module
  (``chat.py:graph`` is ``chat``);
- ``name=source``: the same, named;
- ``flow.json``: a JSON flow graph (see ``graphnursery.flows``), named by its ``name``;
- ``langgraph.json``: LangGraph's project file, as LangGraph's own tooling writes it: its
  ``graphs`` map of name -> ``path:attr`` (or ``{"path": ...}``) and its ``env`` (a dict,
  or the path of a ``.env`` file) for the graphs' worker processes;
- ``something.toml``: graphnursery's own file: a ``[graphs.NAME]`` table per graph, with
  ``source`` and any of :data:`GRAPH_SETTINGS` (the server's settings are the defaults)
  and an optional ``tag``; its top-level keys are server settings (see ``cli``).

The first graph named is the default one: ``/execute`` and ``POST /jobs`` serve it.

A graph's version is the content hash of its source: the file, or, when it belongs to a
package (a directory with ``__init__.py``), every ``.py`` file of its top-level package;
for ``package.module``, of that package. Reading files blocks: call :func:`source_version`
from a thread.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import json
import os
import re
import sys
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .errors import ConfigError

#: The settings a graph may have of its own, in a TOML file; the server's are the defaults.
GRAPH_SETTINGS = frozenset(
    {
        "workers",
        "job_timeout",
        "queue_size",
        "max_attempts",
        "max_jobs_per_worker",
        "max_worker_memory_mb",
    }
)
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_NAMED = re.compile(r"^([^=/:]+)=(.+)$")  # a name: no "/" or ":" before the "="


@dataclass(frozen=True, slots=True)
class GraphSpec:
    """One graph the server serves: its name, where its code is, and its own settings."""

    name: str
    source: str  # 'module:attr', 'file.py:attr' (absolute when it came from a file), 'f.json'
    settings: Mapping[str, Any] = field(default_factory=dict)
    tag: str = ""
    env: Mapping[str, str] = field(default_factory=dict)  # for its worker processes

    @property
    def is_flow(self) -> bool:
        return self.source.endswith(".json")


def parse_graphs(value: str) -> tuple[GraphSpec, ...]:
    """The graphs ``value`` names (see the module's doc). Raises ConfigError("graph", ...)."""
    entries = value.split()
    if not entries:
        raise ConfigError("graph", "give the graph as 'module:attr' or 'file.py:attr'")
    specs: list[GraphSpec] = []
    for entry in entries:
        specs.extend(_specs_of(entry))
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise ConfigError("graph", f"two graphs are named {spec.name!r}")
        seen.add(spec.name)
    return tuple(specs)


def _specs_of(entry: str) -> Iterator[GraphSpec]:
    named = _NAMED.match(entry)
    if named is not None:
        name, source = named.groups()
        yield GraphSpec(_checked_name(name), source)
        return
    lowered = entry.lower()
    if lowered.endswith(".toml"):
        yield from graphs_of_toml(Path(entry))
    elif Path(entry).name == "langgraph.json" or lowered.endswith("langgraph.json"):
        yield from graphs_of_langgraph_json(Path(entry))
    elif lowered.endswith(".json"):
        yield GraphSpec(flow_name(Path(entry)), entry)
    else:
        yield GraphSpec(_default_name(entry), entry)


def _checked_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise ConfigError("graph", f"graph name {name!r}: 1-64 of letters, digits, '_', '.', '-'")
    return name


def _default_name(source: str) -> str:
    """``app/chat.py:graph`` -> ``chat``; ``app.summarize:graph`` -> ``summarize``."""
    target = source.rpartition(":")[0] or source
    stem = Path(target).stem if target.endswith(".py") or "/" in target else target
    name = stem.rpartition(".")[2] or stem
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip("_.-") or "graph"
    return name[:64]


def flow_name(path: Path) -> str:
    """A flow file's ``name`` (its stem if it has none)."""
    data = _read_json(path, "flow file")
    name = data.get("name") if isinstance(data, dict) else None
    return _checked_name(name if isinstance(name, str) and name else path.stem)


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("graph", f"{what} not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError("graph", f"cannot read {what} {path}: {exc}") from None


def graphs_of_langgraph_json(path: Path) -> Iterator[GraphSpec]:
    """The graphs of a LangGraph project file (``graphs`` and ``env``; the rest, such as
    ``dependencies``, is for building images and is not read)."""
    data = _read_json(path, "langgraph.json")
    graphs = data.get("graphs") if isinstance(data, dict) else None
    if not isinstance(graphs, dict) or not graphs:
        raise ConfigError("graph", f"{path}: 'graphs' must map graph names to 'path:attr'")
    env = _env_of(data.get("env"), path.parent)
    for name, value in graphs.items():
        source = value.get("path") if isinstance(value, dict) else value
        if not isinstance(source, str) or not source:
            raise ConfigError("graph", f"{path}: graph {name!r} needs a 'path:attr'")
        yield GraphSpec(_checked_name(name), _relative_to(source, path.parent), env=env)


def _relative_to(source: str, base: Path) -> str:
    """A file source resolved against the directory of the file that named it."""
    target, sep, attr = source.rpartition(":")
    if not sep:
        target, attr = source, ""
    if target.endswith((".py", ".json")) or "/" in target:
        resolved = str((base / target).resolve())
        return f"{resolved}:{attr}" if attr else resolved
    return source


def _env_of(value: Any, base: Path) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(value, str):
        return read_dotenv(base / value)
    raise ConfigError("graph", "langgraph.json 'env' must be an object or a .env file's path")


def read_dotenv(path: Path) -> dict[str, str]:
    """``KEY=value`` lines (``export``, quotes and ``#`` comments allowed)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("graph", f"cannot read env file {path}: {exc}") from None
    env: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, raw = line.removeprefix("export ").partition("=")
        raw = raw.strip()
        if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
            raw = raw[1:-1]
        else:
            raw = raw.split(" #", 1)[0].strip()
        env[key.strip()] = raw
    return env


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError("graph", f"config file not found: {path}") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError("graph", f"cannot read {path}: {exc}") from None


def graphs_of_toml(path: Path) -> Iterator[GraphSpec]:
    data = read_toml(path)
    graphs = data.get("graphs")
    if not isinstance(graphs, dict) or not graphs:
        raise ConfigError("graph", f"{path}: no [graphs.NAME] table")
    base = path.parent
    for name, table in graphs.items():
        if not isinstance(table, dict) or not isinstance(table.get("source"), str):
            raise ConfigError("graph", f"{path}: [graphs.{name}] needs source = 'module:attr'")
        unknown = set(table) - GRAPH_SETTINGS - {"source", "tag", "env"}
        if unknown:
            raise ConfigError(
                "graph",
                f"{path}: [graphs.{name}] has unknown settings {', '.join(sorted(unknown))}; "
                f"a graph may set {', '.join(sorted(GRAPH_SETTINGS))}",
            )
        settings = {key: value for key, value in table.items() if key in GRAPH_SETTINGS}
        env = table.get("env", {})
        if not isinstance(env, dict):
            raise ConfigError("graph", f"{path}: [graphs.{name}] env must be a table")
        yield GraphSpec(
            _checked_name(name),
            _relative_to(table["source"], base),
            settings,
            tag=str(table.get("tag", "")),
            env={str(k): str(v) for k, v in env.items()},
        )


def server_settings_of(value: str) -> dict[str, Any]:
    """The server settings of the TOML files among ``value``'s sources (top-level keys)."""
    settings: dict[str, Any] = {}
    for entry in value.split():
        if entry.lower().endswith(".toml") and not _NAMED.match(entry):
            data = read_toml(Path(entry))
            settings.update({k: v for k, v in data.items() if k != "graphs"})
    keys = settings.pop("api_keys", None)
    if keys is not None:  # api_keys = {"KEY" = "WORKSPACE"}: the api_key setting's entries
        if not isinstance(keys, dict) or not all(
            isinstance(k, str) and isinstance(w, str) for k, w in keys.items()
        ):
            raise ConfigError("api_keys", 'must be a table of key = "workspace"')
        settings["api_key"] = ",".join(f"{key}={ws}" for key, ws in keys.items())
    workspaces = settings.pop("workspaces", None)
    if workspaces is not None:  # [workspaces.NAME] tables: the workspace_limits setting
        if not isinstance(workspaces, dict):
            raise ConfigError("workspaces", "must be tables: [workspaces.NAME]")
        settings["workspace_limits"] = json.dumps(workspaces)
    return settings


# -- versions --------------------------------------------------------------------------------


def source_version(source: str) -> str:
    """The content hash of a graph's source (blocking: it reads files); a flow file's is
    its definition's (``flows.flow_version``: the same whatever its key order or path, as
    for a stored flow). Raises OSError, or ValueError for a flow file that is not JSON."""
    if source.endswith(".json"):
        from .flows import flow_version

        return flow_version(orjson.loads(Path(source).read_bytes()))
    digest = hashlib.sha256()
    for path in sorted(source_files(source)):
        digest.update(str(path).encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:12]


def source_files(source: str) -> list[Path]:
    """The files a graph's version covers (see the module's doc)."""
    target = source.rpartition(":")[0] if ":" in source else source
    if target.endswith((".py", ".json")) or "/" in target or os.sep in target:
        path = Path(target).resolve()
        if not path.is_file():
            raise FileNotFoundError(f"graph file not found: {target}")
        if path.suffix != ".py" or not (path.parent / "__init__.py").is_file():
            return [path]
        top = path.parent
        while (top.parent / "__init__.py").is_file():
            top = top.parent
        return _python_files(top)
    top_name = target.partition(".")[0]
    # A top-level name: found without running anything (the workers import from the
    # working directory too).
    found = importlib.machinery.PathFinder.find_spec(top_name, [os.getcwd(), *sys.path])
    if found is None:
        raise FileNotFoundError(f"no module named {top_name!r}")
    if found.submodule_search_locations:
        files: list[Path] = []
        for location in found.submodule_search_locations:
            files.extend(_python_files(Path(location)))
        return files
    if found.origin is None or not Path(found.origin).is_file():
        raise FileNotFoundError(f"module {top_name!r} has no source file")
    return [Path(found.origin)]


def _python_files(top: Path) -> list[Path]:
    return [
        path
        for path in top.rglob("*.py")
        if not any(
            part == "__pycache__" or part.startswith(".") for part in path.relative_to(top).parts
        )
    ]
