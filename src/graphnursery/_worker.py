"""The worker-process side: load the graph once per process, call it once per job.

This module runs inside trio-parallel's spawned worker processes, so it imports neither
Trio nor Quart and keeps its own imports light. Nothing here raises into trio-parallel:
every call returns a plain tuple, because an exception the graph raises may not survive
pickling on its way back to the server.

    ("ok", result, logs)                          result is the graph's answer as JSON (bytes)
    ("error", type, message, traceback, logs)     the graph (or loading it) raised

What the graph streams meanwhile (``graphnursery.emit``, a generator's yields, LangGraph's
stream modes: ``_streaming``) goes to the server over the event channel (``_emit``).

``logs`` are the graph's own ``logging`` records during the job, as
``(level, logger name, message)``, at most ``MAX_LOG_RECORDS`` of them; the server logs
them with the job's id.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import importlib.util
import logging
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import _processes, _streaming
from ._emit import StreamSpec, channel
from ._results import bounded, encode_result

Reply = tuple[Any, ...]

DEFAULT_ATTRS = ("graph", "create_graph")

MAX_LOG_RECORDS = 200

_graph: Any = None
_call: Callable[[Any], Any] | None = None
_load_failure: Reply | None = None
_loop: asyncio.AbstractEventLoop | None = None
#: A flow file's jobs go through the flow interpreter (see ``_flow_jobs``): its replies.
_run_flow: Callable[[Any], Reply] | None = None


# -- loading -----------------------------------------------------------------------------


def split_spec(spec: str) -> tuple[str, str | None]:
    """'pkg.mod:attr' or 'path/file.py:attr' -> (target, attr or None)."""
    target, sep, attr = spec.rpartition(":")
    if not sep or not target:
        return spec, None
    return target, attr or None


def _is_file_target(target: str) -> bool:
    return target.endswith(".py") or os.sep in target or "/" in target


def _import_target(target: str) -> Any:
    if _is_file_target(target):
        path = Path(target).resolve()
        if not path.is_file():
            raise FileNotFoundError(f"graph file not found: {target}")
        module_name = f"graphnursery_graph_{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {target}")
        module = importlib.util.module_from_spec(spec)
        # Registered before running it, so dataclasses and pickling can find the module.
        sys.modules[module_name] = module
        sys.path.insert(0, str(path.parent))
        spec.loader.exec_module(module)
        return module
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    return importlib.import_module(target)


def load_graph(spec: str) -> Any:
    """Import the graph named by ``spec``; with no attribute, ``graph`` else ``create_graph()``."""
    target, attr = split_spec(spec)
    module = _import_target(target)
    if attr is not None:
        obj: Any = module
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj
    if hasattr(module, "graph"):
        return module.graph
    factory = getattr(module, "create_graph", None)
    if callable(factory):
        return factory()
    raise AttributeError(
        f"{target} has neither 'graph' nor 'create_graph'; name one as '{target}:attr'"
    )


def make_caller(graph: Any) -> Callable[[Any], Any]:
    """Pick how to call the graph: .invoke, .ainvoke, .execute, or the graph itself."""
    for method in ("invoke", "ainvoke", "execute"):
        bound = getattr(graph, method, None)
        if callable(bound):
            return bound  # type: ignore[no-any-return]
    if callable(graph):
        return graph  # type: ignore[no-any-return]
    raise TypeError(
        f"graph of type {type(graph).__name__} is not callable and has no "
        "invoke/ainvoke/execute method"
    )


# -- log capture ---------------------------------------------------------------------------


class _JobLogs(logging.Handler):
    """Keeps the log records of the job running now (bounded), to send back with its reply."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[tuple[int, str, str]] = []
        self.dropped = 0

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.records) < MAX_LOG_RECORDS:
            try:
                message = record.getMessage()
            except Exception:  # a bad format string must not fail the job
                message = str(record.msg)
            self.records.append((record.levelno, record.name, message))
        else:
            self.dropped += 1

    def take(self) -> tuple[tuple[int, str, str], ...]:
        records = self.records
        if self.dropped:
            records.append(
                (logging.WARNING, "graphnursery", f"{self.dropped} more log records dropped")
            )
        self.records, self.dropped = [], 0
        return tuple(records)


_job_logs = _JobLogs()


# -- entry points called by the server through trio-parallel ------------------------------


def _describe_exception(exc: BaseException) -> Reply:
    return (
        "error",
        type(exc).__name__,
        str(exc),
        "".join(traceback.format_exception(exc)),
    )


