"""The engine: accepts jobs, runs them in worker processes, and answers for them.

A job's path: :meth:`Engine.submit` records it in the store and, through the store kind's
:class:`~graphnursery.intake.Intake`, puts its id on the
:class:`~graphnursery.jobqueue.JobQueue` (bounded, round-robin across workspaces). The
:class:`~graphnursery.runners.Runners` — one task per worker — take ids off the queue and
run each job through the executor, whose ``trio.CapacityLimiter`` caps running jobs at
``workers``; they record the outcome in the store, and anyone long-polling the job is woken
by a ``trio.Event``. A background task evicts finished jobs older than ``result_ttl``.

Everything runs in one nursery owned by :func:`open_engine`; leaving it stops the engine:
running jobs' worker processes are killed and every unfinished job ends ``cancelled``
(memory store) or stays queued for the next start or another replica (durable stores).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import trio

from . import tracing
from .config import Config
from .errors import (
    EngineClosed,
    InvalidTimeout,
    JobConflict,
    JobNotFound,
    QueueFull,
    QuotaExceeded,
    unwrap_single_error,
)
from .eventhub import EventHub, open_event_hub
from .events import JobEvent
from .executor import GraphRunner
from .intake import SHARED_COUNTS_MAX_AGE
from .jobs import DEFAULT_WORKSPACE, Job, JobError, JobStatus, scoped_key
from .logs import get_logger
from .metrics import EngineStatistics, Metrics
from .quotas import Quotas
from .runners import Runners
from .scheduler import Schedules
from .served import ServedGraphs
from .store import Store, open_store
from .stored_flows import StoredFlows
from .threads import Threads
from .waiters import Listeners

log = get_logger("graphnursery.engine")

CANCELLED_ERROR = JobError("Cancelled", "cancelled by request")
#: Seconds a drain waits, once the grace is over, for the jobs it killed to be recorded.
STOP_WAIT = 5.0


class Engine(ServedGraphs):
    """Accepts jobs and runs them, a :class:`~graphnursery.lanes.Lane` per served graph
    (see :class:`~graphnursery.served.ServedGraphs`). Create one with :func:`open_engine`."""

    def __init__(
        self,
        config: Config,
        store: Store,
        metrics: Metrics,
        hub: EventHub,
        executor: GraphRunner | None = None,
    ) -> None:
        super().__init__(config, store, metrics, hub, self.job_done, executor)
        #: The flows kept in the store (``POST /flows``), each served as a lane of its own.
        self.flows = StoredFlows(self)
        #: The cron schedules kept in the store, and the task that fires them.
        self.schedules = Schedules(self)
        #: LangGraph threads and their runs (the LangGraph Platform API).
        self.threads = Threads(self)
        hub.on_events = self.job_events
        self._listeners = Listeners()  # long-polls and streams
        #: Called with each job that ended (or that a shared store said ended), after its
        #: long-polls here are woken: how an engine in a thread of its own tells the HTTP
        #: loop (see ``engine_thread``).
        self.on_job_end: Callable[[str], None] | None = None
        #: Called with each job whose log grew (here, or in a shared store elsewhere).
        self.on_job_events: Callable[[str], None] | None = None
        #: Each workspace's limits at submit, and its submit rate's token buckets.
        self.quotas = Quotas(config.workspace_limits_by_name(), self.clock.now)
        self._accepting = True
        self._draining = False
        self._stopped = False

    # -- the public surface ---------------------------------------------------------------

    @property
    def accepting(self) -> bool:
        return self._accepting

    @property
    def draining(self) -> bool:
        return self._draining

    @property
    def store_available(self) -> bool:
        """False while the store cannot be reached (its operations retry meanwhile)."""
        return self.store.available

    async def drain(self, grace: float) -> bool:
        """Stop taking jobs and give the running ones up to ``grace`` seconds to finish.

        New submits raise EngineClosed at once; jobs still queued end ``cancelled``
        (memory store) or stay queued for the next start or another replica (durable
        stores). Returns True if every running job finished in time; those that did not
        are killed then and end like any unfinished job, before this returns: their
        long-polls answer while the server still serves.
        """
        self._stop_accepting()
        self._draining = True
        await self.take_no_more()
        log.info("draining", running=self.running_jobs(), grace_seconds=grace)
        if await self.wait_idle(grace):
            return True
        log.warning("grace period over: stopping the jobs still running")
        self.stop_running()
        await self.wait_idle(STOP_WAIT)
        return False

    async def submit(
        self,
        job_input: Any,
        *,
        graph: str | None = None,
        timeout: float | None = None,
        idempotency_key: str | None = None,
        max_attempts: int | None = None,
        stream_mode: tuple[str, ...] | None = None,
        workspace: str = DEFAULT_WORKSPACE,
        thread_id: str | None = None,
        run_options: dict[str, Any] | None = None,
        delay: float = 0.0,
    ) -> Job:
        """Queue a job of ``workspace`` for ``graph`` (None: the default), streaming the
        events ``stream_mode`` names (None: its default), run ``delay`` s on at the soonest
        (``thread_id``, ``run_options``: a LangGraph run's, see ``threads``). Raises
        GraphNotFound, QueueFull (the graph's queue is full), InvalidTimeout (not > 0 and
        <= ``max_job_timeout``), EngineClosed when stopping.

        With an ``idempotency_key`` that a kept job was submitted with, queue nothing and
        return that job (whatever this call's input): a client's retry cannot run it twice.
        """
        if not self._accepting:
            raise EngineClosed(
                "the server is draining" if self._draining else "the engine is not accepting jobs"
            )
        if not self.store.available:
            raise EngineClosed("the job store is unreachable for now")
        lane = self.lane(graph)
        if timeout is not None and not 0 < timeout <= self.config.max_job_timeout:
            raise InvalidTimeout(timeout, self.config.max_job_timeout)
        if idempotency_key is not None:
            idempotency_key = scoped_key(workspace, idempotency_key)
            existing = await self.store.find_by_key(idempotency_key)
            if existing is not None:
                return existing
        if self.quotas.limits.limited:
            try:
                await self.quotas.check(workspace, lane.intake.queued_of, lane.retry_after)
            except QuotaExceeded as refused:
                self.metrics.submit_refused(workspace, refused.limit)
                raise
        new = lane.new_job(
            job_input,
            self.clock.now(),
            timeout=timeout,
            max_attempts=max_attempts,
            stream_mode=stream_mode,
            workspace=workspace,
            thread_id=thread_id,
            run_options=run_options,
        )
        job = await lane.intake.admit(new, idempotency_key, delay)
        if job is None:
            self.metrics.jobs_rejected.labels("queue_full").inc()
            raise QueueFull(lane.config.queue_size, lane.retry_after())
        if job is not new:  # the same key, submitted meanwhile
            return job
        carrier = tracing.submitted(job)
        if carrier is not None:
            lane.runners.trace_carriers[job.id] = carrier
        self.metrics.job_submitted(job)
        return job

    async def submit_batch(
        self,
        items: Sequence[tuple[Any, float | None, int | None]],
        graph: str | None = None,
        workspace: str = DEFAULT_WORKSPACE,
    ) -> tuple[list[Job], QueueFull | None]:
        """Queue ``(input, timeout, max attempts)`` items for ``graph`` in order, until the
        queue is full: the jobs queued, and the refusal that stopped it (None if all were).
        Other errors raise as :meth:`submit`'s."""
        accepted: list[Job] = []
        for job_input, timeout, max_attempts in items:
            try:
                accepted.append(
                    await self.submit(
                        job_input,
                        graph=graph,
                        timeout=timeout,
                        max_attempts=max_attempts,
                        workspace=workspace,
                    )
                )
            except QueueFull as full:
                return accepted, full
        return accepted, None

    async def get(self, job_id: str, workspace: str | None = None) -> Job:
        """The job; JobNotFound if unknown, evicted, or (with ``workspace``; None: any)
        another workspace's. Every caller's lookup below takes its workspace so."""
        job = await self.store.get(job_id, workspace)
        if job is None:
            raise JobNotFound(job_id)
        return job

    async def wait(self, job_id: str, timeout: float, workspace: str | None = None) -> Job:
        """The job once it is terminal, or as it stands after ``timeout`` seconds."""
        if timeout <= 0:
            return await self.get(job_id, workspace)
        getter = partial(self._get_while_running, workspace=workspace)
        return await self._listeners.polls.wait(job_id, timeout, getter)

    async def _get_while_running(self, job_id: str, workspace: str | None = None) -> Job:
        if self._stopped:
            raise EngineClosed("the engine stopped")
        return await self.get(job_id, workspace)

    async def read_events(
        self, job_id: str, after: int, limit: int, workspace: str | None = None
    ) -> tuple[Job, list[JobEvent]]:
        """The job and up to ``limit`` events of its log past ``after`` (see
        :meth:`Store.read_events`). Raises JobNotFound."""
        found = await self.store.read_events(job_id, after, limit)
        if found is None or (workspace is not None and found[0].workspace != workspace):
            raise JobNotFound(job_id)
        return found

    def following(self, job_id: str) -> contextlib.AbstractContextManager[Callable[[], trio.Event]]:
        """For a stream of the job: ``changed()`` in the block gives the event its next
        change (more events, its end, the engine stopping) sets."""
        return self._listeners.streams.following(job_id)

    async def cancel(self, job_id: str, workspace: str | None = None) -> Job:
        """Cancel a job: a queued one never runs; a running one's worker process is killed.

        Raises JobNotFound, or JobConflict if the job is already terminal.
        """
        if workspace is not None:
            await self.get(job_id, workspace)  # another workspace's: not found
        job = await self.store.cancel(job_id, self.clock.now(), CANCELLED_ERROR)
        if job is None:
            current = await self.get(job_id)
            raise JobConflict(job_id, current.status.value)
        runners = self._runners_of(job)
        stopped = runners.stop_here(job_id)  # the runner ends without a result
        if stopped is not None:
            await stopped.wait()  # answer once its worker process is gone
        runners.ended(job)
        return job

    def _runners_of(self, job: Job) -> Runners:
        lane = self.lanes.get(job.graph)
        return (lane or self.default).runners

    async def resubmit(self, job_id: str, workspace: str | None = None) -> Job:
        """Run a finished job (a dead letter, say) again, as a new job of the same graph
        with the same input, timeout and attempts. Raises JobNotFound, GraphNotFound, or
        JobConflict (action "retry") if the job has not finished."""
        job = await self.get(job_id, workspace)
        if not job.status.is_terminal:
            raise JobConflict(job_id, job.status.value, action="retry")
        new = await self.submit(
            job.input,
            graph=job.graph,
            timeout=job.timeout,
            max_attempts=job.max_attempts,
            workspace=job.workspace,
        )
        log.info("job resubmitted", job_id=new.id, retry_of=job_id)
        return new

    async def list_jobs(
        self,
        status: JobStatus | None = None,
        limit: int = 100,
        cursor: str | None = None,
        graph: str | None = None,
        workspace: str | None = None,
    ) -> tuple[list[Job], str | None]:
        """A page of kept jobs, oldest first, optionally of one status (dead letters...),
        one graph and one workspace."""
        return await self.store.list_jobs(status, limit, cursor, graph=graph, workspace=workspace)

    # -- what the store reports (``StoreEvents``; a shared store, of other replicas too) ----

    def job_done(self, job_id: str) -> None:
        """A job ended: its long-polls and streams here wake, then ``on_job_end``'s."""
        self._listeners.ended(job_id)
        if self.on_job_end is not None:
            self.on_job_end(job_id)

    def job_events(self, job_id: str) -> None:
        """A job's log grew: its streams here wake, then ``on_job_events``'."""
        self._listeners.grew(job_id)
        if self.on_job_events is not None:
            self.on_job_events(job_id)

    def job_cancelled(self, job_id: str) -> None:
        self.stop_here(job_id)
        self.job_done(job_id)

    def lease_lost(self, job_id: str) -> None:
        log.warning("lost the job's lease; stopping it here", job_id=job_id)
        self.stop_here(job_id)

    # -- inside the engine's nursery -----------------------------------------------------

    def _stop_accepting(self) -> None:
        self._accepting = False
        self.stop_retrying()

    async def _evict_expired(self) -> None:
        ttl = self.config.result_ttl
        interval = min(max(ttl / 10, 0.01), 5.0)
        while True:
            await trio.sleep(interval)
            evicted = await self.store.evict(self.clock.now() - ttl)
            if evicted:
                log.debug("evicted expired jobs", count=evicted)

    def _stopped_now(self) -> None:
        """Whoever still waits on a job hears that the engine is gone."""
        self._stopped = True
        self._listeners.wake_all()


@asynccontextmanager
async def open_engine(
    config: Config,
    store: Store | None = None,
    *,
    executor: GraphRunner | None = None,
    metrics: Metrics | None = None,
) -> AsyncIterator[Engine]:
    """Start worker processes, load the graph in each, and run the engine.

    Returns once every worker has loaded the graph; raises :class:`GraphLoadError` if it
    cannot be loaded. Without ``store``, opens the one ``config.store`` names (default:
    SQLite, ``./graphnursery.db``); :class:`StoreError` if it cannot. On exit, running jobs
    are killed; unfinished jobs end ``cancelled`` (memory store) or are queued again
    (durable stores). ``executor`` replaces the worker processes (``InlineExecutor``: tests).
    """
    if store is None:
        store = open_store(
            config.store_url,
            lease_seconds=config.lease_seconds,
            unavailable_exit=config.store_unavailable_exit,
        )
    await store.open()
    metrics = metrics or Metrics()
    try:
        async with open_event_hub(store, metrics, config.max_job_events) as hub:
            engine = Engine(config, store, metrics, hub, executor)
            stop_watching = engine.metrics.watch(engine.pool_statistics)
            try:
                with unwrap_single_error():
                    async with trio.open_nursery() as nursery:
                        engine._nursery = nursery
                        await nursery.start(store.run_background, engine)
                        for lane in list(engine.lanes.values()):
                            await nursery.start(lane.run)
                        await nursery.start(engine.flows.run)
                        await nursery.start(engine.schedules.run)
                        nursery.start_soon(engine._evict_expired)
                        try:
                            yield engine
                        finally:
                            engine._stop_accepting()
                            nursery.cancel_scope.cancel()
            finally:
                stop_watching()
                with trio.CancelScope(shield=True):
                    await engine.set_aside_queued()
                engine._stopped_now()
    finally:
        with trio.CancelScope(shield=True):
            await store.close()


__all__ = ["SHARED_COUNTS_MAX_AGE", "Engine", "EngineClosed", "EngineStatistics", "open_engine"]
