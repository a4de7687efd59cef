"""Where a durable or shared store's jobs come onto the queue, besides ``submit``.

- Durable store (SQLite), on start: :func:`feed_backlog` queues the jobs a previous run left.
- Shared store (PostgreSQL, several replicas): ``submit`` only records a job; a
  :class:`Claimer` claims jobs from the store as this replica's workers free up and queues
  those, so each job runs once. :class:`SharedQueueLength` bounds submits by the queue length
  across replicas.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import trio

from .jobqueue import JobQueue
from .jobs import Job
from .logs import get_logger
from .store import Store

log = get_logger("graphnursery.engine")


async def feed_backlog(
    store: Store, queue: JobQueue, queue_later: Callable[[str, float], None]
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
        backlog, cursor = await store.resume(cursor, 256)
        for job_id, wait in backlog:
            if wait > 0:
                queue_later(job_id, wait)
            else:
                await queue.put(job_id)
            fed += 1
        if cursor is None:
            break
    if fed:
        log.info("resumed jobs queued before the last stop", count=fed)


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
    ) -> None:
        self._store = store
        self._queue = queue
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
                    claimed = await self._store.claim(free, self._now())
                except Exception:  # the database is unreachable for now: try again later
                    log.exception("claiming jobs failed")
                self.claimed += len(claimed)
                for sent, job in enumerate(claimed):
                    try:
                        await self._queue.put(job.id)
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

    def __init__(self, store: Store) -> None:
        self._store = store
        self._count = 0
        self._until = -math.inf

    async def get(self) -> int:
        now = trio.current_time()
        if now >= self._until:
            self._until = now + 0.1
            self._count = await self._store.queued_count()
        return self._count

    def added(self) -> None:
        self._count += 1
