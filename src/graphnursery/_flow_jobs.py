"""A flow's jobs, in a worker process (see ``_worker``): loading a ``.json`` flow file, and
running one job through the flow interpreter (:mod:`graphnursery.flows`).

Like ``_worker``, it imports neither Trio nor Quart. Its replies are ``_worker``'s with the
run record's JSON text last: ``("ok", result, logs, record)`` and ``("error", type,
message, traceback, logs, record)``. A ``graph`` node calls another graph this server
serves, by name, loaded in this process on first use.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import sys
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson

from ._results import bounded, encode_result
from .flows import Flow, FlowFailed, parse_flow, run_flow_sync

Reply = tuple[Any, ...]


def is_flow_source(spec: str) -> bool:
    """Whether a graph source is a flow file (``flow.json``)."""
    return spec.endswith(".json")


def load_flow(spec: str) -> Flow:
    """Read and validate a flow file, importing its node types (FlowInvalid if it does
    not validate; its message names each node or edge at fault). Node types import from
    the working directory and the flow file's own directory, as a graph file's do."""
    path = Path(spec).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"flow file not found: {spec}")
    for directory in (str(path.parent), os.getcwd()):
        if directory not in sys.path:
            sys.path.insert(0, directory)
    return parse_flow(orjson.loads(path.read_bytes()), resolve=True)


class ServedGraphs:
    """The other graphs of the server, callable by name from a flow's ``graph`` nodes."""

    def __init__(
        self,
        sources: Mapping[str, str],
        load: Callable[[str], Any],
        make_caller: Callable[[Any], Callable[[Any], Any]],
    ) -> None:
        self._sources = dict(sources)
        self._load = load
        self._make_caller = make_caller
        self._callers: dict[str, Callable[[Any], Any]] = {}

    async def call(self, name: str, value: Any) -> Any:
        caller = self._callers.get(name)
        if caller is None:
            source = self._sources.get(name)
            if source is None:
                known = ", ".join(sorted(self._sources)) or "none"
                raise LookupError(f"no graph {name!r} is served here (served: {known})")
            if is_flow_source(source):
                flow = load_flow(source)

                async def call_flow(value: Any) -> Any:
                    from .flows import run_flow

                    return (await run_flow(flow, value, call_graph=self.call)).output

                caller = call_flow
            else:
                caller = self._make_caller(self._load(source))
            self._callers[name] = caller
        result = caller(value)
        if inspect.isawaitable(result):
            result = await result
        return result


def run_flow_job(
    flow: Flow,
    job_input: Any,
    loop: asyncio.AbstractEventLoop,
    served: ServedGraphs,
    max_result_bytes: int,
    take_logs: Callable[[], Any],
) -> Reply:
    """One job of a flow, as the worker replies it (never raises)."""
    try:
        run = run_flow_sync(flow, job_input, call_graph=served.call, loop=loop)
    except FlowFailed as exc:
        tb = "".join(traceback.format_exception(exc))
        return ("error", exc.error_type, str(exc), tb, take_logs(), encode_record(exc.record))
    except BaseException as exc:
        tb = "".join(traceback.format_exception(exc))
        return ("error", type(exc).__name__, str(exc), tb, take_logs(), None)
    try:
        result = bounded(encode_result(run.output), max_result_bytes)
    except BaseException as exc:  # not JSON, or too large: the job fails, the record stays
        tb = "".join(traceback.format_exception(exc))
        return (
            "error",
            type(exc).__name__,
            str(exc),
            tb,
            take_logs(),
            encode_record(run.record),
        )
    return ("ok", result, take_logs(), encode_record(run.record))


def encode_record(record: dict[str, Any]) -> bytes:
    """A run record's JSON text; a node output with no JSON form is kept as its repr."""
    try:
        return encode_result(record)
    except Exception:
        nodes = {
            node_id: {**entry, "output": _jsonable(entry.get("output"))}
            for node_id, entry in record.get("nodes", {}).items()
        }
        return encode_result({**record, "nodes": nodes})


def _jsonable(value: Any) -> Any:
    try:
        encode_result(value)
    except Exception:
        return repr(value)
    return value
