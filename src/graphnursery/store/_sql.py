"""What the SQL stores share: the statements on the job table, written once for both
databases, and :class:`SQLStore`, the store methods built on them.

A :class:`Dialect` says how a database spells what differs: the tables' names, how a job
row is selected (PostgreSQL reads its JSON columns as text, to decode them with orjson),
parameter marks, JSON casts, how an error is appended to a job's ``errors``, row locks and
read snapshots (for the event log, :mod:`._events_sql`).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from ..events import JobEvent
from ..jobs import Job, JobError, JobStatus
from ._catalog_sql import SQLCatalog
from ._rows import (
    JOB_COLUMNS,
    TERMINAL_SQL,
    dump_error,
    job_params,
    list_query,
    row_to_job,
    split_page,
    unstorable_key,
)
from ._threads_sql import SQLThreads
from .base import Store

if TYPE_CHECKING:
    from ._events_sql import EventLog

T = TypeVar("T")


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class ManyCursor(Protocol):
    def executemany(self, query: str, params_seq: Iterable[Any], /) -> object: ...


class Connection(Protocol):
    """What the shared statements need of a connection: sqlite3's and psycopg's have it."""

    def execute(self, query: str, params: Any = ..., /) -> Cursor: ...

    def cursor(self) -> ManyCursor: ...


C = TypeVar("C", bound=Connection)


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one database spells the statements the SQL stores share.

    The defaults are SQLite's: sqlite3's parameter marks, JSON kept in text columns.
    """

    table: str
    #: The select list of a job row, in ``JOB_COLUMNS`` order.
    columns: str
    #: The table of the jobs' event logs (see :mod:`._events_sql`).
    events_table: str = "job_events"
    #: What makes a SELECT lock the job rows it reads until the transaction ends
    #: (PostgreSQL: `` FOR UPDATE``); nothing where one writer writes at a time.
    for_update: str = ""
    #: What a transaction that reads with several statements runs first, for them to read
    #: one snapshot (PostgreSQL: REPEATABLE READ); nothing where it does already (SQLite).
    snapshot: str = ""
    #: A named parameter, ``{}`` standing for its name (psycopg: ``%({})s``).
    named: str = ":{}"
    #: A positional parameter (psycopg: ``%s``).
    mark: str = "?"
    #: What follows a JSON text parameter stored in a ``json`` / ``jsonb`` column (a cast).
    json: str = ""
    jsonb: str = ""
    #: The time now, in seconds since the epoch (the database's clock).
    now: str = "(julianday('now') - 2440587.5) * 86400.0"
    #: ``errors`` with one more error appended, ``{}`` standing for it (JSON text).
    appended: str = "json_insert(errors, '$[#]', json({}))"

    def param(self, name: str) -> str:
        return self.named.format(name)

    def columns_but_result(self) -> str:
        """The select list with NULL for the result and the run record: a finish returns
        the row without them
        (its caller has the result in hand; read back, a large one would cost a copy)."""
        columns = self.columns.split(", ")
        columns[JOB_COLUMNS.index("result")] = "NULL"
        columns[JOB_COLUMNS.index("record")] = "NULL"
        return ", ".join(columns)

    def append_error(self, name: str) -> str:
        """``errors`` with the error in the named parameter appended."""
        return self.appended.format(self.param(name))


