"""SIGTERM drains: no new jobs, running ones finish, queued ones end cancelled, exit 0."""

from __future__ import annotations

import json
import os
import signal
import sys
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from procs import alive
from support import PIPE, Gate, answers, cli_server, finished, read_serving_url, until_running

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


async def read_all(stream: trio.abc.ReceiveStream) -> bytes:
    data = b""
    while chunk := await stream.receive_some():
        data += chunk
    return data


def logged_job_ends(stderr: bytes) -> dict[str, str]:
    """Each ``job ended`` line of a JSON log: the job's id and its status."""
    lines = [json.loads(line) for line in stderr.decode().splitlines() if line.startswith("{")]
    return {line["job_id"]: line["status"] for line in lines if line["event"] == "job ended"}


async def test_sigint_drains_and_kills_the_jobs_still_running_when_the_grace_runs_out(
    workdir: Path,
) -> None:
    extra = ("--workers", "1", "--shutdown-grace", "0.5", "--log-format", "json")
    run = partial(trio.run_process, command(*extra), stdout=PIPE, stderr=PIPE, cwd=workdir)
    results: dict[str, Any] = {}
    async with trio.open_nursery() as nursery:
        proc = await nursery.start(run)
        url = await read_serving_url(proc, proc.stdout)
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            first = await client.post("/jobs", params={"wait": 30}, json={"input": {}})
            worker = first.json()["result"]["pid"]
            running = (await client.post("/jobs", json={"input": {"sleep": 60}})).json()["jobId"]
            queued = (await client.post("/jobs", json={"input": {"n": 1}})).json()["jobId"]
            await until_running(client, running)
            async with trio.open_nursery() as polls:
                for job_id in (running, queued):
                    polls.start_soon(long_poll, client, job_id, results)
                proc.send_signal(signal.SIGINT)  # Ctrl-C
                stderr = await read_all(proc.stderr)
        with trio.fail_after(30):  # the 60 s job did not get to finish
            assert await proc.wait() == 0
    assert results[running]["status"] == "cancelled"
    assert "shut down" in results[running]["error"]["message"]
    assert results[queued]["status"] == "cancelled"
    assert not alive(worker)  # the worker process running it was killed
    # every unfinished job is logged as it ends
    assert logged_job_ends(stderr) == {
        first.json()["jobId"]: "completed",
        running: "cancelled",
        queued: "cancelled",
    }


async def test_a_durable_store_keeps_unfinished_jobs_for_the_next_start(
    workdir: Path, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    serve_sqlite = command("--workers", "1", "--shutdown-grace", "0.5", "--store", "sqlite:///j.db")
    async with cli_server(serve_sqlite) as (proc, client):
        held = (await client.post("/jobs", json={"input": {"gate": str(gate)}})).json()["jobId"]
        await until_running(client, held)
        queued = [
            (await client.post("/jobs", json={"input": {"n": n}})).json()["jobId"] for n in range(3)
        ]
        proc.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            assert await proc.wait() == 0
    gate.touch()
    async with cli_server(serve_sqlite) as (proc, client):
        jobs = [await finished(client, job_id) for job_id in [held, *queued]]
    assert [job["status"] for job in jobs] == ["completed"] * 4
    assert [job["result"]["input"] for job in jobs[1:]] == [{"n": n} for n in range(3)]
    # the queued ones resume in the order they were submitted, each on its first attempt
    starts = [job["startedAt"] for job in jobs[1:]]
    assert starts == sorted(starts)
    assert [job["attempts"] for job in jobs[1:]] == [1, 1, 1]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_a_signal_to_the_whole_process_group_does_not_kill_running_jobs(
    workdir: Path, tmp_path: Path, signum: signal.Signals
) -> None:
    """As a terminal's Ctrl-C (SIGINT) or systemd's stop (SIGTERM) reach every process of
    the server's group: the server drains, and the job it was running runs to its end."""
    gate = tmp_path / "gate"
    run = partial(
        trio.run_process,
        command("--workers", "1", "--shutdown-grace", "60"),
        stdout=PIPE,
        cwd=workdir,
        start_new_session=True,  # a process group of its own, led by the server
    )
    async with trio.open_nursery() as nursery:
        proc = await nursery.start(run)
        url = await read_serving_url(proc, proc.stdout)
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            held = (await client.post("/jobs", json={"input": {"gate": str(gate)}})).json()
            await until_running(client, held["jobId"])
            os.killpg(proc.pid, signum)
            draining = await answers(client, "/ready", 503)
            assert draining.json()["status"] == "draining"
            assert (await client.get(f"/jobs/{held['jobId']}")).json()["status"] == "running"
            gate.touch()
            job = (await client.get(f"/jobs/{held['jobId']}", params={"wait": 30})).json()
        with trio.fail_after(30):
            assert await proc.wait() == 0
    assert (job["status"], job["attempts"]) == ("completed", 1), job
