"""Large results: stored and answered as the JSON text the worker encoded, exactly, on every
store and both HTTP paths, whole or in parts (``http/bodies.py``), however many read them.

What they cost in memory is measured by ``benchmarks/large_results.py``, not asserted here.
"""

from __future__ import annotations

import json

import httpx
import pytest
import trio

from graphnursery.http.bodies import LARGE_RESULT, PART
from support import finished, running_server

pytestmark = pytest.mark.usefixtures("both_http_paths")

GRAPH = "tests/graphs/big.py"
#: Past the size answered in parts, and not a whole number of parts.
SIZE = LARGE_RESULT + 2 * PART + 12_345


async def test_a_large_result_reads_back_exactly_by_every_reader(any_store: str) -> None:
    async with running_server(GRAPH, store=any_store) as client:
        done = await client.post("/jobs", params={"wait": 60}, json={"input": {"bytes": SIZE}})
        job = done.json()
        assert (job["status"], job["result"]) == ("completed", {"text": "x" * SIZE})
        assert int(done.headers["content-length"]) == len(done.content)

        answers: list[httpx.Response] = []

        async def read() -> None:
            answers.append(await client.get(f"/jobs/{job['jobId']}"))

        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(read)
        for answer in answers:
            assert answer.status_code == 200
            read_back = answer.json()
            assert read_back["result"] == {"text": "x" * SIZE}
            assert {k: v for k, v in read_back.items() if k != "result"} == {
                k: v for k, v in job.items() if k != "result"
            }

        listed = (await client.get("/jobs", params={"status": "completed"})).json()["jobs"]
        assert [(j["jobId"], j["result"]) for j in listed] == [(job["jobId"], {"text": "x" * SIZE})]


async def test_a_large_chat_result_still_carries_its_last_message_as_content() -> None:
    async with running_server(GRAPH) as client:
        body = {"input": {"bytes": SIZE, "chat": True}}
        job = (await client.post("/jobs", params={"wait": 60}, json=body)).json()
        assert job["result"]["content"] == "x" * SIZE
        assert job["result"]["messages"][-1] == {"role": "ai", "content": "x" * SIZE}


async def test_results_either_side_of_the_size_answered_in_parts_read_back_exactly() -> None:
    overhead = len(json.dumps({"text": ""}, separators=(",", ":")))
    async with running_server(GRAPH) as client:
        for size in (LARGE_RESULT - overhead - 1, LARGE_RESULT - overhead):
            response = await client.post("/jobs", json={"input": {"bytes": size}})
            job = await finished(client, response.json()["jobId"])
            assert job["result"] == {"text": "x" * size}
