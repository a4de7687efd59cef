"""Cancelling jobs and listing them, through the HTTP API and the Python client."""

from __future__ import annotations

import os

import pytest

from graphnursery import AsyncClient, Conflict
from support import Gate, finished, running_server, until_running

pytestmark = pytest.mark.usefixtures("both_engine_loops")

TOOLBOX = "tests/graphs/toolbox.py"


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_cancel_a_queued_job_and_it_never_runs(gate: Gate) -> None:
    async with running_server(TOOLBOX) as client:
        running = (await client.post("/jobs", json={"input": gate.hold()})).json()
        queued = (await client.post("/jobs", json={"input": {"n": 1}})).json()
        waiting = await client.get(f"/jobs/{queued['jobId']}")
        assert waiting.json()["status"] == "queued"  # the only worker is held at the gate

        response = await client.post(f"/jobs/{queued['jobId']}/cancel")
        assert response.status_code == 200
        assert response.json()["status"] == "cancelled"
        assert response.json()["error"]["type"] == "Cancelled"

        gate.open()
        assert (await finished(client, running["jobId"]))["status"] == "completed"
        job = await finished(client, queued["jobId"])
        assert job["status"] == "cancelled"
        assert job["attempts"] == 0  # it never started
        again = await client.post(f"/jobs/{queued['jobId']}/cancel")
        assert again.status_code == 409
        assert again.json()["code"] == "conflict"


async def test_cancel_a_running_job_kills_its_worker_and_the_next_job_runs() -> None:
    async with running_server(TOOLBOX) as client:
        first = (await client.post("/jobs", params={"wait": 30}, json={"input": {}})).json()
        worker_pid = first["result"]["pid"]
        slow = (await client.post("/jobs", json={"input": {"sleep": 60}})).json()
        await until_running(client, slow["jobId"])
        response = await client.post(f"/jobs/{slow['jobId']}/cancel")
        assert response.json()["status"] == "cancelled"
        assert not process_exists(worker_pid)
        after = (await client.post("/jobs", params={"wait": 30}, json={"input": {}})).json()
        assert after["status"] == "completed"
        assert after["result"]["pid"] != worker_pid
        stats = (await client.get("/stats")).json()
        assert stats["byStatus"]["cancelled"] == 1
        assert stats["workerRestarts"] == 1  # the killed worker was replaced


async def test_cancel_unknown_job_is_404() -> None:
    async with running_server(TOOLBOX) as client:
        response = await client.post("/jobs/00000000-0000-0000-0000-000000000000/cancel")
        assert response.status_code == 404


async def test_client_cancel_and_list() -> None:
    async with running_server(TOOLBOX) as http, AsyncClient(str(http.base_url)) as client:
        await client.submit({"sleep": 30})
        queued = await client.submit({"n": 2})
        cancelled = await client.cancel(queued.id)
        assert cancelled.status == "cancelled"
        with pytest.raises(Conflict):
            await client.cancel(queued.id)
        page = await client.list(status="cancelled")
        assert [job.id for job in page.jobs] == [queued.id]
        assert [job.input for job in page.jobs] == [{"n": 2}]  # what to look at in a dead letter
        assert page.next_cursor is None
        assert (await client.get(queued.id)).input is None
        assert (await client.get(queued.id, include_input=True)).input == {"n": 2}


async def test_list_pages_through_jobs_of_one_status() -> None:
    async with running_server(TOOLBOX) as client:
        ids = []
        for n in range(5):
            job = (
                await client.post("/jobs", params={"wait": 30}, json={"input": {"raise": str(n)}})
            ).json()
            ids.append(job["jobId"])
        ok = (await client.post("/jobs", params={"wait": 30}, json={"input": {}})).json()
        seen: list[str] = []
        cursor = None
        for _ in ids:  # a page at least per job: a cursor that never ends fails here
            params = {"status": "failed", "limit": 2, **({"cursor": cursor} if cursor else {})}
            page = (await client.get("/jobs", params=params)).json()
            assert len(page["jobs"]) <= 2
            seen += [job["jobId"] for job in page["jobs"]]
            cursor = page["nextCursor"]
            if cursor is None:
                break
        else:
            raise AssertionError(f"more pages than jobs: {seen}")
        assert seen == ids
        assert ok["jobId"] not in seen
        everything = (await client.get("/jobs")).json()
        assert len(everything["jobs"]) == 6


async def test_list_rejects_bad_parameters_naming_them() -> None:
    async with running_server(TOOLBOX) as client:
        for params, field in [
            ({"status": "lost"}, "status"),
            ({"limit": "0"}, "limit"),
            ({"limit": "many"}, "limit"),
            ({"cursor": "not-a-cursor"}, "cursor"),
        ]:
            response = await client.get("/jobs", params=params)
            assert response.status_code == 400, params
            assert response.json()["detail"][0]["field"] == field
