"""Retries on a real server: crashes are retried, then dead-lettered, listed and re-run."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import pytest

from procs import all_gone
from support import Gate, finished, running_server, until_running

pytestmark = pytest.mark.usefixtures("both_engine_loops")

TOOLBOX = "tests/graphs/toolbox.py"
STAMPED = "tests/graphs/stamped.py"


async def test_a_crashing_job_is_a_dead_letter_after_max_attempts_and_retry_reruns_it() -> None:
    async with running_server(TOOLBOX, max_attempts=2, retry_backoff=0.05) as client:
        submitted = (await client.post("/jobs", json={"input": {"crash": 9}})).json()
        job = await finished(client, submitted["jobId"])
        assert job["status"] == "crashed"
        assert job["attempts"] == 2
        assert job["maxAttempts"] == 2
        assert [e["type"] for e in job["errors"]] == ["WorkerCrashed", "WorkerCrashed"]
        dead = (await client.get("/jobs", params={"status": "crashed"})).json()
        assert [j["jobId"] for j in dead["jobs"]] == [job["jobId"]]

        retried = await client.post(f"/jobs/{job['jobId']}/retry")
        assert retried.status_code == 202
        again = await finished(client, retried.json()["jobId"])
        assert again["jobId"] != job["jobId"]
        assert again["status"] == "crashed" and again["attempts"] == 2
        running = (await client.post("/jobs", json={"input": {"sleep": 30}})).json()
        conflict = await client.post(f"/jobs/{running['jobId']}/retry")
        assert conflict.status_code == 409


async def test_a_worker_killed_from_outside_mid_job_is_retried(gate: Gate) -> None:
    async with running_server(TOOLBOX, max_attempts=2, retry_backoff=0.05) as client:
        pid = (await client.post("/jobs", params={"wait": 30}, json={"input": {}})).json()
        pid = pid["result"]["pid"]
        # the next job runs in the same worker; kill it from outside while the job is held
        submitted = (await client.post("/jobs", json={"input": gate.hold()})).json()
        await until_running(client, submitted["jobId"])
        os.kill(pid, signal.SIGKILL)
        await all_gone([pid])
        gate.open()  # only the second attempt, in a fresh worker, gets past the gate
        job = await finished(client, submitted["jobId"])
        assert job["status"] == "completed"
        assert job["attempts"] == 2
        assert job["errors"][0]["type"] == "WorkerCrashed"
        assert "SIGKILL" in job["errors"][0]["message"]
        assert job["result"]["pid"] != pid


async def test_per_job_max_attempts_and_no_retry_of_a_failure_by_default() -> None:
    async with running_server(TOOLBOX) as client:
        job = (await client.post("/jobs", json={"input": {"crash": 3}, "maxAttempts": 3})).json()
        crashed = await finished(client, job["jobId"])
        assert crashed["attempts"] == 3
        failed = (
            await client.post("/jobs", json={"input": {"raise": "x"}, "maxAttempts": 3})
        ).json()
        assert (await finished(client, failed["jobId"]))["attempts"] == 1  # failed is not retry_on
        bad = await client.post("/jobs", json={"input": 1, "maxAttempts": 0})
        assert bad.status_code == 400
        assert bad.json()["detail"][0]["field"] == "maxAttempts"


async def test_failed_is_retried_when_retry_on_names_it_with_a_doubling_backoff(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """retry_backoff=B: the wait before retry n is drawn from 0..B*2**(n-1) (full jitter)."""
    backoff, attempts = 0.01, 9
    caplog.set_level(logging.INFO, logger="graphnursery.engine")
    stamps = tmp_path / "stamps"
    settings = {"retry_on": "failed", "max_attempts": attempts, "retry_backoff": backoff}
    async with running_server(STAMPED, **settings) as client:
        submitted = (await client.post("/jobs", json={"input": {"stamps": str(stamps)}})).json()
        job = await finished(client, submitted["jobId"], wait=60)
    assert (job["status"], job["attempts"]) == ("failed", attempts)
    assert [e["message"] for e in job["errors"]] == ["still failing"] * attempts
    retried = [
        r.msg
        for r in caplog.records
        if isinstance(r.msg, dict) and r.msg["event"] == "job will be retried"
    ]
    assert [line["attempt"] for line in retried] == list(range(1, attempts))
    delays = [line["delay_seconds"] for line in retried]
    for n, delay in enumerate(delays, start=1):
        assert 0 <= delay <= backoff * 2 ** (n - 1) + 0.001, (n, delays)  # logged rounded to 1 ms
    # without the doubling no wait could pass B; with it, all eight stay below B once in 2**28
    assert max(delays) > backoff, delays
    # each attempt started after the wait the one before it was given
    starts = [float(line) for line in stamps.read_text().split()]
    assert len(starts) == attempts
    for delay, before, after in zip(delays, starts, starts[1:], strict=False):
        assert after - before >= delay - 0.002, (delays, starts)
