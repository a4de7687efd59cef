"""What a store keeps of LangGraph threads (``POST /threads``): each thread's metadata,
status and latest values. A thread's state itself is LangGraph's checkpoints, kept by
LangGraph's checkpointer in the worker processes (see :mod:`graphnursery._threads`); its
runs are jobs with its ``thread_id``.

:class:`ThreadKeeper` is the interface (a base of :class:`~graphnursery.store.Store`);
the memory store keeps threads in a dict, the SQL stores in a table (:mod:`._threads_sql`).
A job of a thread that ends updates its thread in the same step (:func:`after_run`).
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ..jobs import Job, JobStatus

#: LangGraph's key for a run's interrupts in its output (``langgraph.constants``).
INTERRUPT = "__interrupt__"


@dataclass(frozen=True, slots=True)
class ThreadRecord:
    thread_id: str
    workspace: str
    metadata: dict[str, Any]
    created_at: float
    updated_at: float
    status: str = "idle"
    #: The state's values after the thread's last run, as JSON text (None: no run yet).
    values: bytes | None = None
    #: The interrupts its last run stopped at, by interrupt id, as JSON text.
    interrupts: bytes = b"{}"

    def replace(self, **changes: Any) -> ThreadRecord:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class ThreadQuery:
    """What ``POST /threads/search`` asks: threads of one workspace (None: any)."""

    workspace: str | None = None
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    values: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    ids: Sequence[str] | None = None
    status: str | None = None
    limit: int = 10
    offset: int = 0

    def matches(self, thread: ThreadRecord) -> bool:
        if self.status is not None and thread.status != self.status:
            return False
        if self.ids is not None and thread.thread_id not in self.ids:
            return False
        if any(thread.metadata.get(key) != value for key, value in self.metadata.items()):
            return False
        if self.values:
            values = orjson.loads(thread.values) if thread.values else {}
            if not isinstance(values, dict):
                return False
            return all(values.get(key) == value for key, value in self.values.items())
        return True

    def page(self, threads: Iterable[ThreadRecord]) -> list[ThreadRecord]:
        """The page of ``threads`` (newest first) that match."""
        found: list[ThreadRecord] = []
        skipped = 0
        for thread in threads:
            if not self.matches(thread):
                continue
            if skipped < self.offset:
                skipped += 1
                continue
            found.append(thread)
            if len(found) >= self.limit:
                break
        return found


def after_run(job: Job, result: bytes | None, others_active: bool) -> dict[str, Any]:
    """How a thread changes when a run of it ends (``job`` terminal, ``result`` its JSON
    text): its status, and its values and interrupts when the run completed.
    ``others_active``: another run of the thread is queued or running (it stays busy)."""
    changes: dict[str, Any] = {}
    output = None
    if job.status is JobStatus.COMPLETED and result is not None:
        try:
            output = orjson.loads(result)
        except orjson.JSONDecodeError:
            output = None
    interrupts = output.get(INTERRUPT) if isinstance(output, dict) else None
    if job.status is JobStatus.COMPLETED:
        if isinstance(output, dict):
            values = {key: value for key, value in output.items() if key != INTERRUPT}
            changes["values"] = orjson.dumps(values)
        elif output is not None:
            changes["values"] = result
        by_id = {
            str(item.get("id", "")) if isinstance(item, dict) else "": [item]
            for item in interrupts or ()
        }
        changes["interrupts"] = orjson.dumps(by_id)
        status = "interrupted" if interrupts is not None else "idle"
    elif job.status is JobStatus.CANCELLED:
        status = "idle"
    else:
        status = "error"
    changes["status"] = "busy" if others_active else status
    return changes


class ThreadKeeper(abc.ABC):
    """LangGraph threads (their runs are jobs: see ``Store.thread_jobs``)."""

    @abc.abstractmethod
    async def add_thread(self, thread: ThreadRecord) -> ThreadRecord | None:
        """Record a new thread; None (recording nothing) if its id is taken."""

    @abc.abstractmethod
    async def get_thread(self, thread_id: str, workspace: str | None = None) -> ThreadRecord | None:
        """The thread (of ``workspace`` only, when given), or None."""

    @abc.abstractmethod
    async def update_thread(
        self, thread_id: str, workspace: str | None, now: float, **changes: Any
    ) -> ThreadRecord | None:
        """Change a thread: ``metadata`` (merged into its own), ``status``, ``values``,
        ``interrupts``; None if it is unknown (or another workspace's)."""

    @abc.abstractmethod
    async def delete_thread(self, thread_id: str, workspace: str | None = None) -> bool:
        """Forget a thread and every run (job) of it; False if it was unknown."""

    @abc.abstractmethod
    async def search_threads(self, query: ThreadQuery) -> list[ThreadRecord]:
        """The threads that match ``query``, newest first, a page of them."""

    @abc.abstractmethod
    async def thread_jobs(
        self, thread_id: str, limit: int = 10, offset: int = 0, *, active: bool = False
    ) -> list[Job]:
        """The thread's runs, newest first (``active``: only the queued and running)."""
