"""Everything a job starts dies with it: when it ends, times out, is cancelled or crashes,
when the server drains on SIGTERM, and when the server itself is killed."""

from __future__ import annotations

import os
import signal
import sys
from functools import partial
from pathlib import Path

import httpx
import trio

from procs import alive, all_gone, ignored_signals, read_pids
from support import PIPE, finished, read_serving_url, running_server

SPAWNER = "tests/graphs/spawner.py"


async def test_a_finished_job_leaves_no_process_running(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    async with running_server(SPAWNER) as client:
        answer = await client.post(
            "/jobs",
            params={"wait": 30},
            json={"input": {"pid_file": str(pid_file), "new_session": True}},
        )
        assert answer.json()["status"] == "completed", answer.text
        pids = answer.json()["result"]["pids"]
        assert len(pids) == 2  # one of them in a session of its own
        await all_gone(pids)


async def test_the_graphs_programs_can_be_stopped_with_sigterm(tmp_path: Path) -> None:
    """The worker shields itself from group-wide signals, but what the graph runs does not
    inherit that: it starts with SIGTERM and SIGINT at their defaults."""
    pid_file = tmp_path / "pids"
    async with running_server(SPAWNER) as client:
        job = (
            await client.post("/jobs", json={"input": {"pid_file": str(pid_file), "sleep": 60}})
        ).json()
        (child,) = await read_pids(pid_file)
        mask = ignored_signals(child)
        assert not mask & (1 << (signal.SIGTERM - 1)), hex(mask)
        assert not mask & (1 << (signal.SIGINT - 1)), hex(mask)
        os.kill(child, signal.SIGTERM)
        await all_gone([child])
        await client.post(f"/jobs/{job['jobId']}/cancel")


async def test_a_timed_out_job_takes_its_processes_with_it(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    async with running_server(SPAWNER) as client:
        job = (
            await client.post(
                "/jobs",
                json={"input": {"pid_file": str(pid_file), "sleep": 60}, "timeoutSeconds": 1},
            )
        ).json()
        pids = await read_pids(pid_file)
        assert (await finished(client, job["jobId"]))["status"] == "timed_out"
        await all_gone(pids)


async def test_a_cancelled_job_takes_its_processes_with_it(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    async with running_server(SPAWNER) as client:
        job = (
            await client.post("/jobs", json={"input": {"pid_file": str(pid_file), "sleep": 60}})
        ).json()
        pids = await read_pids(pid_file)
        assert all(alive(pid) for pid in pids)
        cancelled = await client.post(f"/jobs/{job['jobId']}/cancel")
        assert cancelled.json()["status"] == "cancelled", cancelled.text
        await all_gone(pids)


async def test_a_crashed_job_takes_its_processes_with_it(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    async with running_server(SPAWNER) as client:
        answer = await client.post(
            "/jobs", params={"wait": 30}, json={"input": {"pid_file": str(pid_file), "crash": 3}}
        )
        assert answer.json()["status"] == "crashed", answer.text
        await all_gone(await read_pids(pid_file))


async def serve_and_start_a_job(
    nursery: trio.Nursery, workdir: Path, pid_file: Path
) -> tuple[trio.Process, list[int]]:
    command = [sys.executable, "-m", "graphnursery", "serve", SPAWNER, "--port", "0"]
    command += ["--workers", "1", "--store", "memory://", "--shutdown-grace", "0.5"]
    proc: trio.Process = await nursery.start(
        partial(trio.run_process, command, stdout=PIPE, cwd=workdir, check=False)
    )
    url = await read_serving_url(proc, proc.stdout)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        await client.post("/jobs", json={"input": {"pid_file": str(pid_file), "sleep": 60}})
    return proc, await read_pids(pid_file)


async def test_sigterm_on_the_server_takes_the_running_jobs_processes_too(
    workdir: Path, tmp_path: Path
) -> None:
    async with trio.open_nursery() as nursery:
        proc, pids = await serve_and_start_a_job(nursery, workdir, tmp_path / "pids")
        proc.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            assert await proc.wait() == 0
    await all_gone(pids)


async def test_a_killed_server_takes_its_jobs_processes_too(workdir: Path, tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        proc, pids = await serve_and_start_a_job(nursery, workdir, tmp_path / "pids")
        proc.kill()  # SIGKILL: no drain, no clean-up in the server
        await proc.wait()
    await all_gone(pids)
