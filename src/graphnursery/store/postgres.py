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
  (one more attempt). A result is written only under the lease token it was claimed with
  (``UPDATE ... WHERE id = %s AND lease_token = %s``), so a replica that lost its lease
  (paused, partitioned) cannot overwrite the new attempt: its write is refused (fencing).
- Terminal jobs and cancellations are ``NOTIFY``'d too, so a long-poll on any replica
  wakes, and a job cancelled on one replica stops on the one running it.
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
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import psycopg
import trio
from psycopg_pool import ConnectionPool

from ..errors import StoreError
from ..jobs import Job, JobError, JobStatus
from ._pg_leases import Leases, heartbeat
from ._pg_notices import Notice, listening, notify
from ._pg_schema import TABLE, Connection, open_pool
from ._rows import (
    INTERRUPTED,
    JOB_COLUMNS,
    LEASE_EXPIRED,
    dump_error,
    row_to_job,
    unstorable_key,
)
from ._sql import Dialect, SQLStore, Statements, one_job
from .base import StoreEvents

log = logging.getLogger("graphnursery.store.postgres")

T = TypeVar("T")


def _select_list(prefix: str = "") -> str:
    """A job row's columns, JSON ones as text (orjson decodes them, not psycopg)."""
    json_columns = {"input", "result", "error", "errors"}
    return ", ".join(
        f"{prefix}{column}::text" if column in json_columns else f"{prefix}{column}"
        for column in JOB_COLUMNS
    )


COLUMNS = _select_list()
J_COLUMNS = _select_list("j.")  # in the claim's UPDATE ... FROM, where "j" is the table
STATEMENTS = Statements(
    Dialect(
        table=TABLE,
        columns=COLUMNS,
        named="%({})s",
        mark="%s",
        json="::json",
        jsonb="::jsonb",
        appended="errors || jsonb_build_array({}::jsonb)",
    )
)
#: A result is written only under the lease it was claimed with (fencing); a job never
#: claimed (still queued) takes one without a lease.
FINISH = STATEMENTS.finish(
    "CASE WHEN %(token)s::text IS NULL THEN status = 'queued'"
    " ELSE status = 'running' AND lease_token = %(token)s::text END"
)
CANCEL = STATEMENTS.finish("status IN ('queued', 'running')")
NOW = "extract(epoch from clock_timestamp())::double precision"
#: Pool connections kept for the engine's own work (claims, results, lease renewals).
ENGINE_CONNECTIONS = 2

_CLAIM = f"""
    WITH picked AS (
        SELECT seq FROM {TABLE} WHERE {{where}} ORDER BY seq LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    )
    UPDATE {TABLE} j SET
        status = 'running', attempts = j.attempts + 1, started_at = %(started_at)s,
        lease_owner = %(owner)s, lease_token = gen_random_uuid()::text,
        lease_expires_at = {NOW} + %(lease)s, errors = {{errors}}
    FROM picked WHERE j.seq = picked.seq
    RETURNING j.seq, j.lease_token, {J_COLUMNS}
"""
CLAIM_EXPIRED = _CLAIM.format(
    where=f"status = 'running' AND lease_expires_at < {NOW}",
    errors="j.errors || jsonb_build_array(%(lease_expired)s::jsonb)",
)
CLAIM_QUEUED = _CLAIM.format(
    # run_after: a retry waits out its backoff before any replica claims it
    where=f"status = 'queued' AND (run_after IS NULL OR run_after <= {NOW})",
    errors="j.errors",
)


