"""The store interface: where job records live. The store is the single source of truth."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any

from ..jobs import Job, JobError, JobStatus


class Store(abc.ABC):
    """Keeps job records and moves them through their statuses.

    Transitions are the store's to enforce: :meth:`finish` never overwrites a terminal
    job, so a late result (say, of a job that already timed out) cannot replace its status.
    """

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Prepare the store (connect, migrate). Called once before use."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release the store's resources."""

    @abc.abstractmethod
    async def add(self, job: Job) -> None:
        """Record a new queued job."""

    @abc.abstractmethod
    async def remove(self, job_id: str) -> None:
        """Forget a job that was never accepted (e.g. the queue was full)."""

    @abc.abstractmethod
    async def get(self, job_id: str) -> Job | None:
        """The job as it stands, or None if unknown or evicted."""

    @abc.abstractmethod
    async def start(self, job_id: str, started_at: float) -> Job | None:
        """Mark a queued job running (one more attempt); None if it is not queued."""

    @abc.abstractmethod
    async def finish(
        self,
        job_id: str,
        status: JobStatus,
        completed_at: float,
        result: Any = None,
        error: JobError | None = None,
    ) -> Job | None:
        """Move a job to a terminal status; None if it is unknown or already terminal."""

    @abc.abstractmethod
    async def evict(self, finished_before: float) -> int:
        """Delete jobs that finished before the given time; returns how many."""

    @abc.abstractmethod
    async def counts(self) -> Mapping[JobStatus, int]:
        """How many kept jobs are in each status."""
