"""The PostgreSQL store: several server replicas share one database.

- psycopg 3's async API is asyncio-only, so every statement runs in the sync driver on a
  thread (``trio.to_thread.run_sync`` with a ``CapacityLimiter`` the size of the
  ``psycopg_pool.ConnectionPool``), and ``LISTEN`` runs on a dedicated thread
  (:mod:`._pg_notices`).
- Any replica records a submitted job and ``NOTIFY``s; each replica *claims* queued jobs
  (``SELECT ... FOR UPDATE SKIP LOCKED``), only as many as it has free workers. A claim is a
  lease: owner, a fresh token, an expiry, renewed by a heartbeat while the job runs
  (:mod:`._pg_leases`).
- A replica that dies stops renewing: once a lease expires, any replica claims the job again
  (one more attempt) if it has attempts left; if not, that claim ends it ``crashed``
  (``LeaseExpired``): a job never runs more than ``max_attempts`` times. A result is
  written only under the lease token it was claimed with
  (``UPDATE ... WHERE id = %s AND lease_token = %s``), so a replica that lost its lease
  (paused, partitioned) cannot overwrite the new attempt: its write is refused (fencing).
- Terminal jobs, cancellations and appends to a job's event log are ``NOTIFY``'d too, so
  a long-poll or a stream on any replica wakes, and a job cancelled on one replica stops on
  the one running it.
- An operation that fails for a connection reason is retried with backoff (:mod:`._pg_retry`);
  meanwhile :attr:`PostgresStore.available` is False, and past ``unavailable_exit`` seconds
  it raises :class:`~graphnursery.errors.StoreUnavailable`. A retry never repeats what a
  first try that committed did: each operation recognises its own earlier commit.
- Migrations run on open under an advisory lock (:mod:`._pg_schema`);
  ``graphnursery_schema_version`` records them. Tables live in the connection's current
  schema (``?options=-csearch_path%3D...``).

Lease expiry is measured on the database server's clock, so replicas' clocks need not agree.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import psycopg
import trio
from psycopg.types.json import Json
from psycopg_pool import ConnectionPool

from ..errors import StoreError
from ..jobs import Job, JobError, JobStatus
from ._catalog_sql import CatalogTables
from ._pg_claims import Claims
from ._pg_leases import Leases, heartbeat
from ._pg_notices import Notice, listening, notify
from ._pg_retry import Retrying
from ._pg_schema import (
    FLOW_VERSIONS_TABLE,
    FLOWS_TABLE,
    SCHEDULES_TABLE,
    TABLE,
    THREADS_TABLE,
    Connection,
    describe,
    open_pool,
)
from ._pg_sql import (
    CANCEL,
    COLUMNS,
    ENDED_BEFORE,
    EVENTS,
    FINISH,
    NOW,
    STATEMENTS,
)
from ._rows import (
    INTERRUPTED,
    dump_error,
    graphs_filter,
    unstorable_key,
)
from ._sql import SQLStore, one_job
from .base import StoreEvents

log = logging.getLogger("graphnursery.store.postgres")

T = TypeVar("T")


#: Pool connections kept for the engine's own work (claims, results, lease renewals).
ENGINE_CONNECTIONS = 2


class PostgresStore(Claims, SQLStore[Connection]):
    """Jobs in a PostgreSQL database, shared by every replica pointed at it."""

    shared = True
    sql = STATEMENTS
    tables = CatalogTables(
        FLOWS_TABLE, FLOW_VERSIONS_TABLE, SCHEDULES_TABLE, mark="%s", threads=THREADS_TABLE
    )
    metadata_param = "?::jsonb"
    json_param = "?::json"
    event_log = EVENTS
    duplicate_id = psycopg.errors.UniqueViolation

    def __init__(
        self,
        conninfo: str,
        *,
        lease_seconds: float = 30.0,
        pool_size: int = 8,
        owner: str | None = None,
        unavailable_exit: float = 60.0,
    ) -> None:
        self.conninfo = conninfo
        self.lease_seconds = lease_seconds
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._pool_size = pool_size
        # Requests (submits, reads) share most connections; the engine's own work (claims,
        # results, leases) has two of its own, so a burst of requests never starves workers.
        self._limiter = trio.CapacityLimiter(pool_size)
        self._engine_limiter = trio.CapacityLimiter(ENGINE_CONNECTIONS)
        self._pool: ConnectionPool[Connection] | None = None
        self._channel = ""
        self._leases = Leases()
        self._retrying = Retrying(conninfo, describe(conninfo), unavailable_exit)

    @property
    def checkpoints(self) -> str:
        return f"postgres:{self.conninfo}"

    @property
    def available(self) -> bool:
        return self._retrying.available

    # -- opening and closing ------------------------------------------------------------------

    async def open(self) -> None:
        self._pool, self._channel = await trio.to_thread.run_sync(
            open_pool,
            self.conninfo,
            self._pool_size + ENGINE_CONNECTIONS,
            limiter=self._limiter,
        )

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await trio.to_thread.run_sync(pool.close)

    async def _run(
        self,
        fn: Callable[[Connection], T],
        *,
        engine: bool = False,
        again: Callable[[Connection], T] | None = None,
    ) -> T:
        """``fn(connection)`` in one transaction on a pool connection, on a thread;
        retried (as ``again``, when given) while it fails for a connection reason.

        ``engine``: work the engine's runners wait on, with connections of its own.
        """
        pool = self._pool
        if pool is None:
            raise StoreError("the PostgreSQL store is not open")
        limiter = self._engine_limiter if engine else self._limiter
        return await self._retrying.run(pool, fn, limiter, again)

    def _notify(self, connection: Connection, notice: Notice, job_id: str) -> None:
        notify(connection, self._channel, notice, job_id)  # sent when the transaction commits

    # -- the store interface (add, get, list... are SQLStore's) -------------------------------

    def _added(self, connection: Connection, job: Job) -> None:
        self._notify(connection, Notice.NEW, job.id)

    async def start(self, job_id: str, started_at: float, version: str = "") -> Job | None:
        claimed = self._leases.claimed.pop(job_id, None)
        if claimed is not None:
            return claimed if not version else await self._set_version(claimed, version)
        if unstorable_key(job_id):
            return None
        token = uuid.uuid4().hex

        def start(connection: Connection) -> Job | None:
            return one_job(
                connection,
                f"UPDATE {TABLE} SET status = 'running', started_at = %s,"
                f" attempts = attempts + 1, lease_owner = %s, lease_token = %s,"
                f" lease_expires_at = {NOW} + %s, version = coalesce(nullif(%s, ''), version)"
                f" WHERE id = %s AND status = 'queued' RETURNING {COLUMNS}",
                (started_at, self.owner, token, self.lease_seconds, version, job_id),
            )

        def again(connection: Connection) -> Job | None:
            started = one_job(  # by a first try that committed
                connection,
                f"SELECT {COLUMNS} FROM {TABLE} WHERE id = %s AND status = 'running'"
                " AND lease_token = %s",
                (job_id, token),
            )
            return started or start(connection)

        job = await self._run(start, again=again)
        if job is not None:
            self._leases.tokens[job_id] = token
        return job

    async def _set_version(self, job: Job, version: str) -> Job:
        """A claimed job, given the version it runs on (the lane's live one at start)."""
        if job.version == version:
            return job

        def set_version(connection: Connection) -> None:
            connection.execute(f"UPDATE {TABLE} SET version = %s WHERE id = %s", (version, job.id))

        await self._run(set_version, engine=True)
        return job.replace(version=version)

    def _json_text(self, text: bytes) -> Any:
        return Json(text, dumps=_as_it_is)  # sent as the json column's text, not as bytea

    def _take_lease(self, job_id: str) -> str | None:
        return self._leases.tokens.pop(job_id, None)

    async def _finish(self, params: dict[str, Any]) -> Job | None:
        """Terminal status for a job: a running one only under the lease this replica holds.

        None, writing nothing, if the job is unknown, already terminal, or running under a
        lease this replica does not hold (it expired and another replica claimed it).
        """

        def finish(connection: Connection) -> Job | None:
            job = one_job(connection, FINISH, params)
            if job is not None:
                self._notify(connection, Notice.DONE, job.id)
                self._thread_run_ended(
                    connection, job, params["raw_result"], params["completed_at"]
                )
            return job

        job = await self._run(finish, engine=True, again=self._ended_again(finish, params))
        if job is None and params["token"] is not None:
            log.warning(
                "refused the %s result of job %s: this replica's lease on it has expired "
                "(another replica may have run it again)",
                params["status"],
                params["id"],
            )
        return job

    @staticmethod
    def _ended_again(
        end: Callable[[Connection], Job | None], params: dict[str, Any]
    ) -> Callable[[Connection], Job | None]:
        """A retry of ``end`` (finish, cancel): if a first try committed, the job it ended
        (terminal with this status at this time), rather than None for a terminal job."""

        def again(connection: Connection) -> Job | None:
            return end(connection) or one_job(connection, ENDED_BEFORE, params)

        return again

    async def append_events(
        self,
        job_id: str,
        attempt: int,
        events: Sequence[tuple[str, bytes]],
        *,
        limit: int = 0,
        dropped: int = 0,
    ) -> bool:
        """Under the job row's lock, which a cancel or finish elsewhere holds or waits for:
        no event follows the job's end. Other replicas' streams hear of it (``NOTIFY``).
        A retry recognises what a first try committed (:meth:`EventLog.appending`)."""
        if unstorable_key(job_id):
            return False

        def appended(connection: Connection, job_id: str) -> None:
            self._notify(connection, Notice.EVENTS, job_id)

        append, again = EVENTS.appending(job_id, attempt, events, limit, dropped, appended)
        return await self._run(append, engine=True, again=again)

    async def counts(self, graphs: Sequence[str] | None = None) -> Mapping[JobStatus, int]:
        of_graphs, names = graphs_filter(graphs, "%s")

        def counts(connection: Connection) -> dict[JobStatus, int]:
            found = {status: 0 for status in JobStatus}
            for status, count in connection.execute(
                f"SELECT status, count(*) FROM {TABLE} WHERE true{of_graphs} GROUP BY status",
                names,
            ):
                found[JobStatus(status)] = int(count)
            return found

        return await self._run(counts)

    async def queued_count(
        self, graphs: Sequence[str] | None = None, workspace: str | None = None
    ) -> int:
        of_graphs, names = graphs_filter(graphs, "%s")
        if workspace is not None:
            of_graphs, names = of_graphs + " AND workspace = %s", [*names, workspace]

        def queued(connection: Connection) -> int:
            row = connection.execute(
                f"SELECT count(*) FROM {TABLE} WHERE status = 'queued'{of_graphs}", names
            ).fetchone()
            return 0 if row is None else int(row[0])

        return await self._run(queued)

    # -- durable and shared ------------------------------------------------------------------

    async def release(self, job_id: str, error: JobError = INTERRUPTED, delay: float = 0.0) -> None:
        """Give a job this replica holds back to the queue, for any replica to claim
        (after ``delay`` seconds, by the database's clock)."""
        never_started = job_id in self._leases.claimed
        token = self._leases.forget(job_id)
        if token is None:
            return
        interrupted = dump_error(error)

        def release(connection: Connection) -> None:
            if never_started:  # claimed but never run: the claim's attempt did not happen
                changes = "attempts = attempts - 1, started_at = NULL"
            else:
                changes = "errors = errors || jsonb_build_array(%(interrupted)s::jsonb)"
            cursor = connection.execute(
                f"UPDATE {TABLE} SET status = 'queued', lease_owner = NULL, lease_token = NULL,"
                f" lease_expires_at = NULL, run_after = {NOW} + %(delay)s, {changes}"
                f" WHERE id = %(id)s AND status = 'running' AND lease_token = %(token)s",
                {"id": job_id, "token": token, "interrupted": interrupted, "delay": delay},
            )
            if cursor.rowcount:
                self._notify(connection, Notice.NEW, job_id)

        await self._run(release, engine=True)

    async def run_background(
        self,
        events: StoreEvents,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen for other replicas' notices and renew this replica's leases."""
        async with listening(self.conninfo, self._channel, self._leases, events):
            task_status.started()
            await heartbeat(self._leases, events, self.lease_seconds / 3, self._renew)

    async def _renew(self, tokens: list[str]) -> set[str]:
        """Extend the leases with these tokens that are still current; their jobs' ids."""

        def renew(connection: Connection) -> set[str]:
            rows = connection.execute(
                f"UPDATE {TABLE} SET lease_expires_at = {NOW} + %s"
                f" WHERE status = 'running' AND lease_token = ANY(%s) RETURNING id",
                (self.lease_seconds, tokens),
            ).fetchall()
            return {row[0] for row in rows}

        return await self._run(renew, engine=True)

    # -- cancel and list (the engine's cancel and list endpoints build on these) ---------------

    async def cancel(self, job_id: str, cancelled_at: float, error: JobError) -> Job | None:
        """queued|running -> cancelled, from any replica; the one running it stops it.

        None if the job is unknown or already terminal.
        """
        if unstorable_key(job_id):
            return None
        params = {
            "id": job_id,
            "status": JobStatus.CANCELLED.value,
            "completed_at": cancelled_at,
            "result": None,
            "record": None,
            "error": dump_error(error),
        }

        def cancel(connection: Connection) -> Job | None:
            job = one_job(connection, CANCEL, params)
            if job is not None:
                self._notify(connection, Notice.CANCELLED, job_id)
                self._thread_run_ended(connection, job, None, cancelled_at)
            return job

        job = await self._run(cancel, again=self._ended_again(cancel, params))
        if job is not None:
            self._leases.forget(job_id)
        return job


__all__ = ["PostgresStore"]


def _as_it_is(text: bytes) -> bytes:
    return text
