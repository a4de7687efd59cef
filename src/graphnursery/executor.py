"""Runs graph calls in worker processes through trio-parallel, and says how each call ended.

Cancellation contract: :meth:`Executor.run` enforces the job's timeout with a Trio cancel
scope; trio-parallel's ``kill_on_cancel=True`` kills the worker process at the deadline, so
the slot frees at once and the next call gets a fresh process (which loads the graph again).
A cancellation from outside (shutdown, a cancelled job) kills the worker the same way and
propagates as ``trio.Cancelled``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import trio
import trio_parallel

from . import _processes, _worker
from ._emit import StreamSpec
from .config import Config
from .errors import GraphLoadError, ThreadStateError
from .jobs import JobError, JobStatus, Outcome
from .logs import get_logger

log = get_logger("graphnursery.executor")

#: Seconds between two reads of the workers' memory (``max_job_memory_mb``).
MEMORY_CHECK_INTERVAL = 0.1
#: Seconds a read or change of a thread's state may take in its worker.
THREAD_OP_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class ExecutorStatistics:
    workers: int
    running: int
    idle_workers: int


class GraphRunner(Protocol):
    """What the engine needs of an executor."""

    workers: int
    worker_restarts: int

    async def run(
        self,
        job_input: Any,
        timeout: float,
        trace_context: dict[str, str] | None = None,
        stream: StreamSpec | None = None,
        run: dict[str, Any] | None = None,
    ) -> Outcome: ...

    async def thread_op(self, op: str, args: dict[str, Any]) -> bytes: ...

    def statistics(self) -> ExecutorStatistics: ...


class Executor:
    """A fixed number of worker processes, each holding the graph loaded once."""

    def __init__(self, graph: str, workers: int, context: Any, pid_dir: str = "") -> None:
        self.graph = graph
        self.workers = workers
        self._context = context
        # Where the workers record their pids: what a killed one's job started is killed too.
        self._pid_dir = pid_dir
        # Workers killed for their memory (pid -> the limit), to say so in the job's error.
        self._memory_killed: dict[int | None, int] = {}
        # Our own limiter: trio-parallel's default one is process-global.
        self._limiter = trio.CapacityLimiter(workers)
        # Reads of LangGraph threads' state: one at a time, beside the jobs (a process more
        # when every worker is busy), so a state read never waits for a long job.
        self._state_limiter = trio.CapacityLimiter(1)
        self.worker_restarts = 0

    async def warm_up(self) -> None:
        """Start every worker process and check it loaded the graph.

        Raises :class:`GraphLoadError` with the worker's own error if loading failed.
        """
        replies: list[tuple[Any, ...]] = []

        async def check() -> None:
            try:
                reply = await self._context.run_sync(_worker.check_loaded, limiter=self._limiter)
            except trio_parallel.BrokenWorkerError as exc:
                reply = ("error", "WorkerCrashed", _describe_broken(exc), "")
            replies.append(reply)

        async with trio.open_nursery() as nursery:
            for _ in range(self.workers):
                nursery.start_soon(check)
        for reply in replies:
            if reply[0] != "ok":
                raise GraphLoadError(self.graph, *reply[1:])
        prepared = await self._context.run_sync(_worker.prepare_threads, limiter=self._limiter)
        if prepared[0] != "ok":
            log.warning(
                "LangGraph threads will not work: the checkpointer could not be prepared",
                graph=self.graph,
                error=f"{prepared[1]}: {prepared[2]}",
            )

    async def run(
        self,
        job_input: Any,
        timeout: float,
        trace_context: dict[str, str] | None = None,
        stream: StreamSpec | None = None,
        run: dict[str, Any] | None = None,
    ) -> Outcome:
        """Run the graph once on ``job_input``; never raises for what the graph does.
        Its events go to the event hub as ``stream`` says; ``run``: a LangGraph API run's
        options."""
        with trio.move_on_after(timeout) as scope:
            try:
                reply, retiring, sent = await self._context.run_sync(
                    _worker.run_and_report,
                    job_input,
                    trace_context,
                    stream,
                    run,
                    kill_on_cancel=True,
                    limiter=self._limiter,
                )
            except trio_parallel.BrokenWorkerError as exc:
                self._worker_gone()
                return Outcome(JobStatus.CRASHED, error=self._why_broken(exc), events_sent=None)
            except trio.Cancelled:
                # The timeout, a cancelled job or the engine stopping: kill_on_cancel killed
                # the worker process (the next call starts a new one), and with it goes
                # everything its job started.
                self._worker_gone()
                raise
        if scope.cancelled_caught:
            return Outcome(
                JobStatus.TIMED_OUT,
                error=JobError("TimeoutError", f"job ran longer than its timeout of {timeout:g} s"),
                events_sent=None,
            )
        if retiring:  # recycled (max_jobs_per_worker, max_worker_memory_mb)
            self.worker_restarts += 1
        return outcome_from_reply(reply, events_sent=sent)

    async def thread_op(self, op: str, args: dict[str, Any]) -> bytes:
        """A read or change of a LangGraph thread's state, in a worker process: its answer
        (JSON). Raises :class:`ThreadStateError` with the worker's error."""
        with trio.fail_after(THREAD_OP_TIMEOUT):
            try:
                reply = await self._context.run_sync(
                    _worker.thread_op, op, args, kill_on_cancel=True, limiter=self._state_limiter
                )
            except trio_parallel.BrokenWorkerError as exc:
                raise ThreadStateError("WorkerCrashed", _describe_broken(exc)) from None
        return thread_answer(reply)

    async def watch_memory(self, limit_mb: int) -> None:
        """Kill any worker process whose RSS passes ``limit_mb``, mid-job. Memory cannot be
        waited on, so it is read every MEMORY_CHECK_INTERVAL seconds."""
        while True:
            await trio.sleep(MEMORY_CHECK_INTERVAL)
            killed = await trio.to_thread.run_sync(self._kill_over, limit_mb)
            for pid, rss in killed:
                log.warning("killed a worker over max_job_memory_mb", pid=pid, rss_mb=rss)

    def _kill_over(self, limit_mb: int) -> list[tuple[int, float]]:
        killed = []
        for pid in _processes.recorded_workers(self._pid_dir):
            rss = _worker.resident_mb(pid)
            if rss > limit_mb:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
                    self._memory_killed[pid] = limit_mb
                    killed.append((pid, round(rss, 1)))
        return killed

    def _why_broken(self, exc: BaseException) -> JobError:
        for arg in exc.args:
            limit = self._memory_killed.pop(getattr(arg, "pid", None), None)
            if limit is not None:
                return JobError(
                    "MemoryLimitExceeded",
                    f"the job's worker process used more than max_job_memory_mb ({limit} MiB)"
                    " and was killed",
                )
        return JobError("WorkerCrashed", _describe_broken(exc))

    def _worker_gone(self) -> None:
        self.worker_restarts += 1
        _processes.kill_orphaned_groups(self._pid_dir)

    def statistics(self) -> ExecutorStatistics:
        running = int(self._limiter.borrowed_tokens)
        return ExecutorStatistics(
            workers=self.workers,
            running=running,
            idle_workers=self.workers - running,
        )