class Statements:
    """The statements both SQL stores run, in one dialect; built once per store class.

    Their parameters are named: the dicts :class:`SQLStore` passes them.
    """

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = d = dialect
        p = d.param
        # ON CONFLICT on the key: of two submits with it at once (say, on two replicas),
        # one inserts; the other finds the job the first recorded.
        self.insert = (
            f"INSERT INTO {d.table}"
            " (id, status, input, timeout, attempts, created_at, max_attempts, idempotency_key,"
            " stream_mode, graph, version, schedule_id, workspace, thread_id, run_options,"
            " run_after)"
            f" VALUES ({p('id')}, {p('status')}, {p('input')}{d.json}, {p('timeout')},"
            f" {p('attempts')}, {p('created_at')}, {p('max_attempts')}, {p('key')},"
            f" {p('stream_mode')}{d.jsonb}, {p('graph')}, {p('version')}, {p('schedule_id')},"
            f" {p('workspace')}, {p('thread_id')}, {p('run_options')}{d.json},"
            f" CASE WHEN {p('delay')} > 0 THEN {d.now} + {p('delay')} END)"
            " ON CONFLICT (idempotency_key) DO NOTHING RETURNING id"
        )
        self.by_key = f"SELECT {d.columns} FROM {d.table} WHERE idempotency_key = {p('key')}"
        self.by_id = f"SELECT {d.columns} FROM {d.table} WHERE id = {p('id')}"
        #: A job only if it belongs to the workspace (another's answers as unknown).
        self.by_id_in = f"{self.by_id} AND workspace = {p('workspace')}"
        self.remove = f"DELETE FROM {d.table} WHERE id = {p('id')} RETURNING graph, status"
        self.evict = (
            f"DELETE FROM {d.table} WHERE completed_at < {p('before')}"
            f" AND status IN ({TERMINAL_SQL}) RETURNING graph, status"
        )

    def lookup(self, job_id: str, workspace: str | None) -> tuple[str, dict[str, str]]:
        """The SELECT of one job (of ``workspace`` only, when given) and its parameters."""
        if workspace is None:
            return self.by_id, {"id": job_id}
        return self.by_id_in, {"id": job_id, "workspace": workspace}

    def finish(self, where: str) -> str:
        """The UPDATE that makes a job terminal, if ``where`` holds; returns its row.

        Sets ``status``, ``completed_at``, ``result``, ``record``, ``error`` (JSON text or
        NULL, also appended to ``errors`` when there is one) and clears the lease. The row
        it returns has no result or record (:meth:`Dialect.columns_but_result`).
        """
        d, p = self.dialect, self.dialect.param
        return (
            f"UPDATE {d.table} SET status = {p('status')}, completed_at = {p('completed_at')},"
            f" result = {p('result')}{d.json}, record = {p('record')}{d.json},"
            f" error = {p('error')}{d.jsonb},"
            f" errors = CASE WHEN {p('error')}{d.jsonb} IS NULL THEN errors"
            f" ELSE {d.append_error('error')} END,"
            " lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL"
            f" WHERE id = {p('id')} AND ({where}) RETURNING {d.columns_but_result()}"
        )


def one_job(connection: Connection, query: str, params: Any) -> Job | None:
    """The job of the row ``query`` returns, if it returns one."""
    row = connection.execute(query, params).fetchone()
    return None if row is None else row_to_job(row)


