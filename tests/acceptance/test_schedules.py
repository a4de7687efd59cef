"""Cron schedules over HTTP: fired on time by a real server, kept across restarts, and with
two PostgreSQL replicas (one killed midway) each tick fired once."""

from __future__ import annotations

import itertools
import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import trio

from support import cli_server, running_server, until

ECHO = str(Path(__file__).resolve().parents[2] / "examples" / "echo.py")
EVERY_SECOND = "* * * * * *"


async def fired(client: httpx.AsyncClient, schedule_id: str) -> int:
    count: int = (await client.get(f"/schedules/{schedule_id}")).json()["fired"]
    return count


async def schedule_jobs(client: httpx.AsyncClient, schedule_id: str) -> list[dict[str, Any]]:
    jobs = (await client.get("/jobs?limit=1000")).json()["jobs"]
    return [job for job in jobs if job.get("scheduleId") == schedule_id]


async def test_a_per_second_schedule_fires_five_jobs_in_five_seconds() -> None:
    async with running_server(ECHO) as client:
        body = {"target": "echo", "cron": EVERY_SECOND, "input": {"tick": True}}
        answer = await client.post("/schedules", json=body)
        assert answer.status_code == 201, answer.text
        schedule = answer.json()
        assert schedule["paused"] is False and schedule["missed"] == "skip"
        assert len(schedule["nextFireTimes"]) == 5

        async def started() -> bool:
            return await fired(client, schedule["id"]) >= 1

        await until(started, "the first tick")
        before = await fired(client, schedule["id"])
        await trio.sleep(5)
        paused = await client.patch(f"/schedules/{schedule['id']}", json={"paused": True})
        assert paused.status_code == 200 and paused.json()["nextFireTimes"] == []
        during = await fired(client, schedule["id"]) - before
        assert 4 <= during <= 6, during

        jobs = await schedule_jobs(client, schedule["id"])
        assert len(jobs) == await fired(client, schedule["id"])
        assert all(job["graph"] == "echo" for job in jobs)
        done = (await client.get(f"/jobs/{jobs[0]['jobId']}?wait=10")).json()
        assert done["result"] == {"echo": {"tick": True}}

        settled = await fired(client, schedule["id"])
        await trio.sleep(1.5)
        assert await fired(client, schedule["id"]) == settled  # paused: no more


async def test_schedules_are_listed_changed_and_deleted_and_bad_ones_refused() -> None:
    async with running_server(ECHO) as client:
        refused = await client.post("/schedules", json={"target": "echo", "cron": "0 25 * * *"})
        assert refused.status_code == 400
        assert refused.json()["detail"][0]["field"] == "cron"
        refused = await client.post(
            "/schedules", json={"target": "echo", "cron": "* * * * *", "timezone": "Nowhere/X"}
        )
        assert refused.json()["detail"][0]["field"] == "timezone"
        refused = await client.post("/schedules", json={"target": "nope", "cron": "* * * * *"})
        assert refused.status_code == 400 and refused.json()["detail"][0]["field"] == "target"
        assert (await client.get("/schedules")).json() == {"schedules": []}

        body = {"target": "echo", "cron": "0 9 * * 1-5", "timezone": "America/New_York"}
        made = (await client.post("/schedules", json=body)).json()
        assert made["nextFireAt"].endswith(("13:00:00.000Z", "14:00:00.000Z"))  # 9:00 there
        changed = await client.patch(f"/schedules/{made['id']}", json={"cron": "30 9 * * *"})
        assert changed.json()["cron"] == "30 9 * * *"
        assert changed.json()["nextFireAt"].endswith(("13:30:00.000Z", "14:30:00.000Z"))
        assert [s["id"] for s in (await client.get("/schedules")).json()["schedules"]] == [
            made["id"]
        ]
        assert (await client.delete(f"/schedules/{made['id']}")).status_code == 200
        missing = await client.get(f"/schedules/{made['id']}")
        assert missing.status_code == 404 and missing.json()["code"] == "schedule_not_found"
        assert (await client.patch("/schedules/nope", json={"paused": True})).status_code == 404


async def test_a_schedule_survives_a_restart(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'jobs.db'}"
    async with running_server(ECHO, store=store) as client:
        body = {"target": "echo", "cron": "*/10 * * * *", "missed": "run_once"}
        made = (await client.post("/schedules", json=body)).json()
    async with running_server(ECHO, store=store) as client:
        kept = (await client.get(f"/schedules/{made['id']}")).json()
        assert (kept["cron"], kept["missed"], kept["target"]) == (
            "*/10 * * * *",
            "run_once",
            "echo",
        )


async def test_two_postgresql_replicas_fire_each_tick_once_even_when_one_dies(
    postgres_url: str,
) -> None:
    command = [sys.executable, "-m", "graphnursery", "serve", f"echo={ECHO}:graph"]
    command += ["--port", "0", "--workers", "1", "--store", postgres_url]
    async with cli_server(command) as (one, client_one), cli_server(command) as (_, client_two):
        body = {"target": "echo", "cron": EVERY_SECOND}
        schedule = (await client_one.post("/schedules", json=body)).json()

        async def ticking() -> bool:
            return await fired(client_two, schedule["id"]) >= 1

        await until(ticking, "the first tick")
        start = trio.current_time()
        await trio.sleep(3)
        one.send_signal(signal.SIGKILL)  # midway: the other replica carries on alone
        await trio.sleep(3)
        await client_two.patch(f"/schedules/{schedule['id']}", json={"paused": True})
        elapsed = trio.current_time() - start

        jobs = await schedule_jobs(client_two, schedule["id"])
        count = await fired(client_two, schedule["id"])
        assert len(jobs) == count
        created = sorted(datetime.fromisoformat(job["createdAt"]).timestamp() for job in jobs)
        gaps = [later - earlier for earlier, later in itertools.pairwise(created)]
        assert min(gaps) > 0.5, gaps  # no tick fired twice (two fires of one are ms apart)
        assert elapsed - 1 <= count <= elapsed + 2, (count, elapsed)
