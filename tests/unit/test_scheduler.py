"""The scheduler's timing under Trio's autojump clock (graph run in-process, memory store):
ticks fired once each, pauses, missed ticks by policy."""

from __future__ import annotations

import time
from typing import Any

import pytest
import trio

from graphnursery import Config, JobStatus, open_engine
from graphnursery.errors import ScheduleInvalid, ScheduleNotFound
from graphnursery.inline import InlineExecutor
from graphnursery.store import Schedule
from graphnursery.store.memory import MemoryStore


def engine_for(store: MemoryStore | None = None):  # type: ignore[no-untyped-def]
    config = Config(graph="examples/echo.py", workers=1, store="memory://")
    return open_engine(config, store or MemoryStore(), executor=InlineExecutor(config.graph))


async def fired_jobs(engine: Any, schedule_id: str) -> list[Any]:
    jobs, _ = await engine.list_jobs(limit=1000)
    return [job for job in jobs if job.schedule_id == schedule_id]


async def test_a_per_second_schedule_fires_once_a_second(autojump_clock: trio.abc.Clock) -> None:
    async with engine_for() as engine:
        body = {"target": "echo", "cron": "* * * * * *", "input": {"n": 1}}
        schedule = await engine.schedules.add(body)
        start = engine.clock.now()
        assert schedule.next_fire_at == int(start) + 1
        await trio.sleep(int(start) + 5.5 - start)  # ticks at +1 ... +5
        jobs = await fired_jobs(engine, schedule.id)
        assert len(jobs) == 5
        assert all(job.graph == "echo" and job.input == {"n": 1} for job in jobs)
        done = await engine.wait(jobs[-1].id, 5)
        assert done.status is JobStatus.COMPLETED and done.result == {"echo": {"n": 1}}
        kept = await engine.schedules.get(schedule.id)
        assert kept.fired == 5 and kept.last_job_id == jobs[-1].id


async def test_a_paused_schedule_fires_nothing_and_resumes_from_now(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with engine_for() as engine:
        schedule = await engine.schedules.add({"target": "echo", "cron": "*/2 * * * * *"})
        await engine.schedules.update(schedule.id, {"paused": True})
        await trio.sleep(10)
        assert await fired_jobs(engine, schedule.id) == []
        resumed = await engine.schedules.update(schedule.id, {"paused": False})
        assert resumed.next_fire_at > engine.clock.now()  # not the ticks it was paused for
        await trio.sleep(resumed.next_fire_at - engine.clock.now() + 0.5)
        assert len(await fired_jobs(engine, schedule.id)) == 1
        await engine.schedules.delete(schedule.id)
        await trio.sleep(5)
        assert len(await fired_jobs(engine, schedule.id)) == 1
        with pytest.raises(ScheduleNotFound):
            await engine.schedules.get(schedule.id)


@pytest.mark.parametrize(("missed", "fired_at_start"), [("skip", 0), ("run_once", 1)])
async def test_ticks_missed_while_down_fire_by_the_schedules_policy(
    autojump_clock: trio.abc.Clock, missed: str, fired_at_start: int
) -> None:
    store = MemoryStore()
    now = time.time()
    # Hourly, at the minute half an hour from now: no tick is near the start (a tick within
    # a second of it would be on time, and fire too); the one planned 2 hours ago, and the
    # one after, were missed.
    minute = (int(now // 60) + 30) % 60
    two_hours_ago = float((int(now) // 3600 - 2) * 3600 + minute * 60)
    await store.add_schedule(
        Schedule(
            id="s-1",
            target="echo",
            cron=f"0 {minute} * * * *",
            timezone="UTC",
            input=None,
            missed=missed,
            paused=False,
            next_fire_at=two_hours_ago,
            created_at=two_hours_ago,
            updated_at=two_hours_ago,
        )
    )
    async with engine_for(store) as engine:
        await trio.sleep(0.5)
        assert len(await fired_jobs(engine, "s-1")) == fired_at_start
        kept = await engine.schedules.get("s-1")
        assert kept.next_fire_at > engine.clock.now()  # then the next tick, as usual
        await trio.sleep(kept.next_fire_at - engine.clock.now() + 0.5)
        assert len(await fired_jobs(engine, "s-1")) == fired_at_start + 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"cron": "* * * * *"}, "target"),
        ({"target": "echo"}, "cron"),
        ({"target": "nope", "cron": "* * * * *"}, "target"),
        ({"target": "echo", "cron": "61 * * * *"}, "cron"),
        ({"target": "echo", "cron": "* * *"}, "cron"),
        ({"target": "echo", "cron": "* * * * *", "timezone": "Mars/Olympus"}, "timezone"),
        ({"target": "echo", "cron": "* * * * *", "missed": "sometimes"}, "missed"),
        ({"target": "echo", "cron": "* * * * *", "paused": "yes"}, "paused"),
        ({"target": "echo", "cron": "* * * * *", "color": "red"}, "color"),
    ],
)
async def test_an_invalid_schedule_is_refused_naming_the_field(
    body: dict[str, Any], field: str
) -> None:
    async with engine_for() as engine:
        with pytest.raises(ScheduleInvalid) as refused:
            await engine.schedules.add(body)
        assert refused.value.field == field
        assert await engine.schedules.list_schedules() == []


class HeldExecutor(InlineExecutor):
    """Runs each job once the test sets ``release``."""

    def __init__(self, graph: str) -> None:
        super().__init__(graph)
        self.release = trio.Event()

    async def run(self, *args: Any, **kwargs: Any) -> Any:
        await self.release.wait()
        return await super().run(*args, **kwargs)


async def test_a_tick_whose_queue_is_full_is_skipped(autojump_clock: trio.abc.Clock) -> None:
    config = Config(graph="examples/echo.py", workers=1, store="memory://", queue_size=1)
    executor = HeldExecutor(config.graph)
    async with open_engine(config, MemoryStore(), executor=executor) as engine:
        await engine.submit({"running": 1})
        await trio.sleep(0.1)
        await engine.submit({"queued": 1})  # the queue is full now
        schedule = await engine.schedules.add({"target": "echo", "cron": EVERY_SECOND})
        await trio.sleep(3.5)
        assert await fired_jobs(engine, schedule.id) == []
        kept = await engine.schedules.get(schedule.id)
        assert kept.next_fire_at > engine.clock.now() and kept.fired == 0  # moved on
        executor.release.set()
        await trio.sleep(1.5)
        assert len(await fired_jobs(engine, schedule.id)) >= 1


EVERY_SECOND = "* * * * * *"
