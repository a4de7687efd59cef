"""Results and errors a job store cannot keep: the job fails, and the server keeps serving.

Every store, under a real server with real worker processes; and a SQLite file across
restarts of a real CLI server, where a job never runs more than ``max_attempts`` times.
"""

from __future__ import annotations

import sys
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

import support
from graphnursery import JobStatus
from stores import T0, opened, queued
from support import finished, running_server

GRAPH = "tests/graphs/unstorable.py"


async def submit(client: httpx.AsyncClient, job_input: Any) -> str:
    response = await client.post("/jobs", json={"input": job_input})
    assert response.status_code == 202, response.text
    job_id: str = response.json()["jobId"]
    return job_id


@pytest.mark.parametrize("answer", ["big int", "surrogate", "surrogate key"])
async def test_a_result_no_store_can_keep_fails_the_job_and_the_server_serves_on(
    any_store: str, answer: str
) -> None:
    async with running_server(GRAPH, store=any_store) as client:
        job = await finished(client, await submit(client, {"answer": answer}))
        assert job["status"] == "failed"
        assert job["error"]["type"] == "ResultNotSerializable"
        assert job["attempts"] == 1
        again = await client.get(f"/jobs/{job['jobId']}")
        assert again.status_code == 200 and again.json()["status"] == "failed"
        # the server still runs jobs
        kept = await finished(client, await submit(client, {"answer": "nul"}))
        assert (kept["status"], kept["result"]) == ("completed", "a\x00b")


async def test_an_error_message_holding_nul_is_kept_with_the_nul_escaped(any_store: str) -> None:
    async with running_server(GRAPH, store=any_store) as client:
        job = await finished(client, await submit(client, {"raise": "nul"}))
        assert job["status"] == "failed"
        assert job["error"] == {"type": "ValueError", "message": "bad\\x00byte"}
        kept = await finished(client, await submit(client, {"answer": "nul"}))
        assert kept["status"] == "completed"


async def test_a_sqlite_job_left_running_with_no_attempts_left_ends_crashed_on_start(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    spent, retryable = queued({"answer": "nul"}), queued({"answer": "nul"}).replace(max_attempts=2)
    async with opened(url) as store:  # what a server stopping mid-job (killed, say) leaves
        for job in (spent, retryable):
            await store.add(job)
            await store.start(job.id, T0)
    async with running_server(GRAPH, store=url) as client:
        crashed = await finished(client, spent.id)
        assert (crashed["status"], crashed["attempts"]) == ("crashed", 1)
        assert crashed["error"]["type"] == "Interrupted"
        assert "no attempts left" in crashed["error"]["message"]
        ran_again = await finished(client, retryable.id)
        assert (ran_again["status"], ran_again["attempts"]) == ("completed", 2)


def cli_server(store: str) -> AbstractAsyncContextManager[tuple[trio.Process, httpx.AsyncClient]]:
    command = [sys.executable, "-m", "graphnursery", "serve", GRAPH, "--port", "0"]
    return support.cli_server([*command, "--store", store])


async def test_a_cli_server_keeps_serving_past_an_unstorable_result_and_restarts_clean(
    tmp_path: Path,
) -> None:
    store = f"sqlite:///{tmp_path / 'jobs.db'}"
    async with cli_server(store) as (proc, client):
        job_id = await submit(client, {"answer": "big int"})
        job = await finished(client, job_id)
        assert (job["status"], job["error"]["type"]) == ("failed", "ResultNotSerializable")
        assert (await client.get("/health")).status_code == 200
    assert proc.returncode == 0
    async with cli_server(store) as (proc, client):
        job = await finished(client, job_id)
        assert (job["status"], job["attempts"]) == ("failed", 1)
    assert proc.returncode == 0
    async with opened(store) as kept:
        assert (await kept.counts())[JobStatus.RUNNING] == 0
