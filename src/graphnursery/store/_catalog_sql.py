"""The SQL stores' flows and schedules (see :mod:`.catalog`), one SQL text for SQLite and
PostgreSQL: statements are written with ``?`` marks, and each store's mark put in."""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from ._rows import dump_json, job_params, load_json
from .catalog import SCHEDULE_CHANGES, Catalog, FlowInfo, FlowVersion, Schedule

if TYPE_CHECKING:
    from ..jobs import Job
    from ._sql import Connection, Statements

C = TypeVar("C", bound="Connection")
T = TypeVar("T")

SCHEDULE_COLUMNS = (
    "id",
    "target",
    "cron",
    "timezone",
    "input",
    "missed",
    "paused",
    "next_fire_at",
    "created_at",
    "updated_at",
    "last_fired_at",
    "last_job_id",
    "fired",
    "workspace",
)


@dataclass(frozen=True, slots=True)
class CatalogTables:
    """The tables' names in one database, and its parameter mark."""

    flows: str
    versions: str
    schedules: str
    mark: str = "?"
    threads: str = "threads"

    def sql(self, text: str) -> str:
        """``text`` with its ``?`` marks in this database's spelling, its tables named."""
        return text.format(
            flows=self.flows,
            versions=self.versions,
            schedules=self.schedules,
            threads=self.threads,
        ).replace("?", self.mark)


def _schedule(row: Sequence[Any]) -> Schedule:
    values = dict(zip(SCHEDULE_COLUMNS, row, strict=True))
    values["input"] = load_json(values["input"])
    values["paused"] = bool(values["paused"])
    return Schedule(**values)


def _flow_version(row: Sequence[Any]) -> FlowVersion:
    name, version, number, definition, created_at, live = row
    return FlowVersion(name, version, number, definition.encode(), created_at, bool(live))


