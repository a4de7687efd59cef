"""The event log in the SQL stores (see :mod:`graphnursery.events`): its statements, written
once for SQLite and PostgreSQL through their :class:`~._sql.Dialect`, and the append and the
read each store runs in a transaction of its own.

A job's log is the rows of the events table with its id, ``seq`` an event's id (1, 2, ...
across attempts, each row with its ``attempt``). The job row keeps ``events``, the last id,
and ``events_dropped``. ``data`` is the event's JSON text as it was given, read back as the
same bytes: SQLite keeps the bytes (as it keeps results), PostgreSQL a ``text`` column (not
``jsonb``, which would respace it and refuses ``\\u0000``).

An append first reads the job row, only if the job is not terminal, locking it until the
transaction ends (PostgreSQL's ``FOR UPDATE``; SQLite has one writer). A finish or a cancel
updates that row too, so an append either commits before the job ends or finds it ended:
once a reader sees the job terminal, no event follows the ones it read. The rows go with
their job (``ON DELETE CASCADE``): in the DELETE of a ``remove`` or an eviction, and in one
an older server runs too.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ..events import JobEvent
from ..jobs import Job
from ._rows import TERMINAL_SQL
from ._sql import Connection, Dialect, one_job

C = TypeVar("C", bound=Connection)


def _as_it_is(data: bytes) -> Any:
    return data


class EventLog:
    """The event log's statements in one dialect, and the operations built on them.

    ``text``: an event's JSON text as the driver takes it for the ``data`` column.
    ``tokens``: the table has an ``append_id`` column, for a retried append to recognise
    what its first try wrote (PostgreSQL; see :meth:`appending`).
    """

    def __init__(
        self,
        dialect: Dialect,
        *,
        text: Callable[[bytes], Any] = _as_it_is,
        tokens: bool = False,
    ) -> None:
        d, p = dialect, dialect.param
        self._text = text
        self._snapshot = d.snapshot
        self.current = (
            f"SELECT events FROM {d.table} WHERE id = {p('id')}"
            f" AND status NOT IN ({TERMINAL_SQL}){d.for_update}"
        )
        self.counted = (
            f"UPDATE {d.table} SET events = {p('events')},"
            f" events_dropped = events_dropped + {p('dropped')} WHERE id = {p('id')}"
        )
        columns = ["job_id", "seq", "attempt", "event", "data"]
        if tokens:
            columns.append("append_id")
        self.insert = (
            f"INSERT INTO {d.events_table} ({', '.join(columns)})"
            f" VALUES ({', '.join(p(column) for column in columns)})"
        )
        self.job = f"SELECT {d.columns} FROM {d.table} WHERE id = {p('id')}"
        self.page = (
            f"SELECT seq, attempt, event, data FROM {d.events_table}"
            f" WHERE job_id = {p('id')} AND seq > {p('after')} ORDER BY seq LIMIT {p('limit')}"
        )
        self.by_token = (
            f"SELECT 1 FROM {d.events_table}"
            f" WHERE job_id = {p('id')} AND append_id = {p('append_id')} LIMIT 1"
        )

    def append(
        self,
        connection: Connection,
        job_id: str,
        attempt: int,
        events: Sequence[tuple[str, bytes]],
        limit: int,
        dropped: int,
        token: int | None = None,
    ) -> int | None:
        """:meth:`Store.append_events` in the caller's transaction: how many of ``events``
        the log kept, or None (writing nothing) if the job is unknown or terminal.

        ``token`` marks the first row kept (``tokens``), for :meth:`appending`.
        """
        row = connection.execute(self.current, {"id": job_id}).fetchone()
        if row is None:
            return None
        last = int(row[0])
        kept = len(events) if not limit else max(0, min(len(events), limit - last))
        dropped += len(events) - kept
        if kept or dropped:
            params = {"id": job_id, "events": last + kept, "dropped": dropped}
            connection.execute(self.counted, params)
        if kept:
            rows = [
                {
                    "job_id": job_id,
                    "seq": last + n,
                    "attempt": attempt,
                    "event": name,
                    "data": self._text(data),
                    "append_id": token if n == 1 else None,
                }
                for n, (name, data) in enumerate(events[:kept], 1)
            ]
            connection.cursor().executemany(self.insert, rows)
        return kept

    def appending(
        self,
        job_id: str,
        attempt: int,
        events: Sequence[tuple[str, bytes]],
        limit: int,
        dropped: int,
        appended: Callable[[C, str], object],
    ) -> tuple[Callable[[C], bool], Callable[[C], bool]]:
        """An append for a store that retries a transaction whose commit it did not see
        (``tokens``): its first try, and what the tries after it run (``again``).

        The first row an append keeps carries a random token of the call's own; a retry
        that finds it knows its first try committed, and appends nothing. (One that kept
        no event, all past ``limit``, may count its dropped ones twice: a count, not the
        log.) ``appended(connection, job_id)`` is called in a transaction that kept events.
        """
        token = secrets.randbits(63)

        def append(connection: C) -> bool:
            kept = self.append(connection, job_id, attempt, events, limit, dropped, token)
            if kept:
                appended(connection, job_id)
            return kept is not None

        def again(connection: C) -> bool:
            found = connection.execute(self.by_token, {"id": job_id, "append_id": token})
            return found.fetchone() is not None or append(connection)

        return append, again

    def read(
        self, connection: Connection, job_id: str, after: int, limit: int
    ) -> tuple[Job, list[JobEvent]] | None:
        """:meth:`Store.read_events` in the caller's transaction (made to read one snapshot
        with :attr:`Dialect.snapshot`); None if the job is unknown. The job is read first:
        even read statement by statement, a job found terminal has no event past those
        found after it."""
        if limit <= 0:
            job = one_job(connection, self.job, {"id": job_id})
            return None if job is None else (job, [])
        if self._snapshot:
            connection.execute(self._snapshot)
        job = one_job(connection, self.job, {"id": job_id})
        if job is None:
            return None
        rows = connection.execute(
            self.page, {"id": job_id, "after": after, "limit": limit}
        ).fetchall()
        return job, [
            JobEvent(seq, attempt, event, data.encode() if isinstance(data, str) else data)
            for seq, attempt, event, data in rows
        ]
