"""The engine in a thread of its own, with its own Trio loop, so requests never delay jobs.

In one loop, each job waits several scheduler passes (the queue, trio-parallel's limiter and
pipe, the finisher), and under load every pass first runs every ready request handler: at
64 pollers a no-op job took 235 ms instead of 1 ms, was polled 7 times, and that polling was
the load. Here the runners, trio-parallel and the store run in the engine's loop, whose
passes hold only the engine's own tasks; the HTTP loop calls into it.

:class:`EngineThread` has the :class:`~graphnursery.engine.Engine`'s surface, for the HTTP
loop. Each ``async`` call runs as a task in the engine's loop (in a copy of the caller's
context, so traces follow it) and its outcome comes back through the HTTP loop's
``TrioToken``; a caller cancelled meanwhile cancels its task there. What is only read (the
queue's length, a job's position, flags) is read directly: those are single reads of plain
values, which the GIL keeps whole.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, TypeVar

import outcome
import trio

from .config import Config
from .engine import Engine, EngineStatistics, open_engine
from .errors import EngineClosed, QueueFull, unwrap_single_error
from .events import JobEvent
from .jobs import DEFAULT_WORKSPACE, Job, JobStatus
from .lanes import GraphInfo, Reloaded
from .metrics import Metrics, PoolStatistics
from .store import Store
from .waiters import Listeners

T = TypeVar("T")


def _soon(token: trio.lowlevel.TrioToken | None, fn: Callable[..., object], *args: Any) -> bool:
    """Run ``fn(*args)`` in the loop of ``token`` soon; False if that loop has ended."""
    if token is None:
        return False
    try:
        token.run_sync_soon(fn, *args)
    except trio.RunFinishedError:
        return False
    return True


class InEngineLoop:
    """One of the engine's services (its stored flows, its schedules) seen from the HTTP
    loop: each of its coroutine methods runs in the engine's loop, as the engine's do."""

    def __init__(self, thread: EngineThread, name: str) -> None:
        self._thread = thread
        self._name = name

    def __getattr__(self, method: str) -> Any:
        target = getattr(getattr(self._thread.engine, self._name), method)
        return partial(self._thread._call, target)


class EngineThread:
    """An engine run in a thread of its own; its methods are called from the HTTP loop."""

    def __init__(self, config: Config, store: Store | None, metrics: Metrics) -> None:
        self.config = config
        self._store = store
        self._metrics = metrics
        self._engine: Engine | None = None
        self._engine_token: trio.lowlevel.TrioToken | None = None
        self._calls: trio.Nursery | None = None
        self._stop: trio.Event | None = None  # an event of the engine's loop
        self.error: BaseException | None = None
        # Long-polls and streams, in the HTTP loop: woken through its token when the engine
        # says a job ended or its log grew (``Engine.on_job_end``, ``on_job_events``, which
        # ask whether anyone waits here).
        self._listeners = Listeners()
        # Calls waiting for their outcome, in the HTTP loop: released when the engine ends.
        self._pending: set[trio.Event] = set()
        self._stopping = False  # asked to stop (maybe before the engine started)
        self._reads_here = False
        self._http_token: trio.lowlevel.TrioToken | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start the engine's thread; started once the engine is (its workers loaded the
        graph); returns when the engine stopped, raising what stopped it, if anything did.
        Cancelled, it stops the engine and waits for its thread to end."""
        http_token = self._http_token = trio.lowlevel.current_trio_token()
        started, ended = trio.Event(), trio.Event()

        async def main() -> None:
            try:
                async with (
                    open_engine(self.config, self._store, metrics=self._metrics) as engine,
                    trio.open_nursery() as calls,
                ):
                    self._stop = trio.Event()
                    if self._stopping:  # asked while the engine started (see _stop_soon)
                        self._stop.set()
                    engine.on_job_end = self._job_ended
                    engine.on_job_events = self._job_events
                    self._reads_here = engine.store.reads_anywhere
                    self._engine, self._calls = engine, calls
                    self._engine_token = trio.lowlevel.current_trio_token()
                    http_token.run_sync_soon(started.set)
                    await self._stop.wait()
                    calls.cancel_scope.cancel()
            finally:
                self._engine = None
                _soon(http_token, self._listeners.wake_all)

        def thread() -> None:
            try:
                trio.run(main)
            except BaseException as exc:
                self.error = exc
            finally:
                _soon(http_token, ended.set)

        runner = threading.Thread(target=thread, name="graphnursery-engine", daemon=True)
        runner.start()
        try:
            async with trio.open_nursery() as nursery:

                async def until_started() -> None:
                    await started.wait()
                    task_status.started()

                nursery.start_soon(until_started)
                await ended.wait()
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                self._stop_soon()
                await ended.wait()
                await trio.to_thread.run_sync(runner.join)
                for done in self._pending:  # calls the engine never answered: it stopped
                    done.set()
        if self.error is not None:
            raise self.error

    def _stop_soon(self) -> None:
        # The flag first, then the event: the engine's thread makes the event, then reads
        # the flag, so one of the two sees the other (the GIL orders them).
        self._stopping = True
        if self._stop is not None:
            _soon(self._engine_token, self._stop.set)

    @property
    def engine(self) -> Engine:
        engine = self._engine
        if engine is None:
            raise EngineClosed("the engine is not running")
        return engine

    async def _call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """``await fn(*args, **kwargs)`` as a task of the engine's loop; its outcome here."""
        token, calls = self._engine_token, self._calls
        if token is None or calls is None:
            raise EngineClosed("the engine is not running")
        http_token = trio.lowlevel.current_trio_token()
        done = trio.Event()
        scope = trio.CancelScope()
        box: list[outcome.Outcome[T]] = []

        async def call() -> None:
            with scope:
                box.append(await outcome.acapture(fn, *args, **kwargs))
            _soon(http_token, done.set)  # False: nobody waits any more

        context = contextvars.copy_context()

        def spawn() -> None:
            try:
                context.run(calls.start_soon, call)
            except RuntimeError:  # its nursery has closed: the engine is stopping
                _soon(http_token, done.set)

        if not _soon(token, spawn):
            raise EngineClosed("the engine stopped")
        self._pending.add(done)
        try:
            await done.wait()
        except trio.Cancelled:
            _soon(token, scope.cancel)
            raise
        finally:
            self._pending.discard(done)
        if not box:  # the engine stopped while it ran
            raise EngineClosed("the engine stopped")
        result = box[0]
        if isinstance(result, outcome.Error) and isinstance(result.error, trio.Cancelled):
            raise EngineClosed("the engine stopped")
        return result.unwrap()

    # -- the Engine's surface ---------------------------------------------------------

    @property
    def accepting(self) -> bool:
        engine = self._engine
        return engine is not None and engine.accepting

    @property
    def draining(self) -> bool:
        engine = self._engine
        return engine is not None and engine.draining

    @property
    def store_available(self) -> bool:
        return self.engine.store_available

    async def drain(self, grace: float) -> bool:
        return await self._call(self.engine.drain, grace)

    async def submit(self, job_input: Any, **options: Any) -> Job:
        return await self._call(self.engine.submit, job_input, **options)

    async def submit_batch(
        self,
        items: Sequence[tuple[Any, float | None, int | None]],
        graph: str | None = None,
        workspace: str = DEFAULT_WORKSPACE,
    ) -> tuple[list[Job], QueueFull | None]:
        return await self._call(self.engine.submit_batch, items, graph, workspace)

    async def get(self, job_id: str, workspace: str | None = None) -> Job:
        if self._reads_here:  # the memory store: read here, no round trip
            return await self.engine.get(job_id, workspace)
        return await self._call(self.engine.get, job_id, workspace)

    async def wait(self, job_id: str, timeout: float, workspace: str | None = None) -> Job:
        """As :meth:`Engine.wait`, waiting here: woken when the engine says the job ended."""
        if timeout <= 0:
            return await self.get(job_id, workspace)
        getter = partial(self.get, workspace=workspace)
        return await self._listeners.polls.wait(job_id, timeout, getter)

    def _job_ended(self, job_id: str) -> None:
        """In the engine's loop: wake the long-polls and streams of ``job_id`` in the HTTP
        loop."""
        if job_id in self._listeners:
            _soon(self._http_token, self._listeners.ended, job_id)

    def _job_events(self, job_id: str) -> None:
        """In the engine's loop: wake the streams of ``job_id`` in the HTTP loop."""
        if job_id in self._listeners.streams:
            _soon(self._http_token, self._listeners.grew, job_id)

    async def read_events(
        self, job_id: str, after: int, limit: int, workspace: str | None = None
    ) -> tuple[Job, list[JobEvent]]:
        if self._reads_here:  # memory and SQLite: read here, no round trip
            return await self.engine.read_events(job_id, after, limit, workspace)
        return await self._call(self.engine.read_events, job_id, after, limit, workspace)

    def following(self, job_id: str) -> contextlib.AbstractContextManager[Callable[[], trio.Event]]:
        return self._listeners.streams.following(job_id)

    async def cancel(self, job_id: str, workspace: str | None = None) -> Job:
        return await self._call(self.engine.cancel, job_id, workspace)

    async def resubmit(self, job_id: str, workspace: str | None = None) -> Job:
        return await self._call(self.engine.resubmit, job_id, workspace)

    async def list_jobs(
        self,
        status: JobStatus | None = None,
        limit: int = 100,
        cursor: str | None = None,
        graph: str | None = None,
        workspace: str | None = None,
    ) -> tuple[list[Job], str | None]:
        return await self._call(self.engine.list_jobs, status, limit, cursor, graph, workspace)

    async def statistics(self, graph: str | None = None) -> EngineStatistics:
        return await self._call(self.engine.statistics, graph)

    async def reload(self, graph: str | None = None) -> list[Reloaded]:
        return await self._call(self.engine.reload, graph)

    def graphs(self) -> list[GraphInfo]:
        return self.engine.graphs()

    def graph(self, name: str) -> GraphInfo:
        return self.engine.graph(name)

    def position(self, job_id: str) -> int | None:
        return self.engine.position(job_id)

    def queue_length(self, graph: str | None = None) -> int:
        return self.engine.queue_length(graph)

    def queued_by_workspace(self) -> dict[str, int]:
        return self.engine.queued_by_workspace()

    def retry_after(self, graph: str | None = None) -> float:
        return self.engine.retry_after(graph)

    def pool_statistics(self) -> dict[str, PoolStatistics]:
        return self.engine.pool_statistics()

    @property
    def flows(self) -> Any:
        """The engine's :class:`~graphnursery.stored_flows.StoredFlows`, in its loop."""
        return InEngineLoop(self, "flows")

    @property
    def threads(self) -> Any:
        """The engine's :class:`~graphnursery.threads.Threads`, in its loop."""
        return InEngineLoop(self, "threads")

    @property
    def schedules(self) -> Any:
        """The engine's :class:`~graphnursery.scheduler.Schedules`, in its loop."""
        return InEngineLoop(self, "schedules")


#: What the HTTP layer calls: the engine in its own loop, or in the HTTP loop.
AnyEngine = Engine | EngineThread


@asynccontextmanager
async def open_engine_thread(
    config: Config, store: Store | None = None, *, metrics: Metrics | None = None
) -> AsyncIterator[EngineThread]:
    """As :func:`~graphnursery.engine.open_engine`, with the engine in a thread of its own.

    Returns once the engine started; if it stops while the body runs, the body is cancelled
    and what stopped the engine is raised.
    """
    threaded = EngineThread(config, store, metrics or Metrics())
    # Two threads now share the GIL. At Python's default a thread waiting for it may wait
    # 5 ms while the other runs; the engine waits for it several times per job, so under
    # HTTP load every job would take tens of ms (measured: noop, 64 pollers, 540 -> 800
    # jobs/s; 128 pollers, 260-400 -> 790). The interval is the process's; it is put back.
    previous = sys.getswitchinterval()
    sys.setswitchinterval(config.gil_switch_interval)
    try:
        with unwrap_single_error():
            async with trio.open_nursery() as nursery:
                await nursery.start(threaded.run)
                try:
                    yield threaded
                finally:
                    nursery.cancel_scope.cancel()
    finally:
        sys.setswitchinterval(previous)
