"""The SQL stores' LangGraph threads (see :mod:`.threads`), one SQL text for SQLite and
PostgreSQL, written with ``?`` marks (see ``CatalogTables.sql``)."""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import orjson

from ._rows import TERMINAL_SQL, dump_json, row_to_job
from .threads import ThreadKeeper, ThreadQuery, ThreadRecord, after_run

if TYPE_CHECKING:
    from ..jobs import Job
    from ._catalog_sql import CatalogTables
    from ._sql import Connection, Statements

C = TypeVar("C", bound="Connection")
T = TypeVar("T")

THREAD_COLUMNS = (
    "thread_id, workspace, metadata, created_at, updated_at, status, thread_values, interrupts"
)
#: Threads read at a time by a search (which filters them as it reads).
SEARCH_BATCH = 200


def _text(value: Any) -> bytes | None:
    if value is None:
        return None
    return value if isinstance(value, bytes) else str(value).encode()


def _thread(row: Sequence[Any]) -> ThreadRecord:
    thread_id, workspace, metadata, created, updated, status, values, interrupts = row
    return ThreadRecord(
        thread_id,
        workspace,
        orjson.loads(metadata) if isinstance(metadata, (str, bytes)) else dict(metadata),
        created,
        updated,
        status,
        _text(values),
        _text(interrupts) or b"{}",
    )


