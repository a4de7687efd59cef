"""``graphnursery serve GRAPH... [--flags]``: every Config setting is a flag of the same name.

Each setting is also read from its ``GRAPHNURSERY_*`` environment variable (the usual way to
hand a container its secrets, e.g. ``GRAPHNURSERY_API_KEY``); a flag wins over its variable.
A graphnursery ``.toml`` file among the graphs may set any setting at its top level: the
variable and the flag win over it. (``GRAPH``: see ``graphnursery.sources``.)
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import trio

from .config import ENV_PREFIX, Config, parse_setting, setting_types, settings
from .errors import ConfigError, EngineFailed, GraphLoadError, StoreError
from .lifecycle import ENGINE_FAILED_EXIT
from .server import configure_logging, serve
from .sources import server_settings_of


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="graphnursery",
        description="Serve an agent graph over HTTP as asynchronous jobs.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="serve a graph")
    serve_cmd.add_argument(
        "graph", nargs="+", help=Config.__dataclass_fields__["graph"].metadata["help"]
    )
    types = setting_types()
    for f in settings():
        if f.name == "graph":
            continue
        default = "" if f.default in (dataclasses.MISSING, "") else f"default: {f.default}; "
        help_text = f"{f.metadata.get('help', '')} ({default}env {ENV_PREFIX}{f.name.upper()})"
        serve_cmd.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            metavar=types[f.name].__name__.upper(),
            help=help_text,
        )
    return parser


def config_from(argv: Sequence[str] | None, environ: Mapping[str, str]) -> Config:
    """The config ``graphnursery serve`` runs with: flags, else ``GRAPHNURSERY_*``
    variables, else defaults. Raises ConfigError naming the setting (and the variable)."""
    args = build_parser().parse_args(argv)
    graph = " ".join(args.graph)
    flags = {
        name: parse_setting(name, value)
        for name, value in vars(args).items()
        if name not in {"command", "graph"} and value is not None
    }
    return Config.from_env(environ, graph=graph, defaults=file_settings(graph), **flags)


def file_settings(graph: str) -> dict[str, Any]:
    """The server settings the ``.toml`` files among the graphs set. Raises ConfigError."""
    found = server_settings_of(graph)
    unknown = set(found) - {f.name for f in settings() if f.name != "graph"}
    if unknown:
        raise ConfigError(sorted(unknown)[0], "not a setting (in the .toml file)")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = config_from(argv, os.environ)
    except ConfigError as exc:
        print(f"graphnursery: {exc}", file=sys.stderr)
        return 2
    configure_logging(config)
    try:
        status = trio.run(serve, config)
    except GraphLoadError as exc:
        print(f"graphnursery: {exc}", file=sys.stderr)
        if exc.traceback:
            print(exc.traceback, file=sys.stderr, end="")
        return 1
    except EngineFailed as exc:
        print(f"graphnursery: {exc}", file=sys.stderr)
        return ENGINE_FAILED_EXIT
    except StoreError as exc:  # the store cannot be opened (locked, unreachable, too new)
        print(f"graphnursery: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"graphnursery: cannot listen on {config.host}:{config.port}: {exc}", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