def outcome_from_reply(reply: tuple[Any, ...], **events: Any) -> Outcome:
    """Turn a ``_worker.run_job`` reply into an Outcome (``events``: how its events went,
    ``events_sent`` or ``events``, see :class:`Outcome`)."""
    if reply[0] == "ok":  # a flow's replies end with its run record
        result, logs, *record = reply[1:]
        return Outcome(
            JobStatus.COMPLETED, result=result, logs=logs, record=_record(record), **events
        )
    error_type, message, tb, logs, *record = reply[1:]
    return Outcome(
        JobStatus.FAILED,
        error=JobError(error_type, message),
        logs=logs,
        traceback=tb,
        record=_record(record),
        **events,
    )


def thread_answer(reply: tuple[Any, ...]) -> bytes:
    """A ``_worker.thread_op`` reply's answer (JSON); ThreadStateError with its error."""
    if reply[0] != "ok":
        raise ThreadStateError(reply[1], reply[2])
    return bytes(reply[1])


def _record(trailing: list[Any]) -> bytes | None:
    return trailing[0] if trailing else None


def _describe_broken(exc: BaseException) -> str:
    for arg in exc.args:
        exitcode = getattr(arg, "exitcode", None)
        if exitcode is not None:
            if exitcode < 0:
                try:
                    name = signal.Signals(-exitcode).name
                except ValueError:
                    name = f"signal {-exitcode}"
                return f"worker process was killed by {name}"
            return f"worker process exited with code {exitcode}"
    return "worker process died unexpectedly"