class PostgresStore(SQLStore[Connection]):
    """Jobs in a PostgreSQL database, shared by every replica pointed at it."""

    shared = True
    sql = STATEMENTS
    duplicate_id = psycopg.errors.UniqueViolation

    def __init__(
        self,
        conninfo: str,
        *,
        lease_seconds: float = 30.0,
        pool_size: int = 8,
        owner: str | None = None,
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

    async def _run(self, fn: Callable[[Connection], T], *, engine: bool = False) -> T:
        """``fn(connection)`` in one transaction on a pool connection, on a thread.

        ``engine``: work the engine's runners wait on, with connections of its own.
        """
        pool = self._pool
        if pool is None:
            raise StoreError("the PostgreSQL store is not open")

        def in_transaction() -> T:
            with pool.connection() as connection:
                return fn(connection)

        limiter = self._engine_limiter if engine else self._limiter
        return await trio.to_thread.run_sync(in_transaction, limiter=limiter)

    def _notify(self, connection: Connection, notice: Notice, job_id: str) -> None:
        notify(connection, self._channel, notice, job_id)  # sent when the transaction commits

    # -- the store interface (add, get, list... are SQLStore's) -------------------------------

    def _added(self, connection: Connection, job: Job) -> None:
        self._notify(connection, Notice.NEW, job.id)

    async def start(self, job_id: str, started_at: float) -> Job | None:
        claimed = self._leases.claimed.pop(job_id, None)
        if claimed is not None:
            return claimed
        if unstorable_key(job_id):
            return None
        token = uuid.uuid4().hex

        def start(connection: Connection) -> Job | None:
            return one_job(
                connection,
                f"UPDATE {TABLE} SET status = 'running', started_at = %s,"
                f" attempts = attempts + 1, lease_owner = %s, lease_token = %s,"
                f" lease_expires_at = {NOW} + %s"
                f" WHERE id = %s AND status = 'queued' RETURNING {COLUMNS}",
                (started_at, self.owner, token, self.lease_seconds, job_id),
            )

        job = await self._run(start)
        if job is not None:
            self._leases.tokens[job_id] = token
        return job

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
            return job

        job = await self._run(finish, engine=True)
        if job is None and params["token"] is not None:
            log.warning(
                "refused the %s result of job %s: this replica's lease on it has expired "
                "(another replica may have run it again)",
                params["status"],
                params["id"],
            )
        return job

    async def counts(self) -> Mapping[JobStatus, int]:
        def counts(connection: Connection) -> dict[JobStatus, int]:
            found = {status: 0 for status in JobStatus}
            for status, count in connection.execute(
                f"SELECT status, count(*) FROM {TABLE} GROUP BY status"
            ):
                found[JobStatus(status)] = int(count)
            return found

        return await self._run(counts)

    async def queued_count(self) -> int:
        def queued(connection: Connection) -> int:
            row = connection.execute(
                f"SELECT count(*) FROM {TABLE} WHERE status = 'queued'"
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

    async def claim(self, limit: int, started_at: float) -> list[Job]:
        """Lease up to ``limit`` jobs to this replica: expired leases first, then the queue."""
        params: dict[str, Any] = {
            "limit": limit,
            "started_at": started_at,
            "owner": self.owner,
            "lease": self.lease_seconds,
            "lease_expired": dump_error(LEASE_EXPIRED),
        }

        def claim(connection: Connection) -> list[tuple[Any, ...]]:
            rows = connection.execute(CLAIM_EXPIRED, params).fetchall()
            if len(rows) < limit:
                params["limit"] = limit - len(rows)
                rows += connection.execute(CLAIM_QUEUED, params).fetchall()
            return sorted(rows)

        jobs = []
        for row in await self._run(claim, engine=True):
            job = row_to_job(row[2:])
            self._leases.tokens[job.id] = row[1]
            self._leases.claimed[job.id] = job
            jobs.append(job)
        if any(job.attempts > 1 for job in jobs):
            log.warning(
                "re-running %d jobs whose replica's lease expired",
                sum(job.attempts > 1 for job in jobs),
            )
        return jobs

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
            "error": dump_error(error),
        }

        def cancel(connection: Connection) -> Job | None:
            job = one_job(connection, CANCEL, params)
            if job is not None:
                self._notify(connection, Notice.CANCELLED, job_id)
            return job

        job = await self._run(cancel)
        if job is not None:
            self._leases.forget(job_id)
        return job


__all__ = ["PostgresStore"]
