"""Cron schedules (``POST /schedules``): kept in the store, fired by one Trio task per
server, each tick once across every server.

A schedule keeps its next planned fire time (``next_fire_at``). The task sleeps until the
earliest one (and, with a shared store, re-reads the schedules at least every
:data:`POLL_SECONDS`, for other replicas' changes), then asks :func:`~graphnursery.cron.due`
what to fire. Each tick is fired with ``Store.fire_schedule``: a conditional update of the
schedule (still at that tick?) and the new job, in one transaction, so of several replicas
firing one tick, one records it and the others find it moved.

Missed ticks (no server ran): ``skip`` fires none of them, only the ticks from now on;
``run_once`` fires one job for all of them when a server starts. A tick whose graph's queue
is full is skipped (logged); a schedule whose target is no longer served moves on too.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import trio

from .cron import DEFAULT_GRACE, MISSED_POLICIES, Cron, due, parse_cron
from .errors import GraphNotFound, ScheduleInvalid, ScheduleNotFound, StoreUnavailable
from .jobs import DEFAULT_WORKSPACE
from .logs import get_logger
from .store import Schedule

if TYPE_CHECKING:
    from .engine import Engine
    from .lanes import Lane

log = get_logger("graphnursery.scheduler")

#: With a shared store: seconds between two reads of the schedules (other replicas').
POLL_SECONDS = 1.0
#: The longest the task sleeps without reading the schedules again.
MAX_SLEEP = 60.0
#: Fire times a schedule's answer lists.
NEXT_TIMES = 5


def next_fire_times(schedule: Schedule, count: int = NEXT_TIMES) -> list[float]:
    """A schedule's next fire times (none while it is paused)."""
    if schedule.paused:
        return []
    cron = parse_cron(schedule.cron, schedule.timezone)
    return [schedule.next_fire_at, *cron.next_times(schedule.next_fire_at, count - 1)]