@asynccontextmanager
async def open_executor(
    graph: str,
    workers: int,
    log_level: str = "info",
    *,
    max_jobs_per_worker: int = 0,
    max_worker_memory_mb: int = 0,
    max_job_memory_mb: int = 0,
    max_result_bytes: int = 0,
    events_address: str = "",
    env: Mapping[str, str] | None = None,
    graphs: Mapping[str, str] | None = None,
    checkpoints: str = "",
) -> AsyncIterator[Executor]:
    """Start ``workers`` processes that load ``graph``; stop them on exit.

    A worker process is retired after ``max_jobs_per_worker`` jobs, or after a job that
    leaves it above ``max_worker_memory_mb`` of RSS (0: never); the next job starts a new one.
    One whose RSS passes ``max_job_memory_mb`` is killed at once, mid-job (0: no ceiling).
    A result over ``max_result_bytes`` as JSON fails its job (``ResultTooLarge``; 0: any).
    The workers send their jobs' events to the event hub at ``events_address``, and set
    ``env`` in their environment before they load the graph. ``graphs`` (name to source)
    are the server's graphs, for a flow's ``graph`` nodes to call.
    """
    settings = _worker.WorkerSettings(
        spec=graph,
        log_level=logging.getLevelName(log_level.upper()),
        max_jobs=max_jobs_per_worker,
        max_rss_mb=max_worker_memory_mb,
        max_result_bytes=max_result_bytes,
        server_pid=os.getpid(),
        pid_dir=tempfile.mkdtemp(prefix="graphnursery-workers-"),
        events_address=events_address,
        env=tuple(sorted((env or {}).items())),
        graphs=tuple(sorted((graphs or {}).items())),
        checkpoints=checkpoints,
    )
    _allow_worker_processes()
    body_error: BaseException | None = None
    try:
        async with trio_parallel.open_worker_context(
            init=partial(_worker.initialize, settings),
            retire=_worker.should_retire,
            idle_timeout=math.inf,
            grace_period=5.0,
        ) as context:
            executor = Executor(graph, workers, context, settings.pid_dir)
            await executor.warm_up()
            async with trio.open_nursery() as nursery:
                if max_job_memory_mb:
                    nursery.start_soon(executor.watch_memory, max_job_memory_mb)
                try:
                    yield executor
                except BaseException as exc:
                    body_error = exc
                    raise
                finally:
                    nursery.cancel_scope.cancel()
    except trio_parallel.BrokenWorkerError as exc:
        if exc is body_error:
            raise
        # Raised on exit when an idle worker had died meanwhile (killed from outside):
        # nothing is lost, the engine is stopping anyway.
        log.warning("worker processes did not stop cleanly", detail=str(exc.args[0]))
    finally:
        # Whatever the workers' jobs started dies with them, stopped cleanly or not.
        _processes.kill_orphaned_groups(settings.pid_dir, all_workers=True)
        shutil.rmtree(settings.pid_dir, ignore_errors=True)


@asynccontextmanager
async def executor_for(
    config: Config,
    executor: GraphRunner | None,
    events_address: str = "",
    env: Mapping[str, str] | None = None,
    graphs: Mapping[str, str] | None = None,
    checkpoints: str = "",
) -> AsyncIterator[GraphRunner]:
    """``executor`` if given (an ``InlineExecutor``, say), else worker processes as
    ``config`` says (``config.graph`` is the source they load), sending their events to
    ``events_address``, with ``env`` set in their environment."""
    if executor is not None:
        yield executor
        return
    async with open_executor(
        config.graph,
        config.workers,
        config.log_level,
        max_jobs_per_worker=config.max_jobs_per_worker,
        max_worker_memory_mb=config.max_worker_memory_mb,
        max_job_memory_mb=config.max_job_memory_mb,
        max_result_bytes=config.max_result_bytes,
        events_address=events_address,
        env=env,
        graphs=graphs,
        checkpoints=checkpoints,
    ) as process_executor:
        yield process_executor


def _allow_worker_processes() -> None:
    """Let this process start worker processes even if it is daemonic.

    hypercorn runs its worker as a daemonic ``multiprocessing`` process (unless its config
    says ``daemon = false``), and multiprocessing refuses children to a daemonic process,
    which its parent may terminate without a word, leaving them orphaned. Ours cannot be
    orphaned: each one exits the moment this process is gone (``_processes``), the
    worker context kills them when the engine stops, and multiprocessing's exit handler
    terminates them (they are daemonic) when this process exits. So the flag is lifted.
    """
    process = multiprocessing.current_process()
    if process.daemon:
        log.info("running in a daemonic process (hypercorn's worker): starting workers anyway")
        process.daemon = False
