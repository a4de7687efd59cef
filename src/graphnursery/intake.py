"""How jobs reach the queue, and what becomes of unfinished ones, for each kind of store.

The engine holds one :class:`Intake`, picked by :func:`intake_for` from the store's kind, and
asks it instead of branching on the store:

- :class:`Intake` (memory store): ``submit`` records a job and puts it on the queue;
  a job the engine stops before it ends is ended ``cancelled``.
- :class:`DurableIntake` (SQLite): the same, and on start :func:`feed_backlog` queues the
  jobs a previous run left; a job the engine stops stays queued in the store (a running one
  goes back to the queue), for the next start.
- :class:`SharedIntake` (PostgreSQL, several replicas): ``submit`` only records a job; a
  :class:`Claimer` claims jobs from the store as this replica's workers free up and queues
  those, so each job runs once. :class:`SharedQueueLength` bounds submits by the queue
  length across replicas; a job this replica stops goes back to the store for any replica.

Each intake owns a nursery (:meth:`Intake.run`) for the work that brings jobs in and for the
retries waiting out their backoff.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import trio

from .errors import StoreUnavailable
from .jobqueue import JobQueue
from .jobs import DEFAULT_WORKSPACE, Job, JobStatus
from .logs import get_logger
from .store import Shares, Store

log = get_logger("graphnursery.engine")

#: A shared store's per-status counts are re-read at most this often (seconds): counting
#: scans the table, and every replica's probes and scrapes would each run the query.
SHARED_COUNTS_MAX_AGE = 1.0


class Unfinished(enum.Enum):
    """Where a job was when the engine stopped without finishing it."""

    QUEUED = "queued"  # on the queue
    BACKING_OFF = "backing off"  # a retry waiting out its backoff
    RUNNING = "running"  # its worker process was killed


class Intake:
    """The memory store's intake, and the base of the others."""

    def __init__(self, store: Store, queue: JobQueue, graphs: Sequence[str]) -> None:
        self.store = store
        self.queue = queue
        self.graphs = tuple(graphs)  # whose jobs this intake brings in (see Lane)
        self._nursery: trio.Nursery | None = None
        self._bringing_in = trio.CancelScope()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Bring jobs in from the store (if it has any to give) until cancelled; own the
        retries waiting out their backoff."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            with self._bringing_in:
                await self._bring_in()
            await trio.sleep_forever()  # retries may still wait out their backoff

    async def _bring_in(self) -> None:
        await trio.sleep_forever()

    def stop_bringing_in(self) -> None:
        """No more jobs come in from the store (drain); ``submit`` is refused elsewhere."""
        self._bringing_in.cancel()

    async def admit(self, new: Job, idempotency_key: str | None, delay: float = 0.0) -> Job | None:
        """Record a new job and queue it (after ``delay`` seconds). None if there is no
        room (the caller answers QueueFull); a job already submitted with the key, if
        there is one."""
        if len(self.queue) >= self.queue.capacity:
            return None
        job = await self.store.add(new, idempotency_key, delay)
        if job is not new:  # the same key, submitted meanwhile
            return job
        if delay > 0:
            self.retry_later(job.id, delay, job.workspace)  # held, counted as queued
            return job
        try:
            self.queue.put_nowait(job.id, job.workspace)
        except trio.WouldBlock:
            await self.store.remove(job.id)
            return None
        return job

    async def has_room(self) -> bool:
        """Whether the queue takes one more job now."""
        await trio.lowlevel.checkpoint()
        return len(self.queue) < self.queue.capacity

    async def fire(
        self, schedule_id: str, planned: float, next_fire_at: float, fired_at: float, job: Job
    ) -> bool:
        """A schedule's tick: record ``job`` with it (``Store.fire_schedule``: once across
        servers) and queue it. False if another server fired the tick first."""
        if not await self.store.fire_schedule(schedule_id, planned, next_fire_at, fired_at, job):
            return False
        await self.queue.put(job.id, job.workspace)  # waits if submits filled it meanwhile
        return True

    async def queued_of(self, workspace: str) -> int:
        """How many of the workspace's jobs wait on this graph's queue."""
        await trio.lowlevel.checkpoint()
        return self.queue.queued_of(workspace)

    async def counts(self) -> Mapping[JobStatus, int]:
        """This graph's jobs, by status."""
        return await self.store.counts(self.graphs)

    def retry_later(self, job_id: str, delay: float, workspace: str = DEFAULT_WORKSPACE) -> None:
        """A retry waiting out its backoff: counted as queued, queued when it is over."""
        assert self._nursery is not None, "the intake is not running"
        self.queue.hold(job_id, workspace)
        self._nursery.start_soon(self._requeue_after, job_id, delay)

    async def _requeue_after(self, job_id: str, delay: float) -> None:
        await trio.sleep(delay)
        await self.queue.put_held(job_id)

    def run_ended(self) -> None:
        """A runner finished with a job (a worker is free)."""

    def work_available(self) -> None:
        """The store says jobs may be waiting to be claimed."""

    async def unfinished(self, job_id: str, where: Unfinished) -> bool:
        """The engine stops and will not finish this job. True: end it ``cancelled``;
        False: the store keeps it for later (handed back here if need be)."""
        return True