class SQLCatalog(Catalog, Generic[C]):
    """Flows and schedules on the store's :meth:`_run` transactions."""

    tables: ClassVar[CatalogTables]
    sql: ClassVar[Statements]

    @abc.abstractmethod
    async def _run(
        self,
        fn: Callable[[C], T],
        *,
        engine: bool = False,
        again: Callable[[C], T] | None = None,
    ) -> T: ...

    def _added(self, connection: C, job: Job) -> None: ...

    # -- flows -----------------------------------------------------------------------------

    def _versions_query(self, where: str) -> str:
        return self.tables.sql(
            "SELECT v.name, v.version, v.number, v.definition, v.created_at, v.version = f.live"
            " FROM {versions} v JOIN {flows} f ON f.name = v.name WHERE " + where
        )

    async def save_flow(
        self, name: str, version: str, definition: bytes, now: float
    ) -> tuple[FlowVersion, bool]:
        t = self.tables
        text = definition.decode()

        def save(connection: C) -> tuple[FlowVersion, bool]:
            # The flow's row first: it locks the flow (PostgreSQL), so two saves of it at
            # once number their versions one after the other.
            connection.execute(
                t.sql(
                    "INSERT INTO {flows} (name, live, created_at, updated_at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (name) DO UPDATE SET live = excluded.live,"
                    " updated_at = excluded.updated_at"
                ),
                (name, version, now, now),
            )
            found = connection.execute(
                t.sql("SELECT 1 FROM {versions} WHERE name = ? AND version = ?"), (name, version)
            ).fetchone()
            if found is None:
                connection.execute(
                    t.sql(
                        "INSERT INTO {versions} (name, version, number, definition, created_at)"
                        " SELECT ?, ?, coalesce(max(number), 0) + 1, ?, ? FROM {versions}"
                        " WHERE name = ?"
                    ),
                    (name, version, text, now, name),
                )
            row = connection.execute(
                self._versions_query("v.name = ? AND v.version = ?"), (name, version)
            ).fetchone()
            return _flow_version(row), found is None

        return await self._run(save)

    async def get_flow(self, name: str, version: str | None = None) -> FlowVersion | None:
        params: tuple[str, ...]
        if version is None:
            query, params = self._versions_query("v.name = ? AND v.version = f.live"), (name,)
        else:
            query, params = self._versions_query("v.name = ? AND v.version = ?"), (name, version)

        def get(connection: C) -> FlowVersion | None:
            row = connection.execute(query, params).fetchone()
            return None if row is None else _flow_version(row)

        return await self._run(get)

    async def list_flows(self) -> list[FlowInfo]:
        query = self.tables.sql(
            "SELECT f.name, f.live, max(CASE WHEN v.version = f.live THEN v.number END),"
            " count(*), f.created_at, f.updated_at FROM {flows} f JOIN {versions} v"
            " ON v.name = f.name GROUP BY f.name, f.live, f.created_at, f.updated_at"
            " ORDER BY f.name"
        )

        def flows(connection: C) -> list[FlowInfo]:
            return [
                FlowInfo(name, live, int(number), int(count), created, updated)
                for name, live, number, count, created, updated in connection.execute(
                    query
                ).fetchall()
            ]

        return await self._run(flows)

    async def flow_versions(self, name: str) -> list[FlowVersion] | None:
        query = self._versions_query("v.name = ? ORDER BY v.number")

        def versions(connection: C) -> list[FlowVersion] | None:
            rows = connection.execute(query, (name,)).fetchall()
            return [_flow_version(row) for row in rows] or None

        return await self._run(versions)

    async def set_flow_live(self, name: str, version: str, now: float) -> FlowVersion | None:
        t = self.tables

        def move(connection: C) -> FlowVersion | None:
            moved = connection.execute(
                t.sql(
                    "UPDATE {flows} SET live = ?, updated_at = ? WHERE name = ? AND EXISTS"
                    " (SELECT 1 FROM {versions} WHERE name = ? AND version = ?)"
                ),
                (version, now, name, name, version),
            ).rowcount
            if not moved:
                return None
            row = connection.execute(
                self._versions_query("v.name = ? AND v.version = ?"), (name, version)
            ).fetchone()
            return _flow_version(row)

        return await self._run(move)

    # -- schedules -------------------------------------------------------------------------

    def _schedule_query(self, where: str = "") -> str:
        return self.tables.sql(
            f"SELECT {', '.join(SCHEDULE_COLUMNS)} FROM {{schedules}}" + (where and " " + where)
        )

    async def add_schedule(self, schedule: Schedule) -> Schedule:
        values = [getattr(schedule, column) for column in SCHEDULE_COLUMNS]
        values[SCHEDULE_COLUMNS.index("input")] = dump_json(schedule.input)
        values[SCHEDULE_COLUMNS.index("paused")] = int(schedule.paused)
        query = self.tables.sql(
            f"INSERT INTO {{schedules}} ({', '.join(SCHEDULE_COLUMNS)})"
            f" VALUES ({', '.join('?' for _ in SCHEDULE_COLUMNS)})"
        )
        await self._run(lambda connection: connection.execute(query, values))
        return schedule

    async def get_schedule(self, schedule_id: str) -> Schedule | None:
        query = self._schedule_query("WHERE id = ?")

        def get(connection: C) -> Schedule | None:
            row = connection.execute(query, (schedule_id,)).fetchone()
            return None if row is None else _schedule(row)

        return await self._run(get)

    async def list_schedules(self, workspace: str | None = None) -> list[Schedule]:
        where = "" if workspace is None else "WHERE workspace = ? "
        query = self._schedule_query(where + "ORDER BY created_at, id")
        params = () if workspace is None else (workspace,)
        return await self._run(
            lambda connection: [
                _schedule(row) for row in connection.execute(query, params).fetchall()
            ]
        )

    async def update_schedule(
        self, schedule_id: str, changes: Mapping[str, Any], now: float
    ) -> Schedule | None:
        unknown = set(changes) - SCHEDULE_CHANGES
        if unknown:
            raise ValueError(f"cannot change {sorted(unknown)} of a schedule")
        values = dict(changes)
        if "input" in values:
            values["input"] = dump_json(values["input"])
        if "paused" in values:
            values["paused"] = int(values["paused"])
        sets = ", ".join(f"{column} = ?" for column in values)
        query = self.tables.sql(
            f"UPDATE {{schedules}} SET {sets}{', ' if sets else ''}updated_at = ? WHERE id = ?"
            f" RETURNING {', '.join(SCHEDULE_COLUMNS)}"
        )
        params = [*values.values(), now, schedule_id]

        def update(connection: C) -> Schedule | None:
            row = connection.execute(query, params).fetchone()
            return None if row is None else _schedule(row)

        return await self._run(update)

    async def delete_schedule(self, schedule_id: str) -> bool:
        query = self.tables.sql("DELETE FROM {schedules} WHERE id = ?")
        return await self._run(
            lambda connection: connection.execute(query, (schedule_id,)).rowcount > 0
        )

    async def fire_schedule(
        self,
        schedule_id: str,
        planned: float,
        next_fire_at: float,
        fired_at: float,
        job: Job | None,
    ) -> bool:
        # The conditional UPDATE is the claim: of two servers firing the tick at once, the
        # second's finds next_fire_at moved (PostgreSQL re-reads the row it waited for).
        query = self.tables.sql(
            "UPDATE {schedules} SET next_fire_at = ?, last_fired_at = coalesce(?, last_fired_at),"
            " last_job_id = coalesce(?, last_job_id), fired = fired + ?"
            " WHERE id = ? AND paused = 0 AND next_fire_at = ?"
        )
        fired = job is not None
        params = (
            next_fire_at,
            fired_at if fired else None,
            job.id if job is not None else None,
            int(fired),
            schedule_id,
            planned,
        )

        def fire(connection: C) -> bool:
            if not connection.execute(query, params).rowcount:
                return False
            if job is not None:
                connection.execute(self.sql.insert, {**job_params(job), "key": None, "delay": 0.0})
                self._added(connection, job)
            return True

        def again(connection: C) -> bool:  # a first try that committed recorded the job
            found = job and connection.execute(self.sql.by_id, {"id": job.id}).fetchone()
            if found is not None:
                return True
            return fire(connection)

        return await self._run(fire, again=again)
