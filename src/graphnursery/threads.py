"""LangGraph threads and their runs, as the LangGraph Platform API has them.

A thread is a record in the store (its metadata, status and latest values, see
:mod:`graphnursery.store.threads`) and LangGraph checkpoints, written by the worker
processes (:mod:`graphnursery._threads`). A run is a job of the assistant's graph with the
thread's id and the run's options (``run_options``: its assistant, config, command,
metadata...), so it has everything a job has: worker processes, timeouts, retries, crash
detection, events.

A run on a busy thread (one with a run queued or running) goes as its
``multitask_strategy`` says: ``reject`` (409), ``interrupt`` (the thread's runs are
cancelled, then it runs), ``rollback`` (they are cancelled and deleted), ``enqueue`` (it
waits its turn: :class:`~graphnursery.turns.ThreadTurns`).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import JobConflict, JobNotFound, ThreadConflict, ThreadNotFound, ThreadStateError
from .jobs import Job
from .logs import get_logger
from .store.threads import ThreadQuery, ThreadRecord

if TYPE_CHECKING:
    from .engine import Engine

log = get_logger("graphnursery.threads")

#: A thread's queued and running runs read at most, to put a new run's strategy to work.
ACTIVE_LIMIT = 1000


@dataclass(frozen=True)
class RunRequest:
    """One run the API was asked for (``POST /threads/{id}/runs``, ``/runs``...)."""

    graph: str
    assistant_id: str
    input: Any = None
    #: What the worker needs: config, context, command, interrupt_before/after,
    #: checkpoint, stream_subgraphs (see ``_threads``); and what the API shows: metadata.
    options: Mapping[str, Any] = field(default_factory=dict)
    stream_mode: tuple[str, ...] | None = None
    multitask_strategy: str = "reject"
    if_not_exists: str = "reject"
    workspace: str = "default"
    after_seconds: float = 0.0  # it may not start sooner


class Threads:
    """The engine's threads: records in its store, runs as its jobs."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @property
    def _store(self) -> Any:
        return self._engine.store

    def _now(self) -> float:
        return self._engine.clock.now()

    # -- threads ---------------------------------------------------------------------------

    async def create(
        self,
        workspace: str,
        thread_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        if_exists: str = "raise",
    ) -> ThreadRecord:
        """A new thread (``if_exists``: ``raise`` a ThreadConflict for a taken id, or
        ``do_nothing``: the thread it is)."""
        now = self._now()
        new = ThreadRecord(
            thread_id or str(uuid.uuid4()), workspace, dict(metadata or {}), now, now
        )
        added = await self._store.add_thread(new)
        if added is not None:
            return added  # type: ignore[no-any-return]
        kept = await self._store.get_thread(new.thread_id, workspace)
        if if_exists == "do_nothing" and kept is not None:
            return kept  # type: ignore[no-any-return]
        raise ThreadConflict(f"thread {new.thread_id!r} already exists")

    async def get(self, thread_id: str, workspace: str | None) -> ThreadRecord:
        thread = await self._store.get_thread(thread_id, workspace)
        if thread is None:
            raise ThreadNotFound(f"no thread {thread_id!r}")
        return thread  # type: ignore[no-any-return]

    async def update(
        self, thread_id: str, workspace: str | None, metadata: Mapping[str, Any]
    ) -> ThreadRecord:
        thread = await self._store.update_thread(
            thread_id, workspace, self._now(), metadata=dict(metadata)
        )
        if thread is None:
            raise ThreadNotFound(f"no thread {thread_id!r}")
        return thread  # type: ignore[no-any-return]

    async def search(self, query: ThreadQuery) -> list[ThreadRecord]:
        return await self._store.search_threads(query)  # type: ignore[no-any-return]

    async def delete(self, thread_id: str, workspace: str | None) -> None:
        """Forget the thread: its runs stop, its checkpoints and its record go."""
        thread = await self.get(thread_id, workspace)
        await self._stop_runs(thread_id, workspace)
        graph = thread.metadata.get("graph_id")
        if isinstance(graph, str) and graph in self._engine.lanes:
            try:
                await self.state_op(graph, "delete", {"thread_id": thread_id})
            except ThreadStateError as exc:  # a plain graph has none; the record goes anyway
                log.info("kept no checkpoints to delete", thread_id=thread_id, error=str(exc))
        await self._store.delete_thread(thread_id, workspace)

    # -- runs ------------------------------------------------------------------------------

    async def create_run(self, thread_id: str | None, run: RunRequest) -> Job:
        """Queue a run (on ``thread_id``'s state, or statelessly with None), its thread's
        busy runs first dealt with as its ``multitask_strategy`` says."""
        if thread_id is not None:
            await self._ready(thread_id, run)
        options = {**run.options, "assistant_id": run.assistant_id, "graph_id": run.graph}
        options["multitask_strategy"] = run.multitask_strategy
        try:
            return await self._engine.submit(
                run.input,
                graph=run.graph,
                stream_mode=run.stream_mode,
                workspace=run.workspace,
                thread_id=thread_id,
                run_options=options,
                delay=run.after_seconds,
            )
        except BaseException:
            if thread_id is not None:  # the run was refused: the thread is as it was
                await self._settle(thread_id, run.workspace)
            raise

    async def _ready(self, thread_id: str, run: RunRequest) -> None:
        thread = await self._store.get_thread(thread_id, run.workspace)
        if thread is None:
            if run.if_not_exists != "create":
                raise ThreadNotFound(f"no thread {thread_id!r}")
            await self.create(run.workspace, thread_id, if_exists="do_nothing")
        active = await self._store.thread_jobs(thread_id, ACTIVE_LIMIT, active=True)
        if active and run.multitask_strategy == "reject":
            raise ThreadConflict(
                f"thread {thread_id!r} is busy with run {active[0].id!r}"
                " (multitask_strategy: reject)"
            )
        if active and run.multitask_strategy in ("interrupt", "rollback"):
            rollback = run.multitask_strategy == "rollback"
            stopped = await self._stop_runs(thread_id, run.workspace, rollback)
            if rollback:
                await self._roll_back(thread_id, stopped)
        stamp = {"graph_id": run.graph, "assistant_id": run.assistant_id}
        await self._store.update_thread(
            thread_id, run.workspace, self._now(), metadata=stamp, status="busy"
        )

    async def _settle(self, thread_id: str, workspace: str) -> None:
        active = await self._store.thread_jobs(thread_id, 1, active=True)
        if not active:
            await self._store.update_thread(thread_id, workspace, self._now(), status="idle")

    async def _stop_runs(
        self, thread_id: str, workspace: str | None, delete: bool = False
    ) -> list[Job]:
        """Cancel the thread's queued and running runs (``delete``: and forget them)."""
        active = await self._store.thread_jobs(thread_id, ACTIVE_LIMIT, active=True)
        for job in active:
            with contextlib.suppress(JobConflict, JobNotFound):  # it ended meanwhile
                await self._engine.cancel(job.id, workspace)
            if delete:
                await self._store.remove(job.id)
        return list(active)

    async def _roll_back(self, thread_id: str, runs: list[Job]) -> None:
        """Undo what ``runs`` (cancelled) wrote to the thread: their checkpoints go."""
        for graph in {job.graph for job in runs if job.graph in self._engine.lanes}:
            run_ids = [job.id for job in runs if job.graph == graph]
            await self.state_op(graph, "rollback", {"thread_id": thread_id, "run_ids": run_ids})

    async def runs(
        self, thread_id: str, workspace: str | None, limit: int = 10, offset: int = 0
    ) -> list[Job]:
        await self.get(thread_id, workspace)
        return await self._store.thread_jobs(thread_id, limit, offset)  # type: ignore[no-any-return]

    async def run(self, thread_id: str | None, run_id: str, workspace: str | None) -> Job:
        """A run of the thread (None: a stateless run); ThreadNotFound if it is not."""
        try:
            job = await self._engine.get(run_id, workspace)
        except JobNotFound:
            job = None
        if job is None or job.thread_id != thread_id or job.run_options is None:
            raise ThreadNotFound(f"no run {run_id!r} of thread {thread_id!r}")
        return job

    async def cancel_run(
        self, thread_id: str, run_id: str, workspace: str | None, action: str = "interrupt"
    ) -> Job:
        """Stop a run (``rollback``: and delete it); the run as it stands."""
        job = await self.run(thread_id, run_id, workspace)
        if not job.status.is_terminal:
            try:
                job = await self._engine.cancel(run_id, workspace)
            except JobConflict:
                job = await self.run(thread_id, run_id, workspace)
        if action == "rollback":
            await self._store.remove(run_id)
            if job.graph in self._engine.lanes:
                await self._roll_back(thread_id, [job])
        return job

    async def delete_run(self, thread_id: str, run_id: str, workspace: str | None) -> None:
        await self.cancel_run(thread_id, run_id, workspace, "rollback")

    # -- thread state ------------------------------------------------------------------------

    async def state_op(self, graph: str, op: str, args: dict[str, Any]) -> bytes:
        """A read or change of a thread's state, in a worker of ``graph`` (JSON)."""
        lane = self._engine.lane(graph)
        with lane.deployment().use() as executor:
            return await executor.thread_op(op, args)
