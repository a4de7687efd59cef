"""How a job ends when its graph is slow, crashes or raises; the pool keeps serving after each."""

from __future__ import annotations

import json
from datetime import datetime

from support import finished, running_server

TOOLBOX = "tests/graphs/toolbox.py"


def seconds_between(start: str, end: str) -> float:
    parse = datetime.fromisoformat
    return (parse(end) - parse(start)).total_seconds()


async def submit(client, job_input, **extra):  # type: ignore[no-untyped-def]
    response = await client.post("/jobs", json={"input": job_input, **extra})
    assert response.status_code == 202, response.text
    return response.json()["jobId"]


async def test_job_past_its_timeout_is_timed_out_and_the_next_runs_on_a_fresh_worker() -> None:
    async with running_server(TOOLBOX) as client:
        before = await finished(client, await submit(client, {}))
        slow = await finished(client, await submit(client, {"sleep": 60}, timeoutSeconds=0.5))
        assert slow["status"] == "timed_out"
        assert slow["error"]["type"] == "TimeoutError"
        # stopped at its 0.5 s, not at the 60 s it asked for (10x slack for a busy machine)
        assert 0.5 <= seconds_between(slow["startedAt"], slow["completedAt"]) < 5
        after = await finished(client, await submit(client, {}))
        assert after["status"] == "completed"
        assert after["result"]["pid"] != before["result"]["pid"]


async def test_server_job_timeout_applies_when_the_job_sets_none() -> None:
    async with running_server(TOOLBOX, job_timeout=0.5) as client:
        job = await finished(client, await submit(client, {"sleep": 60}))
        assert job["status"] == "timed_out"


async def test_crashing_graph_is_crashed_and_the_next_job_runs() -> None:
    async with running_server(TOOLBOX) as client:
        crashed = await finished(client, await submit(client, {"crash": 3}))
        assert crashed["status"] == "crashed"
        assert crashed["error"]["type"] == "WorkerCrashed"
        assert "code 3" in crashed["error"]["message"]
        after = await finished(client, await submit(client, {"n": 1}))
        assert after["status"] == "completed"
        assert after["result"]["input"] == {"n": 1}
        stats = (await client.get("/stats")).json()
        assert stats["workerRestarts"] == 1
        assert stats["availableWorkers"] == 1


async def test_raising_graph_is_failed_with_its_type_and_message() -> None:
    async with running_server(TOOLBOX) as client:
        job = await finished(client, await submit(client, {"raise": "bad input: 42"}))
        assert job["status"] == "failed"
        assert job["error"] == {"type": "ValueError", "message": "bad input: 42"}
        assert "result" not in job
        assert "Traceback" not in str(job)  # no server traceback leaked
        health = (await client.get("/health")).json()
        assert health["stats"]["failed"] == 1


async def test_unserializable_result_fails_the_job() -> None:
    async with running_server("tests/graphs/kinds.py:object_result") as client:
        job = await finished(client, await submit(client, {}))
        assert job["status"] == "failed"
        assert job["error"]["type"] == "ResultNotSerializable"


async def test_a_result_over_max_result_bytes_fails_its_job_and_the_server_carries_on() -> None:
    async with running_server("tests/graphs/big.py", max_result_bytes=1000) as client:
        over = await client.post("/jobs", params={"wait": 30}, json={"input": {"bytes": 2000}})
        job = over.json()
        assert (job["status"], job["error"]["type"]) == ("failed", "ResultTooLarge"), job
        size = len(json.dumps({"text": "x" * 2000}, separators=(",", ":")))
        assert f"{size:,} bytes" in job["error"]["message"]
        assert "max_result_bytes (1,000)" in job["error"]["message"]
        fits = await client.post("/jobs", params={"wait": 30}, json={"input": {"bytes": 900}})
        assert fits.json()["result"] == {"text": "x" * 900}