class DurableIntake(Intake):
    """SQLite: jobs outlive the process; the last run's backlog is queued on start."""

    async def _bring_in(self) -> None:
        await feed_backlog(self.store, self.queue, self.retry_later, self.graphs)

    async def unfinished(self, job_id: str, where: Unfinished) -> bool:
        if where is Unfinished.RUNNING:
            await self.store.release(job_id)  # queued again, for the next start
        return False


class SharedIntake(Intake):
    """PostgreSQL: jobs reach this replica's queue only by being claimed."""

    def __init__(
        self, store: Store, queue: JobQueue, graphs: Sequence[str], claimer: Claimer
    ) -> None:
        super().__init__(store, queue, graphs)
        self._claimer = claimer
        self._length = SharedQueueLength(store, graphs)
        self._counts_lock = trio.Lock()
        self._counts: Mapping[JobStatus, int] = {}
        self._counts_until = -math.inf

    async def _bring_in(self) -> None:
        await self._claimer.run()

    async def admit(self, new: Job, idempotency_key: str | None, delay: float = 0.0) -> Job | None:
        """Record the job; the store tells every replica, and one of them claims it (once
        ``delay`` is over)."""
        if await self._length.get() >= self.queue.capacity:
            return None
        job = await self.store.add(new, idempotency_key, delay)
        if job is new:
            self._length.added()
        return job

    async def has_room(self) -> bool:
        return await self._length.get() < self.queue.capacity

    async def fire(
        self, schedule_id: str, planned: float, next_fire_at: float, fired_at: float, job: Job
    ) -> bool:
        """Record the tick's job; the store tells every replica, and one claims it."""
        fired = await self.store.fire_schedule(schedule_id, planned, next_fire_at, fired_at, job)
        if fired:
            self._length.added()
        return fired

    async def queued_of(self, workspace: str) -> int:
        """Across every replica: the store's count."""
        return await self.store.queued_count(self.graphs, workspace)

    async def counts(self) -> Mapping[JobStatus, int]:
        """At most SHARED_COUNTS_MAX_AGE seconds old; callers arriving together share one
        query."""
        async with self._counts_lock:
            if trio.current_time() >= self._counts_until:
                self._counts = await self.store.counts(self.graphs)
                self._counts_until = trio.current_time() + SHARED_COUNTS_MAX_AGE
            return self._counts

    def retry_later(self, job_id: str, delay: float, workspace: str = DEFAULT_WORKSPACE) -> None:
        """Nothing to hold here: the database keeps the job back until its backoff is over,
        then any replica may claim it."""

    def run_ended(self) -> None:
        self._claimer.job_ended()

    def work_available(self) -> None:
        self._claimer.wanted()

    async def unfinished(self, job_id: str, where: Unfinished) -> bool:
        await self.store.release(job_id)  # claimed here: let another replica run it
        return False


