"""SIGTERM drains: no new jobs, running ones finish, queued ones end cancelled, exit 0."""

from __future__ import annotations

import signal
import sys
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import trio

from support import PIPE, Gate, answers, read_serving_url, until_running

TOOLBOX = "tests/graphs/toolbox.py"


def command(*extra: str) -> list[str]:
    return [
        sys.executable, "-m", "graphnursery", "serve", TOOLBOX, "--port", "0",
        "--workers", "2", "--store", "memory://", *extra,
    ]  # fmt: skip


async def long_poll(client: httpx.AsyncClient, job_id: str, results: dict[str, Any]) -> None:
    response = await client.get(f"/jobs/{job_id}", params={"wait": 60})
    results[job_id] = response.json()


async def test_sigterm_lets_running_jobs_finish_and_cancels_queued_ones(
    workdir: Path, gate: Gate
) -> None:
    async with trio.open_nursery() as nursery:
        proc = await nursery.start(
            partial(trio.run_process, command("--shutdown-grace", "30"), stdout=PIPE, cwd=workdir)
        )
        url = await read_serving_url(proc, proc.stdout)
        results: dict[str, Any] = {}
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            submit = partial(client.post, "/jobs")
            # both workers held at the gate, so the rest stay queued until the signal
            running = [(await submit(json={"input": gate.hold()})).json()["jobId"] for _ in "ab"]
            queued = [(await submit(json={"input": {"n": n}})).json()["jobId"] for n in range(5)]
            for job_id in running:
                await until_running(client, job_id)
            async with trio.open_nursery() as polls:
                for job_id in running + queued:
                    polls.start_soon(long_poll, client, job_id, results)
                proc.send_signal(signal.SIGTERM)
                health = await answers(client, "/health", 503)  # once the signal is handled
                assert health.json()["status"] == "draining"
                # while draining, the server answers, but takes no new job
                refused = await submit(json={"input": {}})
                assert refused.status_code == 503, refused.text
                assert refused.json()["code"] == "draining"
                assert "retry-after" in refused.headers
                gate.open()  # the running jobs end only now, inside the drain
        assert await proc.wait() == 0
    assert [results[job_id]["status"] for job_id in running] == ["completed", "completed"]
    assert [results[job_id]["status"] for job_id in queued] == ["cancelled"] * 5
    assert "shut down" in results[queued[0]]["error"]["message"]


async def test_a_second_signal_stops_at_once(workdir: Path) -> None:
    async with trio.open_nursery() as nursery:
        proc = await nursery.start(
            partial(
                trio.run_process,
                command("--shutdown-grace", "120"),
                stdout=PIPE,
                cwd=workdir,
                check=False,
            )
        )
        url = await read_serving_url(proc, proc.stdout)
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            job_id = (await client.post("/jobs", json={"input": {"sleep": 120}})).json()["jobId"]
            await until_running(client, job_id)
            proc.send_signal(signal.SIGTERM)
            await answers(client, "/health", 503)
            start = trio.current_time()
            proc.send_signal(signal.SIGTERM)
            status = await proc.wait()
            # the 120 s job and the 120 s grace were cut short
            assert trio.current_time() - start < 30
        assert status == 1
