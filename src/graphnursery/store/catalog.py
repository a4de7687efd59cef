"""What a store keeps beside jobs: stored flows (immutable versions and a live pointer) and
schedules. :class:`Catalog` is the interface (a base of :class:`~graphnursery.store.Store`);
the memory store keeps them in dicts, the SQL stores in tables (:mod:`._catalog_sql`).
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..jobs import Job


@dataclass(frozen=True, slots=True)
class FlowVersion:
    """One immutable version of a stored flow."""

    name: str
    version: str  # the content hash of its definition
    number: int  # 1 for the flow's first version, then 2, 3... in the order saved
    definition: bytes  # its JSON text
    created_at: float
    live: bool  # whether the flow's live pointer is at it


@dataclass(frozen=True, slots=True)
class FlowInfo:
    """A stored flow: its live version and how many it has."""

    name: str
    live: str
    live_number: int
    versions: int
    created_at: float
    updated_at: float  # when the live pointer last moved


@dataclass(frozen=True, slots=True)
class Schedule:
    """A cron schedule submitting jobs for a target (a graph or a stored flow)."""

    id: str
    target: str
    cron: str
    timezone: str
    input: Any
    missed: str  # what it does with ticks missed while no server ran (see graphnursery.cron)
    paused: bool
    next_fire_at: float  # the next fire time not yet fired (unix time)
    created_at: float
    updated_at: float
    last_fired_at: float | None = None
    last_job_id: str | None = None
    fired: int = 0  # jobs it submitted so far
    workspace: str = "default"  # whose it is: its jobs are that workspace's

    def replace(self, **changes: Any) -> Schedule:
        return dataclasses.replace(self, **changes)


#: The schedule fields :meth:`Catalog.update_schedule` may change.
SCHEDULE_CHANGES = frozenset(
    {"target", "cron", "timezone", "input", "missed", "paused", "next_fire_at"}
)


class Catalog(abc.ABC):
    """Stored flows and schedules."""

    # -- flows -----------------------------------------------------------------------------

    @abc.abstractmethod
    async def save_flow(
        self, name: str, version: str, definition: bytes, now: float
    ) -> tuple[FlowVersion, bool]:
        """Keep a flow version (a new one, numbered next, unless the flow has it already)
        and point the flow's live pointer at it. Returns it, and whether it is new."""

    @abc.abstractmethod
    async def get_flow(self, name: str, version: str | None = None) -> FlowVersion | None:
        """A flow's version (its live one if None); None if there is no such flow or version."""

    @abc.abstractmethod
    async def list_flows(self) -> list[FlowInfo]:
        """Every stored flow, by name."""

    @abc.abstractmethod
    async def flow_versions(self, name: str) -> list[FlowVersion] | None:
        """A flow's versions, oldest first; None if there is no such flow."""

    @abc.abstractmethod
    async def set_flow_live(self, name: str, version: str, now: float) -> FlowVersion | None:
        """Point a flow's live pointer at one of its versions; None if it has no such one."""

    # -- schedules -------------------------------------------------------------------------

    @abc.abstractmethod
    async def add_schedule(self, schedule: Schedule) -> Schedule:
        """Keep a new schedule."""

    @abc.abstractmethod
    async def get_schedule(self, schedule_id: str) -> Schedule | None:
        """The schedule, or None."""

    @abc.abstractmethod
    async def list_schedules(self, workspace: str | None = None) -> list[Schedule]:
        """Every schedule (of ``workspace``, when given), oldest first."""

    @abc.abstractmethod
    async def update_schedule(
        self, schedule_id: str, changes: Mapping[str, Any], now: float
    ) -> Schedule | None:
        """Change a schedule's fields (of :data:`SCHEDULE_CHANGES`); None if unknown."""

    @abc.abstractmethod
    async def delete_schedule(self, schedule_id: str) -> bool:
        """Forget a schedule; whether there was one."""

    @abc.abstractmethod
    async def fire_schedule(
        self,
        schedule_id: str,
        planned: float,
        next_fire_at: float,
        fired_at: float,
        job: Job | None,
    ) -> bool:
        """Fire a schedule's tick ``planned``, exactly once across every server: if the
        schedule is not paused and its ``next_fire_at`` is still ``planned``, move it to
        ``next_fire_at`` and record ``job`` (a new queued job, in the same transaction;
        None to move on without one). False, changing nothing, if another server fired
        (or someone changed) it first."""
