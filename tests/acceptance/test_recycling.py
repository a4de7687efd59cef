"""Worker processes are recycled after N jobs or above a memory ceiling, between jobs."""

from __future__ import annotations

import shutil
from pathlib import Path

from support import running_server


async def run(client, job_input: object = None) -> dict:  # type: ignore[no-untyped-def,type-arg]
    response = await client.post("/jobs", params={"wait": 30}, json={"input": job_input or {}})
    job = response.json()
    assert job["status"] == "completed", job
    return job["result"]  # type: ignore[no-any-return]


async def test_worker_is_replaced_after_max_jobs_per_worker() -> None:
    async with running_server("tests/graphs/toolbox.py", max_jobs_per_worker=3) as client:
        pids = [(await run(client))["pid"] for _ in range(7)]
        restarts = (await client.get("/stats")).json()["workerRestarts"]
    assert pids[0] == pids[1] == pids[2]
    assert pids[3] == pids[4] == pids[5] != pids[2]
    assert pids[6] != pids[5]
    assert restarts == 2  # the recycles are restarts too: after the 3rd and the 6th job


async def test_leaking_worker_is_recycled_at_the_memory_ceiling() -> None:
    async with running_server("tests/graphs/leaky.py", max_worker_memory_mb=150) as client:
        results = [await run(client) for _ in range(12)]
    # every job completed; none held more than the ceiling allows before its worker went
    assert max(r["held_mb"] for r in results) <= 150
    assert len({r["pid"] for r in results}) >= 2
    first_pid = results[0]["pid"]
    kept = [r["held_mb"] for r in results if r["pid"] == first_pid]
    assert kept == sorted(kept) and kept[0] == 20  # it leaked until it was retired


async def test_a_graph_that_breaks_after_startup_fails_jobs_with_graph_load_error(
    tmp_path: Path,
) -> None:
    graph = tmp_path / "changing.py"
    shutil.copy("examples/echo.py", graph)
    async with running_server(f"{graph}:graph", max_jobs_per_worker=1) as client:
        assert await run(client, {"a": 1}) == {"echo": {"a": 1}}
        graph.write_text("def graph(input):\n    return (\n")  # a syntax error
        for _ in range(2):  # reported every time, not retried forever
            response = await client.post("/jobs", params={"wait": 30}, json={"input": {}})
            job = response.json()
            assert job["status"] == "failed"
            assert job["error"]["type"] == "GraphLoadError"
            assert "SyntaxError" in job["error"]["message"]
        health = await client.get("/health")
        assert health.status_code == 200


async def test_a_job_past_max_job_memory_mb_is_killed_mid_job_and_the_server_carries_on() -> None:
    async with running_server("tests/graphs/hog.py", max_job_memory_mb=200) as client:
        answer = await client.post("/jobs", params={"wait": 60}, json={"input": {"grow_mb": 2000}})
        job = answer.json()
        assert job["status"] == "crashed", job
        assert job["error"]["type"] == "MemoryLimitExceeded"
        assert "max_job_memory_mb (200 MiB)" in job["error"]["message"]
        assert await run(client, {"grow_mb": 50}) == {"ok": True, "held_mb": 50}
        assert (await client.get("/stats")).json()["workerRestarts"] == 1
