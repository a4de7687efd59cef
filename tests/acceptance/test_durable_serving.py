"""Durable stores under real servers: SIGKILL and restart (SQLite), replicas (PostgreSQL).

Every server is a real CLI process with real worker processes. Jobs run the toolbox graph
sleeping 50 ms, so a few hundred are in flight when a server is killed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx
import trio

from support import TERMINAL, Gate
from support import cli_server as server

JOBS = 300
#: Jobs submitted (and awaited) first: once they are done, the rest are running or queued.
FIRST = 40
SLOW_JOB = {"sleep": 0.05}


def serve_command(store: str, *flags: str) -> list[str]:
    command = [sys.executable, "-m", "graphnursery", "serve", "tests/graphs/toolbox.py"]
    return [*command, "--port", "0", "--store", store, "--queue-size", "1000", *flags]


async def submit_all(clients: list[httpx.AsyncClient], start: int, stop: int) -> list[str]:
    """Submit slow jobs ``start..stop-1``, round-robin over ``clients``; all must be accepted."""
    ids: list[str | None] = [None] * stop
    limit = trio.Semaphore(16)

    async def submit(i: int) -> None:
        async with limit:
            client = clients[i % len(clients)]
            response = await client.post("/jobs", json={"input": {**SLOW_JOB, "i": i}})
            assert response.status_code == 202, response.text
            ids[i] = response.json()["jobId"]

    async with trio.open_nursery() as nursery:
        for i in range(start, stop):
            nursery.start_soon(submit, i)
    return [job_id for job_id in ids[start:] if job_id is not None]


async def submit_then_wait_for_the_first(clients: list[httpx.AsyncClient]) -> list[str]:
    """Submit JOBS jobs; return their ids once the FIRST of them are done (the rest are not)."""
    first = await submit_all(clients, 0, FIRST)
    rest = await submit_all(clients, FIRST, JOBS)
    ids = first + rest
    assert len(ids) == JOBS
    done = await all_finished(clients[-1], first)
    assert {job["status"] for job in done} == {"completed"}
    return ids


async def long_poll(client: httpx.AsyncClient, job_id: str, wait: float = 60) -> dict[str, Any]:
    response = await client.get(f"/jobs/{job_id}", params={"wait": wait})
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job


async def all_finished(client: httpx.AsyncClient, ids: list[str]) -> list[dict[str, Any]]:
    jobs: dict[str, dict[str, Any]] = {}
    limit = trio.Semaphore(32)

    async def read(job_id: str) -> None:
        async with limit:
            job = await long_poll(client, job_id)
            assert job["status"] in TERMINAL, job
            jobs[job_id] = job

    async with trio.open_nursery() as nursery:
        for job_id in ids:
            nursery.start_soon(read, job_id)
    return [jobs[job_id] for job_id in ids]


# -- SQLite ------------------------------------------------------------------------------


async def test_sqlite_a_killed_server_loses_no_accepted_job(tmp_path: Path) -> None:
    # Two attempts: the jobs the kill interrupts have one left to run again (with one, a
    # job left running by a crash ends crashed, so that it never runs past max_attempts).
    store = f"sqlite:///{tmp_path / 'jobs.db'}"
    command = serve_command(store, "--workers", "2", "--max-attempts", "2")
    async with server(command) as (proc, client):
        ids = await submit_then_wait_for_the_first([client])
        proc.kill()
        await proc.wait()

    async with server(command) as (_, client):
        jobs = await all_finished(client, ids)
        assert [job["status"] for job in jobs] == ["completed"] * JOBS
        assert [job["result"]["input"]["i"] for job in jobs] == list(range(JOBS))
        # the jobs the kill interrupted ran again (at-least-once)
        assert any(job["attempts"] == 2 for job in jobs)
        stats = (await client.get("/stats")).json()
        assert stats["byStatus"]["running"] == stats["byStatus"]["queued"] == 0


async def test_sqlite_a_second_server_on_the_same_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    command = serve_command(f"sqlite:///{path}", "--workers", "1")
    async with server(command) as (_, client):
        second = await trio.run_process(
            command, capture_stdout=True, capture_stderr=True, check=False
        )
        assert second.returncode == 1
        stderr = second.stderr.decode()
        message = next(line for line in stderr.splitlines() if line.startswith("graphnursery: "))
        assert str(path) in message
        assert "in use by another graphnursery server" in message
        assert "Traceback" not in stderr.split(message)[1]  # said plainly, last
        assert b"serving" not in second.stdout
        assert (await client.get("/health")).status_code == 200  # the first one is unharmed


# -- PostgreSQL ----------------------------------------------------------------------------

LEASE_SECONDS = 2.0


async def test_postgres_a_killed_replicas_jobs_finish_on_the_survivor(postgres_url: str) -> None:
    # Two attempts, as for SQLite: with one, a job whose replica died ends crashed.
    command = serve_command(
        postgres_url, "--workers", "2", "--max-attempts", "2", "--lease-seconds", str(LEASE_SECONDS)
    )
    async with server(command) as (a, client_a), server(command) as (_, client_b):
        ids = await submit_then_wait_for_the_first([client_a, client_b])
        a.kill()
        await a.wait()
        # What a held is re-run once its leases expire; everything else goes on at b.
        remaining_work = JOBS * SLOW_JOB["sleep"] / 2
        with trio.fail_after(LEASE_SECONDS + remaining_work + 10):
            jobs = await all_finished(client_b, ids)
        assert [job["status"] for job in jobs] == ["completed"] * JOBS
        workers = {job["result"]["pid"] for job in jobs}
        assert len(workers) >= 3  # both replicas ran jobs
        assert any(job["attempts"] == 2 for job in jobs)  # a's running jobs, re-run on b


async def open_soon(gate: Gate) -> None:
    """Open the gate once the long-poll beside it has (most likely) reached its server. Were
    it later, the long-poll would answer at once: the test would still pass, never flake."""
    await trio.sleep(0.2)
    gate.open()


async def test_postgres_a_job_submitted_to_one_replica_is_read_and_long_polled_on_another(
    postgres_url: str, gate: Gate
) -> None:
    command = serve_command(postgres_url, "--workers", "1")
    async with server(command) as (_, client_a), server(command) as (_, client_b):
        response = await client_a.post("/jobs", json={"input": gate.hold()})
        assert response.status_code == 202
        job_id = response.json()["jobId"]
        seen = (await client_b.get(f"/jobs/{job_id}")).json()
        assert seen["jobId"] == job_id
        assert seen["status"] in {"queued", "running"}  # held at the gate until it opens
        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(open_soon, gate)
            job = await long_poll(client_b, job_id, wait=30)
        assert job["status"] == "completed"
        assert trio.current_time() - start < 10  # woken by the notice, not by the 30 s timeout
