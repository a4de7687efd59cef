"""The schedule routes: cron schedules kept in the store (see ``graphnursery.scheduler``).

``POST /schedules`` (201), ``GET /schedules``, ``GET /schedules/{id}`` (with its next fire
times), ``PATCH /schedules/{id}`` (``{"paused": true}`` pauses, ``false`` resumes; or a new
cron, timezone, input, target, missed policy) and ``DELETE /schedules/{id}``. A field
that is invalid: 400 ``invalid_body`` naming it; an unknown id: 404 ``schedule_not_found``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, Field
from quart import Quart, Response, request
from quart_schema import document

from ..engine_thread import AnyEngine
from ..scheduler import next_fire_times
from ..store import Schedule
from . import caller
from .openapi import answers
from .parsing import load_json_object
from .pipeline import Pipeline
from .routes import json_response
from .schemas import iso


class ScheduleBody(BaseModel):
    target: str = Field(description="a graph served here, or a stored flow, by name")
    cron: str = Field(
        description="5 fields (minute first), 6 with seconds first ('*/10 * * * * *'), or an"
        " alias such as @hourly"
    )
    timezone: str = Field("UTC", description="an IANA name; the cron's fields are its local time")
    input: Any = Field(None, description="each fired job's input")
    missed: Literal["skip", "run_once"] = Field(
        "skip",
        description="ticks missed while no server ran: skip them, or run once for all of them",
    )
    paused: bool = False


class ScheduleChange(BaseModel):
    target: str | None = None
    cron: str | None = None
    timezone: str | None = None
    input: Any = None
    missed: Literal["skip", "run_once"] | None = None
    paused: bool | None = Field(None, description="true pauses, false resumes")


class ScheduleModel(BaseModel):
    id: str
    target: str
    cron: str
    timezone: str
    input: Any = None
    missed: str
    paused: bool
    nextFireAt: str | None = Field(description="the next tick (None while paused)")
    nextFireTimes: list[str] = Field(description="the next ticks, the first few")
    lastFiredAt: str | None = None
    lastJobId: str | None = None
    fired: int = Field(description="jobs it submitted so far")
    createdAt: str
    updatedAt: str


class Deleted(BaseModel):
    id: str
    deleted: bool


class ScheduleList(BaseModel):
    schedules: list[ScheduleModel]


def schedule_body(schedule: Schedule) -> dict[str, Any]:
    times = next_fire_times(schedule)
    return {
        "id": schedule.id,
        "target": schedule.target,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "input": schedule.input,
        "missed": schedule.missed,
        "paused": schedule.paused,
        "nextFireAt": iso(times[0]) if times else None,
        "nextFireTimes": [iso(t) for t in times],
        "lastFiredAt": None if schedule.last_fired_at is None else iso(schedule.last_fired_at),
        "lastJobId": schedule.last_job_id,
        "fired": schedule.fired,
        "createdAt": iso(schedule.created_at),
        "updatedAt": iso(schedule.updated_at),
    }


def add_schedule_routes(app: Quart, engine: Callable[[], AnyEngine], pipeline: Pipeline) -> None:
    async def body() -> dict[str, Any]:
        return load_json_object(await pipeline.read_body(request.body))

    @app.post("/schedules")
    @document(request=ScheduleBody, responses=answers(ScheduleModel, 400, 401, 503, ok=(201,)))
    async def add_schedule() -> Response:
        """Fire jobs for a graph or stored flow on a cron schedule; first at its next tick.
        Kept in the store: with PostgreSQL, each tick fires once across every replica."""
        schedule = await engine().schedules.add(await body(), caller.workspace())
        return json_response(schedule_body(schedule), 201)

    @app.get("/schedules")
    @document(responses=answers(ScheduleList, 401, 503))
    async def list_schedules() -> Response:
        schedules = await engine().schedules.list_schedules(caller.visible())
        return json_response({"schedules": [schedule_body(s) for s in schedules]})

    @app.get("/schedules/<schedule_id>")
    @document(responses=answers(ScheduleModel, 401, 404, 503))
    async def get_schedule(schedule_id: str) -> Response:
        """The schedule, with its next fire times."""
        found = await engine().schedules.get(schedule_id, caller.visible())
        return json_response(schedule_body(found))

    @app.patch("/schedules/<schedule_id>")
    @document(request=ScheduleChange, responses=answers(ScheduleModel, 400, 401, 404, 503))
    async def change_schedule(schedule_id: str) -> Response:
        """Change some fields: ``paused`` pauses or resumes (a resumed schedule fires from
        its next tick on, not the ticks it was paused for)."""
        changed = await engine().schedules.update(schedule_id, await body(), caller.visible())
        return json_response(schedule_body(changed))

    @app.delete("/schedules/<schedule_id>")
    @document(responses=answers(Deleted, 401, 404, 503))
    async def delete_schedule(schedule_id: str) -> Response:
        """Forget the schedule: it fires no more (jobs it fired stay)."""
        await engine().schedules.delete(schedule_id, caller.visible())
        return json_response({"id": schedule_id, "deleted": True})