class Schedules:
    """The engine's schedules: what the HTTP layer asks (raising ScheduleInvalid and
    ScheduleNotFound), and :meth:`run`, the task that fires them."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._store = engine.store
        self._changed = trio.Event()
        self._crons: dict[tuple[str, str], Cron] = {}

    # -- what the HTTP layer asks ------------------------------------------------------------

    async def add(self, body: Mapping[str, Any], workspace: str = DEFAULT_WORKSPACE) -> Schedule:
        """A new schedule of ``workspace`` (its jobs are that workspace's) from ``{"target",
        "cron", "timezone"?, "input"?, "missed"?, "paused"?}``, first fired at its next tick
        from now."""
        unknown = set(body) - {"target", "cron", "timezone", "input", "missed", "paused"}
        if unknown:
            raise ScheduleInvalid(sorted(unknown)[0], "is not a schedule field")
        for required in ("target", "cron"):
            if required not in body:
                raise ScheduleInvalid(required, "is required")
        now = self._engine.clock.now()
        fields = await self._checked({"timezone": "UTC", "missed": "skip", **body})
        cron = self._cron(fields["cron"], fields["timezone"])
        schedule = Schedule(
            id=str(uuid.uuid4()),
            target=fields["target"],
            cron=fields["cron"],
            timezone=fields["timezone"],
            input=fields.get("input"),
            missed=fields["missed"],
            paused=fields.get("paused", False),
            next_fire_at=cron.next_after(now),
            created_at=now,
            updated_at=now,
            workspace=workspace,
        )
        await self._store.add_schedule(schedule)
        self._changed.set()
        log.info("schedule added", schedule_id=schedule.id, target=schedule.target)
        return schedule

    async def get(self, schedule_id: str, workspace: str | None = None) -> Schedule:
        """The schedule; ScheduleNotFound if unknown or (with ``workspace``) another's."""
        schedule = await self._store.get_schedule(schedule_id)
        if schedule is None or workspace not in (None, schedule.workspace):
            raise ScheduleNotFound(schedule_id)
        return schedule

    async def list_schedules(self, workspace: str | None = None) -> list[Schedule]:
        return await self._store.list_schedules(workspace)

    async def update(
        self, schedule_id: str, body: Mapping[str, Any], workspace: str | None = None
    ) -> Schedule:
        """Change some of a schedule's fields (``paused`` pauses or resumes it). A new cron
        or timezone, or a resume, plans its next tick from now: a resumed schedule does
        not fire the ticks it was paused for."""
        unknown = set(body) - {"target", "cron", "timezone", "input", "missed", "paused"}
        if unknown:
            raise ScheduleInvalid(sorted(unknown)[0], "cannot be changed")
        current = await self.get(schedule_id, workspace)
        changes = dict(await self._checked(body))
        cron = self._cron(
            changes.get("cron", current.cron), changes.get("timezone", current.timezone)
        )
        resumed = current.paused and changes.get("paused") is False
        if "cron" in changes or "timezone" in changes or resumed:
            changes["next_fire_at"] = cron.next_after(self._engine.clock.now())
        updated = await self._store.update_schedule(schedule_id, changes, self._engine.clock.now())
        if updated is None:
            raise ScheduleNotFound(schedule_id)
        self._changed.set()
        return updated

    async def delete(self, schedule_id: str, workspace: str | None = None) -> None:
        await self.get(schedule_id, workspace)
        if not await self._store.delete_schedule(schedule_id):
            raise ScheduleNotFound(schedule_id)
        self._changed.set()

    async def _checked(self, fields: Mapping[str, Any]) -> Mapping[str, Any]:
        """``fields`` validated (ScheduleInvalid names the one at fault)."""
        for name in ("target", "cron", "timezone", "missed"):
            if name in fields and (not isinstance(fields[name], str) or not fields[name]):
                raise ScheduleInvalid(name, "must be a non-empty string")
        if "paused" in fields and not isinstance(fields["paused"], bool):
            raise ScheduleInvalid("paused", "must be true or false")
        if "missed" in fields and fields["missed"] not in MISSED_POLICIES:
            raise ScheduleInvalid("missed", f"must be one of {', '.join(MISSED_POLICIES)}")
        if "cron" in fields or "timezone" in fields:
            try:
                parse_cron(fields.get("cron", "* * * * *"), fields.get("timezone"))
            except ValueError as exc:
                raise ScheduleInvalid(
                    "timezone" if "timezone" in str(exc) else "cron", str(exc)
                ) from None
        if "target" in fields:
            try:
                await self._lane_of(fields["target"])
            except GraphNotFound:
                raise ScheduleInvalid(
                    "target", f"no graph or stored flow {fields['target']!r} is served here"
                ) from None
        return fields

    def _cron(self, expr: str, timezone: str) -> Cron:
        cron = self._crons.get((expr, timezone))
        if cron is None:
            cron = self._crons[expr, timezone] = parse_cron(expr, timezone)
        return cron

    async def _lane_of(self, target: str) -> Lane:
        """The lane of a served graph or stored flow. Raises GraphNotFound."""
        if target not in self._engine.lanes:
            await self._engine.flows.serve(target)
        return self._engine.lane(target)

    # -- firing ------------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Fire the schedules until cancelled."""
        task_status.started()
        starting = True
        while True:
            self._changed = trio.Event()
            try:
                wait = await self._fire_due(starting)
                starting = False
            except StoreUnavailable:
                raise  # away past store_unavailable_exit: the engine stops, saying why
            except Exception:  # the database away for now, say: next time
                log.exception("firing the schedules failed")
                wait = POLL_SECONDS
            if self._store.shared:
                wait = min(wait, POLL_SECONDS)
            with trio.move_on_after(max(0.0, min(wait, MAX_SLEEP))):
                await self._changed.wait()

    async def _fire_due(self, starting: bool) -> float:
        """Fire what is due; seconds until the next planned tick."""
        now = self._engine.clock.now()
        earliest = math.inf
        for schedule in await self._store.list_schedules():
            if schedule.paused:
                continue
            try:
                cron = self._cron(schedule.cron, schedule.timezone)
            except ValueError:  # stored by a server that read it differently
                log.error("cannot read a schedule's cron", schedule_id=schedule.id)
                continue
            if (
                starting
                and schedule.missed == "skip"
                and now - schedule.next_fire_at > DEFAULT_GRACE
            ):
                fires: list[float] = []  # missed while no server ran
                planned = cron.next_after(now)
            else:
                fires, planned = due(cron, schedule.next_fire_at, now, schedule.missed)
            if planned != schedule.next_fire_at:
                await self._fire(schedule, fires, planned, now)
            earliest = min(earliest, planned)
        return earliest - self._engine.clock.now()

    async def _fire(
        self, schedule: Schedule, fires: list[float], planned: float, now: float
    ) -> None:
        """Fire each of ``fires`` in turn (each step conditional on the one before), then
        plan ``planned``; stop at once if another server fired first."""
        at = schedule.next_fire_at
        steps = [*fires[1:], planned]
        if not fires:
            await self._store.fire_schedule(schedule.id, at, planned, now, None)
            return
        for following in steps:
            if not await self._fire_one(schedule, at, following, now):
                return
            at = following

    async def _fire_one(self, schedule: Schedule, at: float, following: float, now: float) -> bool:
        try:
            lane = await self._lane_of(schedule.target)
        except GraphNotFound:
            log.warning(
                "a schedule's target is not served: tick skipped",
                schedule_id=schedule.id,
                target=schedule.target,
            )
            return await self._store.fire_schedule(schedule.id, at, following, now, None)
        if not await lane.intake.has_room():
            log.warning(
                "a schedule's graph queue is full: tick skipped",
                schedule_id=schedule.id,
                target=schedule.target,
            )
            return await self._store.fire_schedule(schedule.id, at, following, now, None)
        job = lane.new_job(
            schedule.input, now, schedule_id=schedule.id, workspace=schedule.workspace
        )
        fired = await lane.intake.fire(schedule.id, at, following, now, job)
        if fired:
            self._engine.metrics.job_submitted(job)
            log.info("schedule fired", schedule_id=schedule.id, job_id=job.id, graph=lane.name)
        return fired
