"""The in-memory store: the seed's behaviour, nothing survives a restart."""

from __future__ import annotations

import collections
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence

from ..events import RUNNING, RUNNING_DATA, JobEvent
from ..jobs import Job, JobError, JobStatus
from ._memory_catalog import MemoryCatalog
from ._memory_threads import MemoryThreads
from ._rows import INTERRUPTED, clean_error, decode_cursor, graph_counts, split_page
from .base import Store


class MemoryStore(MemoryCatalog, MemoryThreads, Store):
    """Jobs in a dict; finished ones evicted oldest-first from a deque in finish order.

    Memory is bounded by the engine: at most ``queue_size`` queued jobs, ``workers`` running
    ones, and the finished ones of the last ``result_ttl`` seconds.
    """

    def __init__(self) -> None:
        super().__init__()
        self._jobs: dict[str, Job] = {}
        self._finished: collections.deque[tuple[float, str]] = collections.deque()
        self._counts: collections.Counter[tuple[str, JobStatus]] = collections.Counter()
        self._by_key: dict[str, str] = {}  # idempotency key -> job id
        self._key_of: dict[str, str] = {}  # job id -> idempotency key
        # Each job's event log, in id order (event ``n`` at index ``n - 1``).
        self._logs: dict[str, list[JobEvent]] = {}
        self._checkpoint_dir: str | None = None  # threads' checkpoints, while open

    def _put(self, job: Job, previous: Job | None) -> None:
        if previous is not None:
            self._counts[previous.graph, previous.status] -= 1
        self._counts[job.graph, job.status] += 1
        self._jobs[job.id] = job
        if previous is None and job.thread_id is not None:
            self._thread_jobs.setdefault(job.thread_id, set()).add(job.id)

    async def add(self, job: Job, idempotency_key: str | None = None, delay: float = 0.0) -> Job:
        if job.id in self._jobs:
            raise ValueError(f"job {job.id} already exists")
        if idempotency_key is not None:
            existing = await self.find_by_key(idempotency_key)
            if existing is not None:
                return existing
            self._by_key[idempotency_key] = job.id
            self._key_of[job.id] = idempotency_key
        self._put(job, None)
        return job

    def _add_now(self, job: Job) -> None:
        self._put(job, None)

    async def find_by_key(self, idempotency_key: str) -> Job | None:
        job_id = self._by_key.get(idempotency_key)
        return None if job_id is None else self._jobs.get(job_id)

    def _forget(self, job_id: str) -> Job | None:
        job = self._jobs.pop(job_id, None)
        self._logs.pop(job_id, None)
        if job is not None:
            self._counts[job.graph, job.status] -= 1
            if job.thread_id is not None:
                self._thread_jobs.get(job.thread_id, set()).discard(job_id)
            key = self._key_of.pop(job_id, None)
            if key is not None:
                del self._by_key[key]
        return job

    async def remove(self, job_id: str) -> None:
        self._forget(job_id)

    @property
    def checkpoints(self) -> str:
        """A SQLite file in a temporary directory, for as long as the store is open."""
        if self._checkpoint_dir is None:
            return ""
        return "sqlite:" + os.path.join(self._checkpoint_dir, "threads.sqlite")

    async def open(self) -> None:
        self._checkpoint_dir = tempfile.mkdtemp(prefix="graphnursery-threads-")

    async def close(self) -> None:
        directory, self._checkpoint_dir = self._checkpoint_dir, None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)

    reads_anywhere = True  # get() is a dict lookup of immutable jobs
    logs_starts = True

    async def get(self, job_id: str, workspace: str | None = None) -> Job | None:
        job = self._jobs.get(job_id)
        if job is None or (workspace is not None and job.workspace != workspace):
            return None
        return job

    async def start(self, job_id: str, started_at: float, version: str = "") -> Job | None:
        job = self._jobs.get(job_id)
        if job is None or job.status is not JobStatus.QUEUED:
            return None
        log = self._logs.setdefault(job_id, [])
        log.append(JobEvent(len(log) + 1, job.attempts + 1, RUNNING, RUNNING_DATA))
        running = job.replace(
            status=JobStatus.RUNNING,
            started_at=started_at,
            attempts=job.attempts + 1,
            events=len(log),
            version=version or job.version,
        )
        self._put(running, job)
        return running

    async def finish(
        self,
        job_id: str,
        status: JobStatus,
        completed_at: float,
        result: bytes | None = None,
        error: JobError | None = None,
        record: bytes | None = None,
    ) -> Job | None:
        job = self._jobs.get(job_id)
        if job is None or job.status.is_terminal:
            return None
        # Errors are held to what the durable stores keep (NUL and lone surrogates escaped).
        error = None if error is None else clean_error(error)
        errors = job.errors if error is None else (*job.errors, error)
        done = job.replace(
            status=status,
            completed_at=completed_at,
            result_json=result,
            error=error,
            errors=errors,
            record=record,
        )
        self._put(done, job)
        self._finished.append((completed_at, job_id))
        self._thread_run_ended(done, result, completed_at)
        return done

    async def release(self, job_id: str, error: JobError = INTERRUPTED, delay: float = 0.0) -> None:
        job = self._jobs.get(job_id)
        if job is not None and job.status is JobStatus.RUNNING:
            queued = job.replace(status=JobStatus.QUEUED, errors=(*job.errors, clean_error(error)))
            self._put(queued, job)

    async def append_events(
        self,
        job_id: str,
        attempt: int,
        events: Sequence[tuple[str, bytes]],
        *,
        limit: int = 0,
        dropped: int = 0,
    ) -> bool:
        job = self._jobs.get(job_id)
        if job is None or job.status.is_terminal:
            return False
        log = self._logs.get(job_id)
        if log is None:
            log = self._logs[job_id] = []
        room = len(events) if not limit else max(0, min(len(events), limit - len(log)))
        last = len(log)
        for name, data in events[:room]:
            last += 1
            log.append(JobEvent(last, attempt, name, data))
        dropped += len(events) - room
        if room or dropped:
            self._jobs[job_id] = job.replace(
                events=last, events_dropped=job.events_dropped + dropped
            )
        return True

    async def read_events(
        self, job_id: str, after: int, limit: int
    ) -> tuple[Job, list[JobEvent]] | None:
        job = self._jobs.get(job_id)
        if job is None:
            return None
        log = self._logs.get(job_id, ())
        return job, list(log[max(after, 0) : max(after, 0) + limit])

    async def list_jobs(
        self,
        status: JobStatus | None = None,
        limit: int = 100,
        cursor: str | None = None,
        *,
        graph: str | None = None,
        workspace: str | None = None,
    ) -> tuple[list[Job], str | None]:
        after = decode_cursor(cursor) if cursor is not None else None
        # Kept jobs are bounded by the queue and result_ttl; a scan is fine for inspection.
        matching = sorted(
            (
                job
                for job in self._jobs.values()
                if (status is None or job.status is status)
                and (graph is None or job.graph == graph)
                and (workspace is None or job.workspace == workspace)
                and (after is None or (job.created_at, job.id) > after)
            ),
            key=lambda job: (job.created_at, job.id),
        )
        return split_page(matching, limit)

    async def evict(self, finished_before: float) -> int:
        evicted = 0
        while self._finished and self._finished[0][0] < finished_before:
            _, job_id = self._finished.popleft()
            if self._forget(job_id) is not None:
                evicted += 1
        return evicted

    async def counts(self, graphs: Sequence[str] | None = None) -> Mapping[JobStatus, int]:
        return graph_counts(self._counts, graphs)
