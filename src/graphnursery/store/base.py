"""The store interface: where job records live. The store is the single source of truth."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Protocol

import trio

from ..events import JobEvent
from ..jobs import Job, JobError, JobStatus
from ._rows import INTERRUPTED
from .catalog import Catalog
from .threads import ThreadKeeper


class Backlogged(NamedTuple):
    """A job found queued when a durable store opened."""

    job_id: str
    wait: float  # seconds left of a retry's backoff before it may run (0: at once)
    workspace: str = "default"


class Shares(NamedTuple):
    """How a shared store's claims share the workers between workspaces: round-robin, and
    none past its ``max_running`` (``caps``: (workspace, cap) pairs; ``default``: the
    others'; 0: no cap)."""

    default: int = 0
    caps: tuple[tuple[str, int], ...] = ()


class StoreEvents(Protocol):
    """What a shared store tells the engine it learnt from elsewhere (another replica).

    Called on the Trio thread; none of them blocks.
    """

    def job_done(self, job_id: str) -> None:
        """A job became terminal (wake its long-polls)."""

    def job_cancelled(self, job_id: str) -> None:
        """A job was cancelled (stop it if it runs here)."""

    def lease_lost(self, job_id: str) -> None:
        """This replica no longer holds the job's lease (stop it: its result would be refused)."""

    def work_available(self) -> None:
        """Jobs may be waiting to be claimed."""

    def job_events(self, job_id: str) -> None:
        """Events were appended to a job's log (wake its streams)."""


class Store(Catalog, ThreadKeeper):
    """Keeps job records and moves them through their statuses (and, as a
    :class:`~graphnursery.store.catalog.Catalog`, stored flows and schedules).

    Transitions are the store's to enforce: :meth:`finish` never overwrites a terminal
    job, so a late result (say, of a job that already timed out) cannot replace its status.

    Kinds of store, by two class attributes the engine reads:

    - ``durable = False``: jobs live as long as the process (memory). On shutdown the
      engine ends unfinished jobs ``cancelled``.
    - ``durable = True``: jobs survive a restart (SQLite). On shutdown the engine puts
      running jobs back in the queue (:meth:`release`); on start it feeds the jobs left
      queued (:meth:`resume`).
    - ``shared = True`` (durable too): several servers use the store at once (PostgreSQL).
      A job reaches a runner only by being claimed (:meth:`claim`), never straight from
      ``submit``, so that each job runs on one server.

    And ``reads_anywhere = True`` when :meth:`get` awaits nothing of Trio's (memory): the
    HTTP loop may read jobs itself while the engine runs in a thread of its own.
    """

    durable: bool = False
    shared: bool = False
    reads_anywhere: bool = False
    #: Whether :meth:`start` writes the attempt's ``running`` event to the job's log itself,
    #: in the same transaction (else the engine appends it): one write per job, not two.
    logs_starts: bool = False

    @property
    def available(self) -> bool:
        """Whether the store answers now. False while a shared store's database is
        unreachable: its operations retry meanwhile, and raise
        :class:`~graphnursery.errors.StoreUnavailable` once it has been so for longer than
        ``store_unavailable_exit``. True again after an operation succeeds."""
        return True

    @property
    def checkpoints(self) -> str:
        """Where LangGraph checkpointers keep threads' state beside this store, for the
        worker processes (``sqlite:PATH``, ``postgres:CONNINFO``; see ``_threads``)."""
        return ""

    async def open(self) -> None:
        """Prepare the store (connect, migrate). Called once before use."""

    async def close(self) -> None:
        """Release the store's resources."""

    @abc.abstractmethod
    async def add(self, job: Job, idempotency_key: str | None = None, delay: float = 0.0) -> Job:
        """Record a new queued job, and return it; with ``delay``, no server claims it for
        that many seconds (a shared store; the others' intake holds it meanwhile, and a
        durable one's resume after a restart waits out what is left of it).

        With an ``idempotency_key`` some kept job already has, record nothing and return
        that job instead (the key is forgotten with its job, at eviction).
        """

    @abc.abstractmethod
    async def find_by_key(self, idempotency_key: str) -> Job | None:
        """The kept job submitted with this idempotency key, if any."""

    @abc.abstractmethod
    async def remove(self, job_id: str) -> None:
        """Forget a job that was never accepted (e.g. the queue was full)."""

    @abc.abstractmethod
    async def get(self, job_id: str, workspace: str | None = None) -> Job | None:
        """The job as it stands, or None if unknown or evicted (or, with ``workspace``,
        another workspace's: ids are not disclosed across workspaces)."""

    @abc.abstractmethod
    async def start(self, job_id: str, started_at: float, version: str = "") -> Job | None:
        """Mark a queued job running (one more attempt); None if it is not queued.
        ``version``, when given, is the graph version it runs on (the job's ``version``).
        With ``logs_starts``, the job's log gets the attempt's ``running`` event too."""

    @abc.abstractmethod
    async def finish(
        self,
        job_id: str,
        status: JobStatus,
        completed_at: float,
        result: bytes | None = None,
        error: JobError | None = None,
        record: bytes | None = None,
    ) -> Job | None:
        """Move a job to a terminal status; None if it is unknown or already terminal.

        ``result`` is the result's JSON text as the worker encoded it, kept as it is;
        ``record`` a flow's run record, JSON text too.
        """

    async def cancel(self, job_id: str, cancelled_at: float, error: JobError) -> Job | None:
        """queued|running -> cancelled; None if the job is unknown or already terminal.

        A shared store also tells the other servers, so the one running it stops it.
        """
        return await self.finish(job_id, JobStatus.CANCELLED, cancelled_at, None, error)

    @abc.abstractmethod
    async def list_jobs(
        self,
        status: JobStatus | None = None,
        limit: int = 100,
        cursor: str | None = None,
        *,
        graph: str | None = None,
        workspace: str | None = None,
    ) -> tuple[list[Job], str | None]:
        """Jobs in (created_at, id) order, optionally of one status, one graph and one
        workspace, a page at a time.

        Returns the page and the cursor of the next one (None on the last page). Raises
        ValueError for a cursor it did not make.
        """

    @abc.abstractmethod
    async def evict(self, finished_before: float) -> int:
        """Delete jobs that finished before the given time; returns how many."""

    @abc.abstractmethod
    async def counts(self, graphs: Sequence[str] | None = None) -> Mapping[JobStatus, int]:
        """How many kept jobs are in each status (of these graphs' only, when given)."""

    # -- the event log (see ``graphnursery.events``) ---------------------------------------------

    @abc.abstractmethod
    async def append_events(
        self,
        job_id: str,
        attempt: int,
        events: Sequence[tuple[str, bytes]],
        *,
        limit: int = 0,
        dropped: int = 0,
    ) -> bool:
        """Append ``(name, JSON text)`` events to the job's log, in order, each with the
        next id and ``attempt``.

        With ``limit``, the log keeps at most ``limit`` events: those past it are not
        kept but counted in the job's ``events_dropped``, and so are ``dropped`` (events
        the worker did not send). The job's ``events`` becomes the last id.
        Returns False, changing nothing, when the job is unknown or terminal: a log ends
        when its job does. A shared store tells the other servers (their streams wake).
        """

    @abc.abstractmethod
    async def read_events(
        self, job_id: str, after: int, limit: int
    ) -> tuple[Job, list[JobEvent]] | None:
        """The job and up to ``limit`` events of its log with ids past ``after``, in id
        order, read at one point in time (so if the job is terminal there, no event
        follows the ones read); None when the job is unknown or evicted."""

    # -- durable stores ----------------------------------------------------------------------

    @abc.abstractmethod
    async def release(self, job_id: str, error: JobError = INTERRUPTED, delay: float = 0.0) -> None:
        """Put a running job back in the queue, attempts kept, ``error`` added to its
        ``errors``: a durable store's running jobs at shutdown, and retries. A shared store
        lets no server claim it for ``delay`` seconds (a retry's backoff); the others leave
        the delay to the engine, which queues the job when it is over (a durable one keeps
        when that is, for :meth:`resume` after a restart)."""

    async def resume(
        self, cursor: Any, limit: int, graphs: Sequence[str] | None = None
    ) -> tuple[list[Backlogged], Any]:
        """Jobs found queued when the store opened (of these graphs, when given), in
        creation order, a page at a time, each with what is left of its retry backoff.

        Pass ``None`` first, then the returned cursor; a ``None`` cursor means no more.
        """
        return [], None

    # -- shared stores -------------------------------------------------------------------

    async def run_background(
        self,
        events: StoreEvents,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """The store's own background work (listening, lease heartbeats) until cancelled.

        Calls ``task_status.started()`` once ``events`` will hear what other servers do.
        """
        task_status.started()

    async def claim(
        self,
        limit: int,
        started_at: float,
        graphs: Sequence[str] | None = None,
        shares: Shares | None = None,
    ) -> list[Job]:
        """Take up to ``limit`` queued jobs (or jobs whose lease expired) to run here, of
        these graphs only when given; with ``shares``, fairly between workspaces and within
        their max_running across every server (else in submit order).

        They come back ``running``, leased to this server; :meth:`start` then hands each out.
        """
        raise NotImplementedError(f"{type(self).__name__} is not shared")

    async def queued_count(
        self, graphs: Sequence[str] | None = None, workspace: str | None = None
    ) -> int:
        """How many jobs (of these graphs, of this workspace) wait in the queue, across
        every server."""
        if workspace is not None:
            jobs, _ = await self.list_jobs(JobStatus.QUEUED, 100_000, workspace=workspace)
            return sum(1 for job in jobs if graphs is None or job.graph in graphs)
        return (await self.counts(graphs))[JobStatus.QUEUED]
