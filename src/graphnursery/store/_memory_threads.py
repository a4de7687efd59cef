"""The memory store's LangGraph threads, in a dict (see :mod:`.threads`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..jobs import Job
from .threads import ThreadKeeper, ThreadQuery, ThreadRecord, after_run


class MemoryThreads(ThreadKeeper):
    """Threads of a :class:`~graphnursery.store.MemoryStore` (its jobs: ``_jobs``)."""

    _jobs: dict[str, Job]

    def __init__(self) -> None:
        super().__init__()
        self._threads: dict[str, ThreadRecord] = {}
        self._thread_jobs: dict[str, set[str]] = {}  # thread id -> its kept jobs' ids

    def _forget(self, job_id: str) -> Job | None: ...

    async def add_thread(self, thread: ThreadRecord) -> ThreadRecord | None:
        if thread.thread_id in self._threads:
            return None
        self._threads[thread.thread_id] = thread
        return thread

    async def get_thread(self, thread_id: str, workspace: str | None = None) -> ThreadRecord | None:
        thread = self._threads.get(thread_id)
        if thread is None or (workspace is not None and thread.workspace != workspace):
            return None
        return thread

    async def update_thread(
        self, thread_id: str, workspace: str | None, now: float, **changes: Any
    ) -> ThreadRecord | None:
        thread = await self.get_thread(thread_id, workspace)
        if thread is None:
            return None
        metadata = changes.pop("metadata", None)
        if metadata is not None:
            changes["metadata"] = {**thread.metadata, **metadata}
        changed = self._threads[thread_id] = thread.replace(updated_at=now, **changes)
        return changed

    async def delete_thread(self, thread_id: str, workspace: str | None = None) -> bool:
        if await self.get_thread(thread_id, workspace) is None:
            return False
        for job in self._of(thread_id):
            self._forget(job.id)
        del self._threads[thread_id]
        self._thread_jobs.pop(thread_id, None)
        return True

    async def search_threads(self, query: ThreadQuery) -> list[ThreadRecord]:
        threads = sorted(
            (t for t in self._threads.values() if query.workspace in (None, t.workspace)),
            key=lambda t: (-t.created_at, t.thread_id),
        )
        return query.page(threads)

    def _of(self, thread_id: str) -> list[Job]:
        """The thread's kept jobs, newest first."""
        jobs = [self._jobs[job_id] for job_id in self._thread_jobs.get(thread_id, ())]
        return sorted(jobs, key=lambda job: (job.created_at, job.id), reverse=True)

    async def thread_jobs(
        self, thread_id: str, limit: int = 10, offset: int = 0, *, active: bool = False
    ) -> list[Job]:
        jobs: Iterable[Job] = self._of(thread_id)
        if active:
            jobs = [job for job in jobs if not job.status.is_terminal]
        return list(jobs)[offset : offset + limit]

    def _thread_run_ended(self, job: Job, result: bytes | None, now: float) -> None:
        if job.thread_id is None or job.thread_id not in self._threads:
            return
        others = any(
            not other.status.is_terminal and other.id != job.id for other in self._of(job.thread_id)
        )
        thread = self._threads[job.thread_id]
        self._threads[job.thread_id] = thread.replace(
            updated_at=now, **after_run(job, result, others)
        )