@dataclasses.dataclass(frozen=True)
class WorkerSettings:
    """What a worker process needs to know, sent to it once when it starts."""

    spec: str
    log_level: int = logging.INFO
    max_jobs: int = 0  # retire the process after this many jobs (0: never)
    max_rss_mb: int = 0  # retire it after a job that leaves it above this RSS (0: never)
    max_result_bytes: int = 0  # a result larger than this, as JSON, fails the job (0: any)
    #: The server process. Set in real worker processes (0 in the server's own, for the
    #: InlineExecutor): the worker then isolates its process tree (see ``_processes``).
    server_pid: int = 0
    pid_dir: str = ""  # where the server keeps its workers' pids
    events_address: str = ""  # the server's event socket ("": events kept in this process)
    env: tuple[tuple[str, str], ...] = ()  # set in the environment before the graph loads
    #: The server's graphs, (name, source): what a flow's ``graph`` nodes may call.
    graphs: tuple[tuple[str, str], ...] = ()
    #: Where LangGraph threads' checkpoints are (``sqlite:PATH``, ``postgres:CONNINFO``;
    #: "": nowhere), see ``_threads``.
    checkpoints: str = ""


_settings = WorkerSettings(spec="")
_jobs_run = 0
_retiring = False


def resident_mb(pid: int | str = "self") -> float:
    """A process's resident set size, in MiB (Linux /proc; 0 where unavailable)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


def should_retire() -> bool:
    """trio-parallel's ``retire`` hook, run after each call: what the last job's reply said
    (see :func:`run_and_report`). Between jobs, never mid-job."""
    return _retiring


def _due_for_retirement() -> bool:
    """Whether this worker has run ``max_jobs`` jobs or grown past ``max_rss_mb``.
    Never raises."""
    try:
        if _settings.max_jobs and _jobs_run >= _settings.max_jobs:
            return True
        return bool(_settings.max_rss_mb and resident_mb() > _settings.max_rss_mb)
    except Exception:
        return False


def initialize(settings: WorkerSettings | str, log_level: int = logging.INFO) -> None:
    """Worker initializer: load the graph once. Never raises; a failure is kept for later."""
    global _graph, _call, _load_failure, _settings, _jobs_run, _run_flow
    if isinstance(settings, str):
        settings = WorkerSettings(settings, log_level)
    _settings, _jobs_run = settings, 0
    spec, log_level = settings.spec, settings.log_level
    if settings.server_pid:
        # The server stops its workers itself, after draining; a SIGTERM sent to the whole
        # process group (a terminal, systemd, `timeout`) must not kill jobs mid-run.
        _processes.shield_from_group_signals()
        _processes.isolate(settings.server_pid, settings.pid_dir)
    root = logging.getLogger()
    if _job_logs not in root.handlers:
        root.addHandler(_job_logs)
    root.setLevel(log_level)
    os.environ.update(settings.env)
    try:
        channel.connect(settings.events_address)
        if spec.endswith(".json"):
            _graph = _call = _run_flow = _flow_runner(spec, settings.graphs)
        else:
            _graph = load_graph(spec)
            _call = make_caller(_graph)
        _load_failure = None
    except BaseException as exc:
        _graph = _call = _run_flow = None
        # With what an invalid flow's FlowInvalid lists, each node or edge at fault.
        _load_failure = (*_describe_exception(exc), getattr(exc, "problems", None))
    if settings.server_pid:
        _processes.loaded()


def _flow_runner(spec: str, graphs: tuple[tuple[str, str], ...]) -> Callable[[Any], Reply]:
    """A flow file's jobs: each run by the flow interpreter, on this worker's event loop."""
    from . import _flow_jobs  # jmespath and the interpreter: for flows only

    flow = _flow_jobs.load_flow(spec)
    served = _flow_jobs.ServedGraphs(dict(graphs), load_graph, make_caller)

    def run(job_input: Any) -> Reply:
        return _flow_jobs.run_flow_job(
            flow, job_input, _event_loop(), served, _settings.max_result_bytes, _job_logs.take
        )

    return run


def check_loaded() -> Reply:
    """Report whether this worker loaded the graph: ("ok", pid) or the load error,
    ``("error", type, message, traceback, problems)`` (problems: an invalid flow's)."""
    if _load_failure is not None:
        return _load_failure
    _job_logs.take()  # records from loading the graph are not a job's
    return ("ok", os.getpid())


def run_job(
    job_input: Any,
    trace_context: dict[str, str] | None = None,
    stream: StreamSpec | None = None,
    run: dict[str, Any] | None = None,
) -> Reply:
    """Call the graph with one job's input (inside the job's trace, when there is one);
    its events go out on the event channel as ``stream`` says (None: no events). ``run``:
    a LangGraph API run's options (its thread, config, command: see ``_threads``)."""
    global _jobs_run
    _jobs_run += 1
    channel.begin(stream)
    try:
        return _run_job(job_input, trace_context, stream, run)
    finally:
        channel.end()
        if _settings.server_pid:
            _processes.end_of_job()  # what the job started dies with it


def run_and_report(
    job_input: Any,
    trace_context: dict[str, str] | None = None,
    stream: StreamSpec | None = None,
    run: dict[str, Any] | None = None,
) -> tuple[Reply, bool, int]:
    """What the executor calls: :func:`run_job`'s reply, whether this worker retires
    after it (``max_jobs``, ``max_rss_mb``), so the server counts the recycle, and how
    many events it sent (the server waits for those before it records the job's end)."""
    global _retiring
    reply = run_job(job_input, trace_context, stream, run)
    _retiring = _due_for_retirement()
    return reply, _retiring, channel.sent


def take_events() -> tuple[tuple[str, bytes], ...]:
    """The events the last job kept in this process (no event socket: ``InlineExecutor``)."""
    kept, channel.kept = channel.kept, []
    return tuple(kept)


def _run_job(
    job_input: Any,
    trace_context: dict[str, str] | None,
    stream: StreamSpec | None,
    run: dict[str, Any] | None,
) -> Reply:
    if _call is None:
        # This worker could not load the graph (say, its file broke after the server
        # started): the job fails and says why, rather than the pool retrying forever.
        _, error_type, message, tb = (_load_failure or ("error", "Error", "not loaded", ""))[:4]
        return ("error", "GraphLoadError", f"{error_type}: {message}", tb, ())
    if trace_context:
        from opentelemetry import context, propagate

        token = context.attach(propagate.extract(trace_context))
        try:
            return _call_graph(job_input, stream, run)
        finally:
            context.detach(token)
    return _call_graph(job_input, stream, run)


def _call_graph(job_input: Any, stream: StreamSpec | None, run: dict[str, Any] | None) -> Reply:
    assert _call is not None
    if _run_flow is not None:
        return _run_flow(job_input)
    call = _call
    if _streaming.is_langgraph(_graph) and (stream is not None or run is not None):
        modes = None if stream is None else stream.modes
        call = _streaming.langgraph_caller(_graph, modes, run, _settings.checkpoints)
    try:
        result = _streaming.resolve(call(job_input), _event_loop)
        return (
            "ok",
            bounded(encode_result(result), _settings.max_result_bytes),
            _job_logs.take(),
        )
    except BaseException as exc:
        return (*_describe_exception(exc), _job_logs.take())


def _event_loop() -> asyncio.AbstractEventLoop:
    """One loop per worker process, kept across jobs, so asyncio clients a graph caches
    (LLM SDKs) stay bound to a live loop."""
    global _loop
    if _loop is None or _loop.is_closed():
        _loop = asyncio.new_event_loop()
    return _loop


# -- LangGraph threads' state --------------------------------------------------------------


def prepare_threads() -> Reply:
    """Create the checkpointer's tables, if this worker serves a LangGraph graph and the
    server keeps thread state: ("ok", whether it did) or the error, as run_job's."""
    if _graph is None or not _settings.checkpoints or not _streaming.is_langgraph(_graph):
        return ("ok", False)
    try:
        from . import _threads

        _threads.prepare(_settings.checkpoints)
        return ("ok", True)
    except BaseException as exc:
        return _describe_exception(exc)


def thread_op(op: str, args: dict[str, Any]) -> Reply:
    """A read or change of a LangGraph thread's state (see ``_threads.thread_op``):
    ("ok", its answer as JSON) or ("error", type, message, traceback)."""
    if not _streaming.is_langgraph(_graph):
        return ("error", "NotLangGraph", "the graph is not a LangGraph graph: it has no state", "")
    try:
        from . import _threads

        return ("ok", _threads.thread_op(_graph, _settings.checkpoints, op, args))
    except BaseException as exc:
        return _describe_exception(exc)
