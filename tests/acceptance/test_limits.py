"""Idempotent submits, body limits without wedged connections, and Retry-After estimates."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import pytest
import trio

from support import finished, running_server, send_and_read_to_close, until_running

pytestmark = pytest.mark.usefixtures("both_http_paths")

TOOLBOX = "tests/graphs/toolbox.py"


async def test_the_same_idempotency_key_returns_the_same_job() -> None:
    async with running_server(TOOLBOX) as client:
        headers = {"Idempotency-Key": "order-42"}
        first = await client.post("/jobs", json={"input": {"n": 1}}, headers=headers)
        again = await client.post("/jobs", json={"input": {"n": 2}}, headers=headers)
        seed = await client.post(
            "/execute", json={"messages": [{"role": "user", "content": "x"}]}, headers=headers
        )
        assert first.status_code == 202 and seed.status_code == 200
        assert first.json()["jobId"] == again.json()["jobId"] == seed.json()["jobId"]
        other = await client.post(
            "/jobs", json={"input": {"n": 3}}, headers={"Idempotency-Key": "b"}
        )
        assert other.json()["jobId"] != first.json()["jobId"]
        job = await finished(client, first.json()["jobId"])
        assert job["result"]["input"] == {"n": 1}  # the first submit's input ran, once
        stats = (await client.get("/stats")).json()
        assert stats["total"] == 2
        too_long = await client.post(
            "/jobs", json={"input": 1}, headers={"Idempotency-Key": "k" * 300}
        )
        assert too_long.status_code == 400


async def test_an_oversized_body_is_413_and_the_server_keeps_serving() -> None:
    async with running_server(TOOLBOX, max_body_bytes=100_000) as client:
        big = await client.post("/jobs", json={"input": "x" * 200_000})
        assert big.status_code == 413
        assert big.json()["code"] == "body_too_large"
        assert big.headers.get("connection") == "close"
        # the next request (a new connection, as the last was closed) is answered
        ok = await client.post("/jobs", params={"wait": 30}, json={"input": {"n": 1}})
        assert ok.status_code == 200


POST_HEAD = b"POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


async def test_an_announced_oversized_body_is_refused_unread_and_the_connection_closed() -> None:
    async with running_server(TOOLBOX, max_body_bytes=1000) as client:
        # the server does not wait for the 10 MB it was promised
        head, body = await send_and_read_to_close(
            client, POST_HEAD + b"Content-Length: 10000000\r\n\r\n"
        )
        assert head.startswith(b"HTTP/1.1 413")
        assert b"connection: close" in head.lower()
        assert body["code"] == "body_too_large"
        ok = await client.post("/jobs", params={"wait": 30}, json={"input": {"n": 1}})
        assert ok.status_code == 200


async def test_a_body_that_stops_arriving_is_a_408_and_the_connection_closed() -> None:
    async with running_server(TOOLBOX, body_timeout=0.5) as client:
        head, body = await send_and_read_to_close(
            client, POST_HEAD + b'Content-Length: 100\r\n\r\n{"input": '
        )
        assert head.startswith(b"HTTP/1.1 408")
        assert body["code"] == "body_timeout"
        assert (await client.get("/stats")).json()["total"] == 0  # nothing was submitted


async def test_a_chunked_body_over_the_limit_is_413_too() -> None:
    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"input": "'
        for _ in range(50):
            yield b"x" * 1000
        yield b'"}'

    async with running_server(TOOLBOX, max_body_bytes=10_000) as client:
        response = await client.post(
            "/jobs", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 413
        assert response.json()["code"] == "body_too_large"
        assert (await client.get("/stats")).json()["total"] == 0


async def test_ten_thousand_messages_are_served() -> None:
    messages = [{"role": "user", "content": f"message {i}"} for i in range(10_000)]
    async with running_server("examples/echo.py") as client:
        response = await client.post("/execute", json={"messages": messages})
        assert response.status_code == 200
        job = await finished(client, response.json()["jobId"])
        assert job["status"] == "completed"
        assert len(job["result"]["echo"]["messages"]) == 10_000


async def test_retry_after_grows_with_the_queue() -> None:
    async with running_server(TOOLBOX, queue_size=2) as client:
        # a job of known length first, so the estimate has a recent duration to go by
        await client.post("/jobs", params={"wait": 30}, json={"input": {"sleep": 0.2}})
        runs = (await client.post("/jobs", json={"input": {"sleep": 30}})).json()["jobId"]
        await until_running(client, runs)  # off the queue, so both places are free
        for _ in range(2):  # fill the queue
            assert (await client.post("/jobs", json={"input": {"sleep": 30}})).status_code == 202
        rejected = await client.post("/jobs", json={"input": {}})
        assert rejected.status_code == 429
        small = int(rejected.headers["retry-after"])
    async with running_server(TOOLBOX, queue_size=40) as client:
        await client.post("/jobs", params={"wait": 30}, json={"input": {"sleep": 0.2}})
        runs = (await client.post("/jobs", json={"input": {"sleep": 30}})).json()["jobId"]
        await until_running(client, runs)
        for _ in range(40):
            assert (await client.post("/jobs", json={"input": {"sleep": 30}})).status_code == 202
        rejected = await client.post("/jobs", json={"input": {}})
        assert rejected.status_code == 429
        large = int(rejected.headers["retry-after"])
    assert 1 <= small < large


async def test_deep_and_wide_json_gets_an_answer_not_a_5xx() -> None:
    async with running_server("examples/echo.py") as client:
        deep = '{"input": ' + "[" * 100_000 + "]" * 100_000 + "}"
        response = await client.post(
            "/jobs", content=deep, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400
        assert response.json()["code"] == "malformed_json"
        nested = {"input": {"a": [[[[{"b": list(range(100))}]]]] * 50}}
        ok = await client.post("/jobs", params={"wait": 30}, json=nested)
        assert ok.status_code == 200 and ok.json()["result"] == {"echo": nested["input"]}
        wide = {"input": {f"k{i}": i for i in range(100_000)}}
        response = await client.post("/jobs", params={"wait": 30}, json=wide)
        assert response.status_code == 200
        assert len(response.json()["result"]["echo"]) == 100_000


async def test_an_idempotency_key_is_free_again_once_its_job_is_evicted() -> None:
    async with running_server(TOOLBOX, result_ttl=0.5) as client:
        headers = {"Idempotency-Key": "nightly-report"}
        first = await client.post("/jobs", json={"input": {"n": 1}}, headers=headers)
        first_id = first.json()["jobId"]
        await finished(client, first_id)
        with trio.fail_after(30):  # evicted result_ttl after it ended (swept every ttl/10)
            for _ in itertools.count():
                if (await client.get(f"/jobs/{first_id}")).status_code == 404:
                    break
                await trio.sleep(0.05)
        again = await client.post("/jobs", json={"input": {"n": 2}}, headers=headers)
        assert again.status_code == 202, again.text
        assert again.json()["jobId"] != first_id
        job = await finished(client, again.json()["jobId"])
        assert job["result"]["input"] == {"n": 2}  # a new job, with the repeat's input