def intake_for(
    store: Store,
    queue: JobQueue,
    workers: int,
    lease_seconds: float,
    now: Callable[[], float],
    graphs: Sequence[str],
    shares: Shares | None = None,
) -> Intake:
    """The intake of one graph's jobs (those whose ``graph`` is among ``graphs``, the
    graph's name first) for the store's kind (its ``shared`` and ``durable`` attributes);
    a shared store's claims share workers between workspaces as ``shares`` says."""
    if store.shared:
        claimer = Claimer(store, queue, workers, lease_seconds, now, graphs, shares)
        return SharedIntake(store, queue, graphs, claimer)
    if store.durable:
        return DurableIntake(store, queue, graphs)
    return Intake(store, queue, graphs)


async def feed_backlog(
    store: Store,
    queue: JobQueue,
    queue_later: Callable[[str, float, str], None],
    graphs: Sequence[str],
) -> None:
    """Queue the jobs a previous run left queued, oldest first; a retry that was waiting
    out its backoff goes to ``queue_later(job_id, seconds_left)``.

    ``put`` waits while the queue is full, so a backlog larger than the queue goes in as
    runners make room. Meanwhile new submits mostly answer 429 (the queue is full); one that
    finds room between two pages runs before the rest of the backlog.
    """
    cursor: Any = None
    fed = 0
    while True:
        backlog, cursor = await store.resume(cursor, 256, graphs)
        for job_id, wait, workspace in backlog:
            if wait > 0:
                queue_later(job_id, wait, workspace)
            else:
                await queue.put(job_id, workspace)
            fed += 1
        if cursor is None:
            break
    if fed:
        log.info("resumed jobs queued before the last stop", count=fed, graph=graphs[0])


class Claimer:
    """Claims as many jobs as workers are free, whenever there may be some.

    Woken by the store (a job was submitted on any replica: :meth:`wanted`) or a runner (a
    worker freed up: :meth:`job_ended`); polls every ``lease_seconds / 4`` (at most 1 s) to
    find jobs whose lease expired.
    """

    def __init__(
        self,
        store: Store,
        queue: JobQueue,
        workers: int,
        lease_seconds: float,
        now: Callable[[], float],
        graphs: Sequence[str],
        shares: Shares | None = None,
    ) -> None:
        self._store = store
        self._queue = queue
        self._graphs = tuple(graphs)
        self._shares = shares
        self._workers = workers
        self._poll = min(1.0, lease_seconds / 4)
        self._now = now
        self.claimed = 0  # jobs claimed here and not yet ended
        self._wanted = trio.Event()

    def wanted(self) -> None:
        self._wanted.set()

    def job_ended(self) -> None:
        self.claimed -= 1
        self._wanted.set()

    async def run(self) -> None:
        while True:
            self._wanted = trio.Event()
            free = self._workers - self.claimed
            claimed: list[Job] = []
            if free > 0:
                try:
                    claimed = await self._store.claim(free, self._now(), self._graphs, self._shares)
                except StoreUnavailable:
                    raise  # away past store_unavailable_exit: the engine stops, saying why
                except Exception:  # the database is unreachable for now: try again later
                    log.exception("claiming jobs failed")
                self.claimed += len(claimed)
                for sent, job in enumerate(claimed):
                    try:
                        await self._queue.put(job.id, job.workspace)
                    except trio.Cancelled:  # stopping: hand back what no runner took
                        with trio.CancelScope(shield=True):
                            for unsent in claimed[sent:]:
                                await self._store.release(unsent.id)
                        raise
            if free > 0 and len(claimed) == free:
                continue  # there may be more
            with trio.move_on_after(self._poll):
                await self._wanted.wait()


class SharedQueueLength:
    """The queue length across replicas: a count re-read from the store at most every
    0.1 s, plus this replica's submits since. It may be overshot by what other replicas
    accept meanwhile."""

    def __init__(self, store: Store, graphs: Sequence[str]) -> None:
        self._store = store
        self._graphs = tuple(graphs)
        self._count = 0
        self._until = -math.inf

    async def get(self) -> int:
        now = trio.current_time()
        if now >= self._until:
            self._until = now + 0.1
            self._count = await self._store.queued_count(self._graphs)
        return self._count

    def added(self) -> None:
        self._count += 1