class SQLStore(SQLCatalog[C], SQLThreads[C], Store):
    """The store methods whose SQL is the same on SQLite and PostgreSQL.

    A subclass runs transactions (:meth:`_run`), records a result (:meth:`_finish`), and
    may follow additions and deletions (:meth:`_added`, :meth:`_deleted`).
    """

    durable = True
    sql: ClassVar[Statements]
    #: The event log's statements and operations.
    event_log: ClassVar[EventLog]
    #: What the driver raises for an INSERT of an id the table has.
    duplicate_id: ClassVar[type[Exception]]

    @abc.abstractmethod
    async def _run(
        self,
        fn: Callable[[C], T],
        *,
        engine: bool = False,
        again: Callable[[C], T] | None = None,
    ) -> T:
        """``fn(connection)`` in one transaction, off the Trio thread; what it returned.

        ``engine``: work the engine's runners wait on (a store may keep connections for it).
        ``again``: what a store that retries a failed transaction runs on the tries after
        the first, which may have committed (see :mod:`._pg_retry`); ``fn`` if None.
        """

    def _added(self, connection: C, job: Job) -> None:
        """Called in the transaction that recorded a new job."""

    def _deleted(self, rows: Sequence[tuple[str, str]]) -> None:
        """Called in the transaction that deleted jobs, with their (graph, status)."""

    def _take_lease(self, job_id: str) -> str | None:
        """The lease token this process holds the job under, no longer held: its result
        is written only under it. None where there are no leases."""
        return None

    @abc.abstractmethod
    async def _finish(self, params: dict[str, Any]) -> Job | None:
        """:meth:`finish`, given the parameters of :meth:`Statements.finish` and ``token``
        (what :meth:`_take_lease` returned)."""

    async def add(self, job: Job, idempotency_key: str | None = None, delay: float = 0.0) -> Job:
        params = {**job_params(job), "key": idempotency_key, "delay": delay}

        def add(connection: C, retried: bool = False) -> Job:
            if retried:  # ids are fresh uuids: one found is what this call's first try added
                found = one_job(connection, self.sql.by_id, {"id": job.id})
                if found is not None:
                    return found
            try:
                inserted = connection.execute(self.sql.insert, params).fetchone()
            except self.duplicate_id:
                raise ValueError(f"job {job.id} already exists") from None
            if inserted is None:
                existing = self._find_by_key(connection, idempotency_key or "")
                if existing is None:  # evicted in between: a fresh submit
                    raise ValueError(f"idempotency key {idempotency_key!r} raced an eviction")
                return existing
            self._added(connection, job)
            return job

        return await self._run(add, again=lambda connection: add(connection, retried=True))

    async def find_by_key(self, idempotency_key: str) -> Job | None:
        if unstorable_key(idempotency_key):
            return None
        return await self._run(lambda connection: self._find_by_key(connection, idempotency_key))

    def _find_by_key(self, connection: C, key: str) -> Job | None:
        return one_job(connection, self.sql.by_key, {"key": key})

    async def get(self, job_id: str, workspace: str | None = None) -> Job | None:
        if unstorable_key(job_id):
            return None
        query, params = self.sql.lookup(job_id, workspace)
        return await self._run(lambda connection: one_job(connection, query, params))

    async def remove(self, job_id: str) -> None:
        if unstorable_key(job_id):
            return
        await self._run(self._delete(self.sql.remove, {"id": job_id}))

    async def evict(self, finished_before: float) -> int:
        return await self._run(self._delete(self.sql.evict, {"before": finished_before}))

    def _delete(self, query: str, params: dict[str, Any]) -> Callable[[C], int]:
        """A DELETE ... RETURNING graph, status, for :meth:`_run`: how many it deleted."""

        def delete(connection: C) -> int:
            rows = [
                (graph, status) for graph, status in connection.execute(query, params).fetchall()
            ]
            self._deleted(rows)
            return len(rows)

        return delete

    async def finish(
        self,
        job_id: str,
        status: JobStatus,
        completed_at: float,
        result: bytes | None = None,
        error: JobError | None = None,
        record: bytes | None = None,
    ) -> Job | None:
        if unstorable_key(job_id):
            return None
        token = self._take_lease(job_id)
        params = {
            "id": job_id,
            "status": status.value,
            "completed_at": completed_at,
            "result": None if result is None else self._json_text(result),
            "record": None if record is None else self._json_text(record),
            "error": dump_error(error),
            "token": token,
            "raw_result": result,  # for the job's thread (see _threads_sql)
        }
        job = await self._finish(params)
        if job is None or (result is None and record is None):
            return job
        return job.replace(result_json=result, record=record)

    def _json_text(self, text: bytes) -> Any:
        """JSON text as this database's driver takes it for a JSON column: as it is."""
        return text

    async def list_jobs(
        self,
        status: JobStatus | None = None,
        limit: int = 100,
        cursor: str | None = None,
        *,
        graph: str | None = None,
        workspace: str | None = None,
    ) -> tuple[list[Job], str | None]:
        """Jobs in (created_at, id) order, optionally of one status, graph and workspace;
        and the next page's cursor."""
        d = self.sql.dialect
        query, params = list_query(
            d.table, d.columns, status, limit, cursor, d.mark, graph, workspace
        )

        def page(connection: C) -> list[Job]:
            return [row_to_job(row) for row in connection.execute(query, params).fetchall()]

        return split_page(await self._run(page), limit)

    async def read_events(
        self, job_id: str, after: int, limit: int
    ) -> tuple[Job, list[JobEvent]] | None:
        if unstorable_key(job_id):
            return None
        return await self._run(
            lambda connection: self.event_log.read(connection, job_id, after, limit)
        )
