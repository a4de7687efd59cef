"""The memory store's flows and schedules, in dicts (see :mod:`.catalog`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .catalog import SCHEDULE_CHANGES, Catalog, FlowInfo, FlowVersion, Schedule

if TYPE_CHECKING:
    from ..jobs import Job


class MemoryCatalog(Catalog):
    """Flows and schedules of a :class:`~graphnursery.store.MemoryStore`."""

    def __init__(self) -> None:
        super().__init__()
        self._flows: dict[str, list[FlowVersion]] = {}  # name -> versions, oldest first
        self._live: dict[str, tuple[str, float, float]] = {}  # -> (version, created, updated)
        self._schedules: dict[str, Schedule] = {}

    # -- flows -----------------------------------------------------------------------------

    def _version(self, name: str, version: str) -> FlowVersion | None:
        live = self._live[name][0]
        for kept in self._flows.get(name, ()):
            if kept.version == version:
                return FlowVersion(
                    kept.name,
                    kept.version,
                    kept.number,
                    kept.definition,
                    kept.created_at,
                    kept.version == live,
                )
        return None

    async def save_flow(
        self, name: str, version: str, definition: bytes, now: float
    ) -> tuple[FlowVersion, bool]:
        versions = self._flows.setdefault(name, [])
        created = all(kept.version != version for kept in versions)
        if created:
            versions.append(FlowVersion(name, version, len(versions) + 1, definition, now, False))
        first = self._live.get(name, (version, now, now))[1]
        self._live[name] = (version, first, now)
        found = self._version(name, version)
        assert found is not None
        return found, created

    async def get_flow(self, name: str, version: str | None = None) -> FlowVersion | None:
        if name not in self._live:
            return None
        return self._version(name, self._live[name][0] if version is None else version)

    async def list_flows(self) -> list[FlowInfo]:
        flows = []
        for name in sorted(self._live):
            live, created, updated = self._live[name]
            found = self._version(name, live)
            assert found is not None
            flows.append(
                FlowInfo(name, live, found.number, len(self._flows[name]), created, updated)
            )
        return flows

    async def flow_versions(self, name: str) -> list[FlowVersion] | None:
        if name not in self._live:
            return None
        found = [self._version(name, kept.version) for kept in self._flows[name]]
        return [version for version in found if version is not None]

    async def set_flow_live(self, name: str, version: str, now: float) -> FlowVersion | None:
        if name not in self._live or self._version(name, version) is None:
            return None
        _, created, _ = self._live[name]
        self._live[name] = (version, created, now)
        return self._version(name, version)

    # -- schedules -------------------------------------------------------------------------

    async def add_schedule(self, schedule: Schedule) -> Schedule:
        if schedule.id in self._schedules:
            raise ValueError(f"schedule {schedule.id} already exists")
        self._schedules[schedule.id] = schedule
        return schedule

    async def get_schedule(self, schedule_id: str) -> Schedule | None:
        return self._schedules.get(schedule_id)

    async def list_schedules(self, workspace: str | None = None) -> list[Schedule]:
        return sorted(
            (s for s in self._schedules.values() if workspace in (None, s.workspace)),
            key=lambda s: (s.created_at, s.id),
        )

    async def update_schedule(
        self, schedule_id: str, changes: Mapping[str, Any], now: float
    ) -> Schedule | None:
        unknown = set(changes) - SCHEDULE_CHANGES
        if unknown:
            raise ValueError(f"cannot change {sorted(unknown)} of a schedule")
        schedule = self._schedules.get(schedule_id)
        if schedule is None:
            return None
        changed = self._schedules[schedule_id] = schedule.replace(**changes, updated_at=now)
        return changed

    async def delete_schedule(self, schedule_id: str) -> bool:
        return self._schedules.pop(schedule_id, None) is not None

    async def fire_schedule(
        self,
        schedule_id: str,
        planned: float,
        next_fire_at: float,
        fired_at: float,
        job: Job | None,
    ) -> bool:
        schedule = self._schedules.get(schedule_id)
        if schedule is None or schedule.paused or schedule.next_fire_at != planned:
            return False
        # Nothing awaits between the check and the change: no other fire comes between.
        fired = schedule.fired
        if job is not None:
            self._add_now(job)
            fired += 1
        self._schedules[schedule_id] = schedule.replace(
            next_fire_at=next_fire_at,
            last_fired_at=fired_at if job is not None else schedule.last_fired_at,
            last_job_id=job.id if job is not None else schedule.last_job_id,
            fired=fired,
        )
        return True

    def _add_now(self, job: Job) -> None:
        """Record a new job at once (the store's)."""
        raise NotImplementedError
