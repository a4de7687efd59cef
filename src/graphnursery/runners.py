"""The runners: one task per worker takes job ids off the queue, runs each job through the
executor, and records how it ended — or queues it again when the retry policy says so.

A job's run, from the queue to its terminal status:

1. :meth:`Runners.run` takes a job id off the :class:`~graphnursery.jobqueue.JobQueue` and
   marks the job running in the store (one more attempt).
2. The executor runs it in a worker process, under the job's timeout.
3. An outcome in a ``retry_on`` status with attempts left goes back to the store and, after
   a backoff (exponential, full jitter), to the queue (the :class:`~graphnursery.intake.Intake`
   says how, for the store's kind). Any other outcome is handed to the runner's
   :class:`_Finisher`, which records it in the store, logs the job's end and wakes whoever
   long-polls the job.

A job the store says is no longer ours (cancelled, on any replica; its lease lapsed) is
stopped with :meth:`Runners.stop_here`: its cancel scope is cancelled, which kills its
worker process.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio

from . import tracing
from ._emit import StreamSpec
from .clock import Clock
from .config import Config
from .eventhub import EventHub
from .executor import GraphRunner
from .intake import Intake, Unfinished
from .jobqueue import JobQueue
from .jobs import Job, JobError, JobStatus, Outcome
from .logs import get_logger
from .metrics import Metrics
from .store import Store

if TYPE_CHECKING:
    from .lanes import Lane

log = get_logger("graphnursery.engine")

SHUTDOWN_ERROR = JobError("Cancelled", "the server shut down before the job finished")
#: The longest backoff before a retry, in seconds.
MAX_BACKOFF = 300.0


class Runners:
    """The engine's runner tasks and what they share: the jobs running now, the count of
    runs not yet recorded (drain waits for it), and the recent mean job duration."""

    def __init__(
        self,
        config: Config,
        store: Store,
        lane: Lane,
        queue: JobQueue,
        intake: Intake,
        metrics: Metrics,
        clock: Clock,
        wake: Callable[[str], None],
        hub: EventHub,
        graph: str,
    ) -> None:
        self._config = config
        self.hub = hub
        self._store = store
        self._lane = lane  # its live deployment runs each job
        self.graph = graph
        self._queue = queue
        self._intake = intake
        self._metrics = metrics
        self._clock = clock
        self._wake = wake
        self._retry_on = config.retry_statuses
        #: Cleared when the engine stops accepting jobs: a failed run then ends as it is.
        self.retrying = True
        #: Trace context of each queued job, from submit to start (tracing extra only).
        self.trace_carriers: dict[str, tracing.Carrier] = {}
        self.mean_duration = 0.0
        # Cancel scopes of the jobs running here, to stop one the store says is not ours.
        self._running: dict[str, _RunningJob] = {}
        # Runs in progress (taken off the queue, result not yet recorded).
        self._active = 0
        self._idle = trio.Event()
        # Set when the shutdown grace is over: the jobs stopped then are unfinished jobs.
        self._stopping = False

    # -- what the engine asks -----------------------------------------------------------------

    async def wait_idle(self, grace: float) -> bool:
        """Wait up to ``grace`` seconds for every run in progress to be recorded; True if
        none is left."""
        with trio.move_on_after(grace):
            while self._active:
                await self._idle.wait()
        return self._active == 0

    @property
    def active(self) -> int:
        return self._active

    def stop_all(self) -> None:
        """Kill every job running here (the shutdown grace is over): each ends as any job
        the engine stops before it finished (``cancelled``, or kept by a durable store)."""
        self._stopping = True
        for running in self._running.values():
            running.scope.cancel()

    def stop_here(self, job_id: str) -> trio.Event | None:
        """Stop the job if it runs here; the event is set once its worker is gone."""
        running = self._running.get(job_id)
        if running is None:
            return None
        running.scope.cancel()
        return running.stopped

    async def end_cancelled(self, job_id: str) -> None:
        """End a job the engine stops before it finished (memory store): ``cancelled``."""
        await self.finish(job_id, Outcome(JobStatus.CANCELLED, error=SHUTDOWN_ERROR))

    async def finish(self, job_id: str, outcome: Outcome) -> None:
        """Record a terminal outcome (unless the job is already terminal), log it, wake
        its readers."""
        job = await self._store.finish(
            job_id,
            outcome.status,
            self._clock.now(),
            outcome.result,
            outcome.error,
            record=outcome.record,
        )
        if job is None:
            return
        duration = job.duration
        if duration is not None:
            self.mean_duration = (
                0.8 * self.mean_duration + 0.2 * duration if self.mean_duration else duration
            )
        for level, logger_name, message in outcome.logs:
            log.log(level, message, job_id=job_id, graph_logger=logger_name)
        self.ended(job, outcome.traceback)

    def ended(self, job: Job, traceback: str = "") -> None:
        """A job reached its terminal status: count it, log its one line, wake its readers."""
        self._metrics.job_finished(job)
        log_job_end(job, traceback)
        self._wake(job.id)

    # -- the runner task ----------------------------------------------------------------------

    async def run(self) -> None:
        """One runner: jobs off the queue until it closes; its results recorded by its
        finisher task."""
        finisher = _Finisher(self)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(finisher.run)
            try:
                while (job_id := await self._queue.take()) is not None:
                    self._run_started()
                    try:
                        await self._run(job_id, finisher.finish)
                    finally:
                        self._queue.done(job_id)  # its workspace's max_running
                        self._run_ended()
                        self._intake.run_ended()
            finally:
                finisher.close()  # it records what it holds, then ends

    def _run_started(self) -> None:
        self._active += 1

    def _run_ended(self) -> None:
        self._active -= 1
        if not self._active:
            idle, self._idle = self._idle, trio.Event()
            idle.set()

    async def _run(self, job_id: str, finish: Callable[[Job, Outcome], Awaitable[None]]) -> None:
        carrier = self.trace_carriers.pop(job_id, None)
        deployment = self._lane.deployment()  # the live version when the job starts
        with deployment.use() as executor:
            job = await self._store.start(job_id, self._clock.now(), deployment.version)
            if job is None:  # no longer queued (evicted or already terminal)
                return
            await self._run_on(executor, job, carrier, finish)

    async def _run_on(
        self,
        executor: GraphRunner,
        job: Job,
        carrier: tracing.Carrier | None,
        finish: Callable[[Job, Outcome], Awaitable[None]],
    ) -> None:
        self._metrics.job_started(job)
        self.hub.begin(job)
        stream = StreamSpec(job.id, job.attempts, job.stream_mode, self._config.max_job_events)
        # Cancelled when the store says the job is no longer ours to run (cancelled on
        # another replica, or our lease lapsed): then the store already holds its status.
        with trio.CancelScope() as ours, tracing.running(job, carrier) as run_trace:
            running = self._running[job.id] = _RunningJob(ours)
            try:
                async with self._lane.turns.turn(job.thread_id):  # a thread's runs: in turn
                    outcome = await executor.run(
                        job.input, job.timeout, run_trace.carrier, stream, run_options(job)
                    )
            except trio.Cancelled:
                self.hub.abandon(job)
                if not ours.cancel_called or self._stopping:  # the engine is stopping
                    with trio.CancelScope(shield=True):
                        if await self._intake.unfinished(job.id, Unfinished.RUNNING):
                            await self.end_cancelled(job.id)
                raise
            finally:
                del self._running[job.id]
                running.stopped.set()
            run_trace.outcome(outcome)
            self.hub.feed(job, outcome.events)
            if self._retries(job, outcome):
                await self.hub.end_attempt(job, outcome.events_sent)
                await self._retry(job, outcome)
            else:
                await finish(job, outcome)

    # -- retries ------------------------------------------------------------------------------

    def _retries(self, job: Job, outcome: Outcome) -> bool:
        return (
            self.retrying
            and outcome.status.value in self._retry_on
            and job.attempts < job.max_attempts
        )

    async def _retry(self, job: Job, outcome: Outcome) -> None:
        """Queue the job again after a backoff (exponential, full jitter); its error is kept."""
        assert outcome.error is not None
        ceiling = min(MAX_BACKOFF, self._config.retry_backoff * 2 ** (job.attempts - 1))
        delay = random.uniform(0, ceiling)
        self.hub.retrying(job, outcome.error, delay)
        await self._store.release(job.id, outcome.error, delay)
        self._metrics.jobs_retried.inc()
        log.info(
            "job will be retried",
            job_id=job.id,
            attempt=job.attempts,
            max_attempts=job.max_attempts,
            error_type=outcome.error.type,
            delay_seconds=round(delay, 3),
        )
        self._intake.retry_later(job.id, delay, job.workspace)


def run_options(job: Job) -> dict[str, Any] | None:
    """What the worker needs of a LangGraph API run (None for other jobs)."""
    if job.run_options is None and job.thread_id is None:
        return None
    return {**(job.run_options or {}), "thread_id": job.thread_id, "run_id": job.id}


def log_job_end(job: Job, traceback: str = "") -> None:
    """One line per job that ended: info when it completed or was cancelled, warning with
    the error (and the graph's traceback, for the server log only) when it failed."""
    fields: dict[str, Any] = {
        "job_id": job.id,
        "graph": job.graph,
        "version": job.version,
        "status": job.status.value,
        "attempt": job.attempts,
        "duration_ms": _ms(job.duration),
        "queue_ms": None if job.started_at is None else _ms(job.started_at - job.created_at),
        "events": job.events,
    }
    if job.events_dropped:
        fields["events_dropped"] = job.events_dropped
    if job.error is None or job.status is JobStatus.CANCELLED:
        log.info("job ended", **fields)
        return
    log.warning(
        "job ended",
        **fields,
        error_type=job.error.type,
        error=job.error.message,
        graph_traceback=traceback or None,
    )


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(max(seconds, 0.0) * 1000, 3)


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

    def __init__(self, runners: Runners) -> None:
        self._runners = runners
        # One result in flight per runner: a slow store holds its runner back.
        self._send, self._receive = trio.open_memory_channel[tuple[Job, Outcome]](0)

    async def finish(self, job: Job, outcome: Outcome) -> None:
        self._runners._run_started()
        try:
            self._send.send_nowait((job, outcome))
        except trio.WouldBlock:
            try:
                await self._send.send((job, outcome))
            except trio.Cancelled:  # stopping while the last result is recorded
                await self._record(job, outcome)
                raise

    async def run(self) -> None:
        async for job, outcome in self._receive:
            for _ in range(self.DISPATCH_PASSES):
                await trio.lowlevel.cancel_shielded_checkpoint()
            await self._record(job, outcome)
            del outcome  # not kept until the next result: it may be large

    async def _record(self, job: Job, outcome: Outcome) -> None:
        try:
            with trio.CancelScope(shield=True):  # a result in hand is written, even on stop
                # The job's events first: a stream that sees it end has seen them all.
                await self._runners.hub.end_attempt(job, outcome.events_sent)
                await self._runners.finish(job.id, outcome)
        finally:
            self._runners._run_ended()

    def close(self) -> None:
        self._send.close()
