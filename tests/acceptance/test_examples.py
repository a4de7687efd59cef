"""Every graph in examples/ served by a real server, as the README shows them."""

from __future__ import annotations

import hashlib

import pytest

from support import finished, running_server


@pytest.mark.parametrize(
    ("example", "status"),
    [
        ("examples/echo.py", "completed"),
        ("examples/sleep.py", "completed"),
        ("examples/cpu.py", "completed"),
        ("examples/crash.py", "crashed"),
        ("examples/flaky.py", "failed"),
        ("examples/progress.py", "completed"),
    ],
)
async def test_example_graph_ends_as_documented(example: str, status: str) -> None:
    async with running_server(example) as client:
        submitted = await client.post("/jobs", json={"input": {"q": 1}})
        job = await finished(client, submitted.json()["jobId"])
        assert job["status"] == status


def sha256_chain(rounds: int) -> str:
    """examples/cpu.py's fixed work, done here on its own: ``rounds`` chained SHA-256s."""
    digest = b"graphnursery"
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


async def test_cpu_example_does_the_same_work_every_call() -> None:
    rounds = 150_000
    expected = {"digest": sha256_chain(rounds), "rounds": rounds}
    async with running_server("examples/cpu.py") as client:
        for _ in range(2):
            job = (await client.post("/jobs", params={"wait": 30}, json={"input": {}})).json()
            assert job["result"] == expected, job


async def test_flaky_example_succeeds_when_asked() -> None:
    async with running_server("examples/flaky.py") as client:
        job = (await client.post("/jobs", params={"wait": 30}, json={"input": {"ok": True}})).json()
        assert job["result"] == {"ok": True}


async def test_langgraph_example_serves_a_seed_job() -> None:
    pytest.importorskip("langgraph", reason="needs the 'langgraph' extra")
    async with running_server("examples/langgraph_chat.py") as client:
        response = await client.post(
            "/execute", json={"messages": [{"role": "user", "content": "hello"}]}
        )
        assert response.status_code == 200
        job = await finished(client, response.json()["jobId"])
        assert job["status"] == "completed", job
        messages = job["result"]["messages"]
        assert messages[-1] == {"role": "assistant", "content": "You said: hello"}
        # the seed's convenience: result.content is the last message's content
        assert job["result"]["content"] == "You said: hello"
        assert job["result"]["turns"] == 2
