"""The engine: queue, runners, waiters and eviction around an executor and a store.

A job's path: :meth:`Engine.submit` records it in the store and puts its id on the
:class:`~graphnursery.jobqueue.JobQueue` (a bounded Trio memory channel). One runner task
per worker takes ids off the queue and runs each job through the executor, whose
``trio.CapacityLimiter`` caps running jobs at ``workers``. A task per runner records the
outcome in the store, and anyone long-polling the job is woken by a ``trio.Event``. A
background task evicts finished jobs older than ``result_ttl``.

Durable stores change two things (see :mod:`graphnursery.intake`): on start a feeder task
puts the jobs a previous run left queued on the queue, and on stop running jobs go back to
the queue instead of ending ``cancelled``. With a *shared* store (PostgreSQL, several
replicas), ``submit`` only records the job; a claimer task claims jobs from the store as
workers free up and puts those on the queue, so each job runs once.

Everything runs in one nursery owned by :func:`open_engine`; leaving it stops the engine:
running jobs' worker processes are killed and every unfinished job ends ``cancelled``
(memory store) or stays queued for the next start or another replica (durable stores).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import trio

from . import tracing
from .config import Config
from .errors import EngineClosed, InvalidTimeout, JobConflict, JobNotFound, QueueFull
from .executor import GraphRunner, open_executor
from .intake import Claimer, SharedQueueLength, feed_backlog
from .jobqueue import JobQueue
from .jobs import Job, JobError, JobStatus, Outcome, new_job_id
from .logs import get_logger
from .metrics import Metrics
from .store import Store, open_store

log = get_logger("graphnursery.engine")

SHUTDOWN_ERROR = JobError("Cancelled", "the server shut down before the job finished")
CANCELLED_ERROR = JobError("Cancelled", "cancelled by request")
#: A shared store's per-status counts are re-read at most this often (seconds): counting
#: scans the table, and every replica's probes and scrapes would each run the query.
SHARED_COUNTS_MAX_AGE = 1.0


class Clock:
    """Wall-clock timestamps that advance with Trio's clock.

    Timestamps stay real dates, yet tests driving Trio's ``autojump_clock`` move them too,
    so TTLs and durations are testable without waiting.
    """

    def __init__(self) -> None:
        self._wall_start = time.time()
        self._trio_start = trio.current_time()

    def now(self) -> float:
        return self._wall_start + (trio.current_time() - self._trio_start)


@dataclass(frozen=True, slots=True)
class EngineStatistics:
    queued: int
    running: int
    completed: int
    failed: int
    timed_out: int
    cancelled: int
    crashed: int
    total: int
    workers: int
    available_workers: int
    queue_capacity: int
    worker_restarts: int
    uptime: float


class Engine:
    """Accepts jobs and runs them. Create one with :func:`open_engine`."""

    def __init__(
        self, config: Config, store: Store, executor: GraphRunner, metrics: Metrics
    ) -> None:
        self.config = config
        self.store = store
        self.executor = executor
        self.metrics = metrics
        self.clock = Clock()
        self._started_at = trio.current_time()
        self._queue = JobQueue(config.queue_size)
        self._done: dict[str, trio.Event] = {}
        # Trace context of each queued job, from submit to start (tracing extra only).
        self._trace_carriers: dict[str, tracing.Carrier] = {}
        self._mean_duration = 0.0
        self._accepting = True
        self._draining = False
        self._stopped = False
        # Runs in progress (taken off the queue, not yet ended), for drain to wait on.
        self._active = 0
        self._idle = trio.Event()
        # The task that brings jobs in from the store (backlog feeder or claimer).
        self._intake = trio.CancelScope()
        self._retry_on = config.retry_statuses
        self._nursery: trio.Nursery  # set by open_engine
        # Cancel scopes of the jobs running here, to stop one the store says is not ours.
        self._running: dict[str, _RunningJob] = {}
        # Shared store: claims jobs as workers free up; bounds submits across replicas.
        self._claimer = (
            Claimer(store, self._queue, config.workers, config.lease_seconds, self.clock.now)
            if store.shared
            else None
        )
        self._shared_length = SharedQueueLength(store)
        self._counts_lock = trio.Lock()
        self._shared_counts: Mapping[JobStatus, int] = {}
        self._counts_until = -math.inf

    # -- the public surface ---------------------------------------------------------------

    @property
    def accepting(self) -> bool:
        return self._accepting

    @property
    def draining(self) -> bool:
        return self._draining

    async def drain(self, grace: float) -> bool:
        """Stop taking jobs and give the running ones up to ``grace`` seconds to finish.

        New submits raise EngineClosed at once; jobs still queued end ``cancelled``
        (memory store) or stay queued for the next start or another replica (durable
        stores). Returns True if every running job finished in time; those that did not
        are stopped when the engine closes, like any unfinished job.
        """
        self._accepting = False
        self._draining = True
        self._intake.cancel()
        await self._cancel_queued()
        log.info("draining", running=self._active, grace_seconds=grace)
        with trio.move_on_after(grace):
            while self._active:
                await self._idle.wait()
        return self._active == 0

    async def submit(
        self,
        job_input: Any,
        *,
        timeout: float | None = None,
        idempotency_key: str | None = None,
        max_attempts: int | None = None,
    ) -> Job:
        """Queue a job. Raises QueueFull when the queue is at capacity.

        With an ``idempotency_key`` that a kept job was submitted with, queue nothing and
        return that job (whatever this call's input): a client's retry cannot run it twice.
        """
        if not self._accepting:
            raise EngineClosed(
                "the server is draining" if self._draining else "the engine is not accepting jobs"
            )
        if timeout is None:
            timeout = self.config.job_timeout
        elif not 0 < timeout <= self.config.max_job_timeout:
            raise InvalidTimeout(timeout, self.config.max_job_timeout)
        if idempotency_key is not None:
            existing = await self.store.find_by_key(idempotency_key)
            if existing is not None:
                return existing
        if self.store.shared:
            job = await self._submit_shared(job_input, timeout, idempotency_key, max_attempts)
        else:
            if self.queue_length() >= self.config.queue_size:
                raise self._queue_full()
            new = self._new_job(job_input, timeout, max_attempts)
            job = await self.store.add(new, idempotency_key)
            if job is not new:  # the same key, submitted meanwhile
                return job
            try:
                self._queue.put_nowait(job.id)
            except trio.WouldBlock:
                await self.store.remove(job.id)
                raise self._queue_full() from None
        carrier = tracing.submitted(job)
        if carrier is not None:
            self._trace_carriers[job.id] = carrier
        self.metrics.jobs_submitted.inc()
        return job

    async def get(self, job_id: str) -> Job:
        job = await self.store.get(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    async def wait(self, job_id: str, timeout: float) -> Job:
        """The job once it is terminal, or as it stands after ``timeout`` seconds."""
        if timeout <= 0:
            return await self.get(job_id)
        # Registered before reading the job: a shared store may report it done meanwhile.
        event = self._done.get(job_id)
        if event is None:
            event = self._done[job_id] = trio.Event()
        try:
            job = await self.get(job_id)
        except JobNotFound:
            self._forget_waiter(job_id, event)
            raise
        if job.status.is_terminal:
            # Anyone else holding this event reads the job too and finds it terminal.
            self._forget_waiter(job_id, event)
            return job
        with trio.move_on_after(timeout):
            await event.wait()
        if self._stopped:
            raise EngineClosed("the engine stopped")
        return await self.get(job_id)

    def _forget_waiter(self, job_id: str, event: trio.Event) -> None:
        if not event.is_set() and self._done.get(job_id) is event:
            del self._done[job_id]

    async def cancel(self, job_id: str) -> Job:
        """Cancel a job: a queued one never runs; a running one's worker process is killed.

        Raises JobNotFound, or JobConflict if the job is already terminal.
        """
        job = await self.store.cancel(job_id, self.clock.now(), CANCELLED_ERROR)
        if job is None:
            current = await self.get(job_id)
            raise JobConflict(job_id, current.status.value)
        stopped = self._stop_here(job_id)  # the runner ends without a result
        if stopped is not None:
            await stopped.wait()  # answer once its worker process is gone
        self.metrics.job_finished(job)
        log.info("job cancelled", job_id=job_id)
        self._wake(job_id)
        return job

    async def resubmit(self, job_id: str) -> Job:
        """Run a finished job (a dead letter, say) again, as a new job with the same input,
        timeout and attempts. Raises JobNotFound, or JobConflict (action "retry")
        if the job has not finished."""
        job = await self.get(job_id)
        if not job.status.is_terminal:
            raise JobConflict(job_id, job.status.value, action="retry")
        new = await self.submit(job.input, timeout=job.timeout, max_attempts=job.max_attempts)
        log.info("job resubmitted", job_id=new.id, retry_of=job_id)
        return new

    async def list_jobs(
        self, status: JobStatus | None = None, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[Job], str | None]:
        """A page of kept jobs, oldest first, optionally of one status (dead letters...)."""
        return await self.store.list_jobs(status, limit, cursor)

    def _wake(self, job_id: str) -> None:
        event = self._done.pop(job_id, None)
        if event is not None:
            event.set()

    def position(self, job_id: str) -> int | None:
        """How many queued jobs are ahead of this one; None if it is not queued."""
        return self._queue.position(job_id)

    def queue_length(self) -> int:
        """Jobs waiting here: on the queue, or waiting out a retry's backoff to get on it."""
        return len(self._queue)

    def retry_after(self) -> float:
        """Seconds until the queue likely has room, from its length and recent job times."""
        per_job = self._mean_duration or 1.0
        return max(1.0, min(300.0, math.ceil(self.queue_length() * per_job / self.config.workers)))

    async def statistics(self) -> EngineStatistics:
        counts = await self._counts()
        executor = self.executor.statistics()
        return EngineStatistics(
            queued=counts[JobStatus.QUEUED],
            running=counts[JobStatus.RUNNING],
            completed=counts[JobStatus.COMPLETED],
            failed=counts[JobStatus.FAILED],
            timed_out=counts[JobStatus.TIMED_OUT],
            cancelled=counts[JobStatus.CANCELLED],
            crashed=counts[JobStatus.CRASHED],
            total=sum(counts.values()),
            workers=executor.workers,
            available_workers=executor.idle_workers,
            queue_capacity=self.config.queue_size,
            worker_restarts=self.executor.worker_restarts,
            uptime=trio.current_time() - self._started_at,
        )

    async def _counts(self) -> Mapping[JobStatus, int]:
        """The store's per-status counts; a shared store's at most SHARED_COUNTS_MAX_AGE
        seconds old, callers arriving together sharing one query."""
        if not self.store.shared:
            return await self.store.counts()
        async with self._counts_lock:
            if trio.current_time() >= self._counts_until:
                self._shared_counts = await self.store.counts()
                self._counts_until = trio.current_time() + SHARED_COUNTS_MAX_AGE
            return self._shared_counts

    # -- inside the engine's nursery -----------------------------------------------------

    def _queue_full(self) -> QueueFull:
        self.metrics.jobs_rejected.labels("queue_full").inc()
        return QueueFull(self.config.queue_size, self.retry_after())

    async def _runner(self) -> None:
        finisher = _Finisher(self)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(finisher.run)
            try:
                while (job_id := await self._queue.take()) is not None:
                    self._active += 1
                    try:
                        await self._run(job_id, finisher.finish)
                    finally:
                        self._run_ended()
                        if self._claimer is not None:
                            self._claimer.job_ended()
            finally:
                finisher.close()  # it records what it holds, then ends

    def _run_ended(self) -> None:
        self._active -= 1
        if not self._active:
            idle, self._idle = self._idle, trio.Event()
            idle.set()

    async def _run(self, job_id: str, finish: Callable[[str, Outcome], Awaitable[None]]) -> None:
        carrier = self._trace_carriers.pop(job_id, None)
        job = await self.store.start(job_id, self.clock.now())
        if job is None:  # no longer queued (evicted or already terminal)
            return
        self.metrics.job_started(job)
        # Cancelled when the store says the job is no longer ours to run (cancelled on
        # another replica, or our lease lapsed): then the store already holds its status.
        with trio.CancelScope() as ours, tracing.running(job, carrier) as run_trace:
            running = self._running[job.id] = _RunningJob(ours)
            try:
                outcome = await self.executor.run(job.input, job.timeout, run_trace.carrier)
            except trio.Cancelled:
                if not ours.cancel_called:  # the engine is stopping
                    with trio.CancelScope(shield=True):
                        await self._stop_unfinished(job.id)
                raise
            finally:
                del self._running[job.id]
                running.stopped.set()
            run_trace.outcome(outcome)
            if self._retries(job, outcome):
                await self._retry(job, outcome)
            else:
                await finish(job.id, outcome)

    async def _finish(self, job_id: str, outcome: Outcome) -> None:
        job = await self.store.finish(
            job_id, outcome.status, self.clock.now(), outcome.result, outcome.error
        )
        if job is None:
            return
        self.metrics.job_finished(job)
        duration = job.duration
        if duration is not None:
            self._mean_duration = (
                0.8 * self._mean_duration + 0.2 * duration if self._mean_duration else duration
            )
        for level, logger_name, message in outcome.logs:
            log.log(level, message, job_id=job_id, graph_logger=logger_name)
        if outcome.error is not None:
            log.warning(
                "job ended",
                job_id=job_id,
                status=outcome.status.value,
                error_type=outcome.error.type,
                error=outcome.error.message,
                graph_traceback=outcome.traceback or None,
            )
        self._wake(job_id)

    async def _evict_expired(self) -> None:
        ttl = self.config.result_ttl
        interval = min(max(ttl / 10, 0.01), 5.0)
        while True:
            await trio.sleep(interval)
            evicted = await self.store.evict(self.clock.now() - ttl)
            if evicted:
                log.debug("evicted expired jobs", count=evicted)

    async def _cancel_queued(self) -> None:
        """After the runners stop: every job still queued ends cancelled, none vanishes."""
        for job_id in self._queue.take_all_nowait():
            self._trace_carriers.pop(job_id, None)
            if self.store.shared:
                await self.store.release(job_id)  # claimed here: let another replica run it
            elif not self.store.durable:
                await self._finish(job_id, Outcome(JobStatus.CANCELLED, error=SHUTDOWN_ERROR))
            # (a durable store keeps it queued for the next start)
        # Retries waiting out their backoff are queued jobs too.
        backing_off = self._queue.take_held()
        if not self.store.durable:
            for job_id in backing_off:
                await self._finish(job_id, Outcome(JobStatus.CANCELLED, error=SHUTDOWN_ERROR))

    def _new_job(self, job_input: Any, timeout: float, max_attempts: int | None = None) -> Job:
        return Job(
            id=new_job_id(),
            input=job_input,
            status=JobStatus.QUEUED,
            created_at=self.clock.now(),
            timeout=timeout,
            max_attempts=max_attempts or self.config.max_attempts,
        )

    # -- retries -----------------------------------------------------------------------------

    def _retries(self, job: Job, outcome: Outcome) -> bool:
        return (
            outcome.status.value in self._retry_on
            and job.attempts < job.max_attempts
            and self._accepting
        )

    async def _retry(self, job: Job, outcome: Outcome) -> None:
        """Queue the job again after a backoff (exponential, full jitter); its error is kept.

        On a shared store the database holds it back until the backoff is over, then any
        replica may claim it; elsewhere a task in the engine's nursery puts it back on the
        queue when the backoff is over.
        """
        assert outcome.error is not None
        delay = random.uniform(0, min(300.0, self.config.retry_backoff * 2 ** (job.attempts - 1)))
        await self.store.release(job.id, outcome.error, delay)
        self.metrics.jobs_retried.inc()
        log.info(
            "job will be retried",
            job_id=job.id,
            attempt=job.attempts,
            max_attempts=job.max_attempts,
            error_type=outcome.error.type,
            delay_seconds=round(delay, 3),
        )
        if not self.store.shared:
            self._queue_later(job.id, delay)

    def _queue_later(self, job_id: str, delay: float) -> None:
        """A retry waiting out its backoff: counted as queued, queued when it is over."""
        self._queue.hold(job_id)
        self._nursery.start_soon(self._requeue_after, job_id, delay)

    async def _requeue_after(self, job_id: str, delay: float) -> None:
        await trio.sleep(delay)
        await self._queue.put_held(job_id)

    # -- durable and shared stores ---------------------------------------------------------

    async def _submit_shared(
        self,
        job_input: Any,
        timeout: float,
        idempotency_key: str | None,
        max_attempts: int | None,
    ) -> Job:
        """Record the job; the store tells every replica, and one of them claims it."""
        if await self._shared_length.get() >= self.config.queue_size:
            raise self._queue_full()
        new = self._new_job(job_input, timeout, max_attempts)
        job = await self.store.add(new, idempotency_key)
        if job is new:
            self._shared_length.added()
        return job

    async def _stop_unfinished(self, job_id: str) -> None:
        """The engine stops while a job runs: a durable store queues it again."""
        if self.store.durable:
            await self.store.release(job_id)
        else:
            await self._finish(job_id, Outcome(JobStatus.CANCELLED, error=SHUTDOWN_ERROR))

    async def _take_in(self, intake: Callable[[], Awaitable[None]]) -> None:
        with self._intake:  # drain() cancels it: no more jobs come in from the store
            await intake()

    def _stop_here(self, job_id: str) -> trio.Event | None:
        """Stop the job if it runs here; the event is set once its worker is gone."""
        running = self._running.get(job_id)
        if running is None:
            return None
        running.scope.cancel()
        return running.stopped


class _RunningJob:
    __slots__ = ("scope", "stopped")

    def __init__(self, scope: trio.CancelScope) -> None:
        self.scope = scope
        self.stopped = trio.Event()


class _Finisher:
    """Records a runner's results in a task of its own, so the worker gets its next job
    first: before a durable store's commit, and before the readers a result wakes
    (long-polls, their HTTP responses) take the event loop. A result waiting here counts
    as active, so drain waits for it. (A crash in between re-runs that job: at-least-once,
    as for any job running at a crash.)"""

    # trio-parallel writes a job to its worker two scheduler passes after run_sync is
    # called (its limiter, then the pipe). Recording waits as long, so the runner's next
    # job is on its way before the woken readers run: measured with sleep100 at c=16
    # over HTTP, the gap between a worker's jobs fell from 1.6 ms to 0.9 ms.
    DISPATCH_PASSES = 2

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        # One result in flight per runner: a slow store holds its runner back.
        self._send, self._receive = trio.open_memory_channel[tuple[str, Outcome]](0)

    async def finish(self, job_id: str, outcome: Outcome) -> None:
        self._engine._active += 1
        try:
            self._send.send_nowait((job_id, outcome))
        except trio.WouldBlock:
            try:
                await self._send.send((job_id, outcome))
            except trio.Cancelled:  # stopping while the last result is recorded
                await self._record(job_id, outcome)
                raise

    async def run(self) -> None:
        async for job_id, outcome in self._receive:
            for _ in range(self.DISPATCH_PASSES):
                await trio.lowlevel.cancel_shielded_checkpoint()
            await self._record(job_id, outcome)

    async def _record(self, job_id: str, outcome: Outcome) -> None:
        try:
            with trio.CancelScope(shield=True):  # a result in hand is written, even on stop
                await self._engine._finish(job_id, outcome)
        finally:
            self._engine._run_ended()

    def close(self) -> None:
        self._send.close()


class _EngineEvents:
    """What a shared store reports, applied to the engine (see ``StoreEvents``)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def job_done(self, job_id: str) -> None:
        self._engine._wake(job_id)

    def job_cancelled(self, job_id: str) -> None:
        self._engine._stop_here(job_id)
        self.job_done(job_id)

    def lease_lost(self, job_id: str) -> None:
        log.warning("lost the job's lease; stopping it here", job_id=job_id)
        self._engine._stop_here(job_id)

    def work_available(self) -> None:
        if self._engine._claimer is not None:
            self._engine._claimer.wanted()


@asynccontextmanager
async def _executor_for(config: Config, executor: GraphRunner | None) -> AsyncIterator[GraphRunner]:
    if executor is not None:
        yield executor
        return
    async with open_executor(
        config.graph,
        config.workers,
        config.log_level,
        max_jobs_per_worker=config.max_jobs_per_worker,
        max_worker_memory_mb=config.max_worker_memory_mb,
    ) as process_executor:
        yield process_executor


@contextmanager
def _unwrap_single_error() -> Iterator[None]:
    """Let an error raised in the ``async with open_engine()`` body out as itself.

    The body runs inside the engine's nursery, which would wrap it in an ExceptionGroup.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise


@asynccontextmanager
async def open_engine(
    config: Config,
    store: Store | None = None,
    *,
    executor: GraphRunner | None = None,
    metrics: Metrics | None = None,
) -> AsyncIterator[Engine]:
    """Start worker processes, load the graph in each, and run the engine.

    Returns once every worker has loaded the graph; raises
    :class:`~graphnursery.errors.GraphLoadError` if it cannot be loaded.
    Without ``store``, opens the one ``config.store`` names (default: SQLite,
    ``./graphnursery.db``); :class:`~graphnursery.errors.StoreError` if it cannot.
    On exit, running jobs are killed; unfinished jobs end ``cancelled`` (memory store) or
    are queued again (durable stores).
    ``executor`` replaces the worker processes (see ``InlineExecutor``, for tests).
    """
    if store is None:
        store = open_store(config.store, lease_seconds=config.lease_seconds)
    await store.open()
    try:
        async with _executor_for(config, executor) as running_executor:
            engine = Engine(config, store, running_executor, metrics or Metrics())
            stop_watching = engine.metrics.watch(engine)
            try:
                with _unwrap_single_error():
                    async with trio.open_nursery() as nursery:
                        await nursery.start(store.run_background, _EngineEvents(engine))
                        for _ in range(config.workers):
                            nursery.start_soon(engine._runner)
                        engine._nursery = nursery
                        nursery.start_soon(engine._evict_expired)
                        if engine._claimer is not None:
                            nursery.start_soon(engine._take_in, engine._claimer.run)
                        elif store.durable:
                            nursery.start_soon(
                                engine._take_in,
                                partial(feed_backlog, store, engine._queue, engine._queue_later),
                            )
                        try:
                            yield engine
                        finally:
                            engine._accepting = False
                            nursery.cancel_scope.cancel()
            finally:
                stop_watching()
                with trio.CancelScope(shield=True):
                    await engine._cancel_queued()
                # Whoever still waits on a job hears that the engine is gone.
                engine._stopped = True
                for event in engine._done.values():
                    event.set()
    finally:
        with trio.CancelScope(shield=True):
            await store.close()


__all__ = ["Engine", "EngineClosed", "EngineStatistics", "open_engine"]