class SQLThreads(ThreadKeeper, Generic[C]):
    """Threads on the store's :meth:`_run` transactions."""

    tables: ClassVar[CatalogTables]
    sql: ClassVar[Statements]
    #: What the database's metadata column takes a JSON text parameter as (a cast).
    metadata_param: ClassVar[str] = "?"
    json_param: ClassVar[str] = "?"

    @abc.abstractmethod
    async def _run(
        self,
        fn: Callable[[C], T],
        *,
        engine: bool = False,
        again: Callable[[C], T] | None = None,
    ) -> T: ...

    def _select(self, where: str) -> str:
        return self.tables.sql(f"SELECT {THREAD_COLUMNS} FROM {{threads}} WHERE {where}")

    async def add_thread(self, thread: ThreadRecord) -> ThreadRecord | None:
        query = self.tables.sql(
            "INSERT INTO {threads} (thread_id, workspace, metadata, created_at, updated_at,"
            f" status) VALUES (?, ?, {self.metadata_param}, ?, ?, ?)"
            " ON CONFLICT (thread_id) DO NOTHING RETURNING thread_id"
        )
        params = (
            thread.thread_id,
            thread.workspace,
            dump_json(thread.metadata),
            thread.created_at,
            thread.updated_at,
            thread.status,
        )

        def add(connection: C) -> ThreadRecord | None:
            row = connection.execute(query, params).fetchone()
            return None if row is None else thread

        return await self._run(add)

    async def get_thread(self, thread_id: str, workspace: str | None = None) -> ThreadRecord | None:
        query, params = self._one(thread_id, workspace)

        def get(connection: C) -> ThreadRecord | None:
            row = connection.execute(query, params).fetchone()
            return None if row is None else _thread(row)

        return await self._run(get)

    def _one(self, thread_id: str, workspace: str | None) -> tuple[str, tuple[Any, ...]]:
        if workspace is None:
            return self._select("thread_id = ?"), (thread_id,)
        return self._select("thread_id = ? AND workspace = ?"), (thread_id, workspace)

    async def update_thread(
        self, thread_id: str, workspace: str | None, now: float, **changes: Any
    ) -> ThreadRecord | None:
        query, params = self._one(thread_id, workspace)

        def update(connection: C) -> ThreadRecord | None:
            row = connection.execute(query, params).fetchone()
            if row is None:
                return None
            thread = _thread(row)
            self._write(connection, thread, now, changes)
            return _changed(thread, now, changes)

        return await self._run(update)

    def _write(self, connection: C, thread: ThreadRecord, now: float, changes: Any) -> None:
        changed = _changed(thread, now, changes)
        connection.execute(
            self.tables.sql(
                f"UPDATE {{threads}} SET metadata = {self.metadata_param}, updated_at = ?,"
                f" status = ?, thread_values = {self.json_param},"
                f" interrupts = {self.json_param} WHERE thread_id = ?"
            ),
            (
                dump_json(changed.metadata),
                now,
                changed.status,
                self._json_column(changed.values),
                self._json_column(changed.interrupts),
                thread.thread_id,
            ),
        )

    def _json_column(self, text: bytes | None) -> Any:
        return None if text is None else text.decode()

    async def delete_thread(self, thread_id: str, workspace: str | None = None) -> bool:
        query, params = self._one(thread_id, workspace)
        jobs = self.sql.dialect.table

        def delete(connection: C) -> bool:
            if connection.execute(query, params).fetchone() is None:
                return False
            rows = connection.execute(
                self.tables.sql(f"DELETE FROM {jobs} WHERE thread_id = ? RETURNING graph, status"),
                (thread_id,),
            ).fetchall()
            self._deleted([(graph, status) for graph, status in rows])
            connection.execute(
                self.tables.sql("DELETE FROM {threads} WHERE thread_id = ?"), (thread_id,)
            )
            return True

        return await self._run(delete)

    def _deleted(self, rows: Sequence[tuple[str, str]]) -> None: ...

    async def search_threads(self, query: ThreadQuery) -> list[ThreadRecord]:
        where, params = (
            ("1 = 1", ()) if query.workspace is None else ("workspace = ?", (query.workspace,))
        )
        select = self._select(f"{where} ORDER BY created_at DESC, thread_id LIMIT ? OFFSET ?")

        def search(connection: C) -> list[ThreadRecord]:
            def rows() -> Iterator[ThreadRecord]:
                offset = 0
                while True:
                    batch = connection.execute(select, (*params, SEARCH_BATCH, offset)).fetchall()
                    yield from (_thread(row) for row in batch)
                    if len(batch) < SEARCH_BATCH:
                        return
                    offset += SEARCH_BATCH

            return query.page(rows())

        return await self._run(search)

    async def thread_jobs(
        self, thread_id: str, limit: int = 10, offset: int = 0, *, active: bool = False
    ) -> list[Job]:
        d = self.sql.dialect
        where = f" AND status NOT IN ({TERMINAL_SQL})" if active else ""
        query = self.tables.sql(
            f"SELECT {d.columns} FROM {d.table} WHERE thread_id = ?{where}"
            " ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?"
        )

        def jobs(connection: C) -> list[Job]:
            rows = connection.execute(query, (thread_id, limit, offset)).fetchall()
            return [row_to_job(row) for row in rows]

        return await self._run(jobs)

    def _thread_run_ended(
        self, connection: C, job: Job | None, result: bytes | None, now: float
    ) -> None:
        """In the transaction that ended ``job``: its thread's status and values."""
        if job is None or job.thread_id is None:
            return
        d = self.sql.dialect
        row = connection.execute(self._select("thread_id = ?"), (job.thread_id,)).fetchone()
        if row is None:
            return
        others = connection.execute(
            self.tables.sql(
                f"SELECT 1 FROM {d.table} WHERE thread_id = ? AND id <> ?"
                f" AND status NOT IN ({TERMINAL_SQL}) LIMIT 1"
            ),
            (job.thread_id, job.id),
        ).fetchone()
        self._write(connection, _thread(row), now, after_run(job, result, others is not None))


def _changed(thread: ThreadRecord, now: float, changes: dict[str, Any]) -> ThreadRecord:
    metadata = changes.get("metadata")
    merged = thread.metadata if metadata is None else {**thread.metadata, **metadata}
    rest = {key: value for key, value in changes.items() if key != "metadata"}
    return thread.replace(metadata=merged, updated_at=now, **rest)
