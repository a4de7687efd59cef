"""The clients' event streams through httpx.MockTransport (no sockets, no server).

What a real server cannot show on demand: a stream that ends cleanly before the job's end,
an event replayed or skipped, a 503 before the stream opens, an answer that is not a
stream; and the exact requests the clients send. Waits run on Trio's autojump clock.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from graphnursery.client import (
    AsyncClient,
    Client,
    Retries,
    StreamEvent,
    TransportError,
    Unavailable,
    UnexpectedResponse,
)

JOB_ID = "5f0c7e36-93a1-4a8e-9d7e-2f1f3c1b9a10"
EVENTS = f"/jobs/{JOB_ID}/events"
JOB = {"jobId": JOB_ID, "status": "running", "attempts": 1}
DONE = {**JOB, "status": "completed", "result": {"ok": True}, "droppedEvents": 0}

Handler = Callable[[httpx.Request], httpx.Response]


def sse(event_id: int, event: str, data: Any) -> bytes:
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (
        event_id,
        event.encode(),
        json.dumps(data).encode(),
    )


def log(event_id: int, event: str, data: Any, attempt: int = 1) -> bytes:
    return sse(event_id, event, {"attempt": attempt, "data": data})


def stream(*events: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    headers = {"Content-Type": "text/event-stream", **(headers or {})}
    return httpx.Response(200, content=b": heartbeat\n\n" + b"".join(events), headers=headers)


def answers(*responses: httpx.Response | Exception) -> tuple[list[httpx.Request], Handler]:
    """A handler giving ``responses`` in turn (raising the exceptions), and its requests."""
    seen: list[httpx.Request] = []
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return seen, handler


def async_client(handler: Handler, **settings: Any) -> AsyncClient:
    return AsyncClient("http://gn.test", transport=httpx.MockTransport(handler), **settings)


async def events_of(client_events: Any) -> list[StreamEvent]:
    return [event async for event in client_events]


FIRST_HALF = (sse(0, "job", JOB), log(1, "running", {"status": "running"}), log(2, "custom", 0))
SECOND_HALF = (log(3, "custom", 1), sse(4, "completed", DONE))


async def test_a_stream_that_ends_before_the_job_is_resumed_after_its_last_id(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen, handler = answers(stream(*FIRST_HALF), stream(*SECOND_HALF))
    async with async_client(handler, retries=Retries(backoff=2)) as client:
        start = trio.current_time()
        events = await events_of(client.stream(JOB_ID))
        assert trio.current_time() - start == pytest.approx(2)  # one backoff
    assert [(e.id, e.event, e.data, e.attempt) for e in events[1:-1]] == [
        (1, "running", {"status": "running"}, 1),
        (2, "custom", 0, 1),
        (3, "custom", 1, 1),
    ]
    first, last = events[0], events[-1]
    assert first.job is not None and first.job.id == JOB_ID and first.data == JOB
    assert last.terminal and last.job is not None and last.job.outcome() == {"ok": True}
    assert [(r.method, r.url.path) for r in seen] == [("GET", EVENTS)] * 2
    assert all(r.headers["Accept"] == "text/event-stream" for r in seen)
    assert "Last-Event-ID" not in seen[0].headers
    assert seen[1].headers["Last-Event-ID"] == "2"


def test_the_blocking_client_resumes_too() -> None:
    seen, handler = answers(stream(*FIRST_HALF), stream(*SECOND_HALF))
    transport = httpx.MockTransport(handler)
    with Client("http://gn.test", transport=transport, retries=Retries(backoff=0)) as client:
        assert [e.id for e in client.stream(JOB_ID, after=None)] == [0, 1, 2, 3, 4]
    assert seen[1].headers["Last-Event-ID"] == "2"


async def test_an_event_seen_already_is_not_yielded_again_and_a_gap_is_an_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    _, handler = answers(stream(*FIRST_HALF), stream(log(2, "custom", 0), *SECOND_HALF))
    async with async_client(handler) as client:
        assert [e.id for e in await events_of(client.stream(JOB_ID))] == [0, 1, 2, 3, 4]

    _, handler = answers(stream(sse(0, "job", JOB), log(2, "custom", 0)))
    async with async_client(handler) as client:
        with pytest.raises(UnexpectedResponse, match="event 2 came after 0"):
            await events_of(client.stream(JOB_ID))


async def test_connections_that_bring_no_event_are_retried_max_attempts_in_all(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # each connection that brings an event starts the count again ...
    one_by_one = [stream(event) for event in (*FIRST_HALF, *SECOND_HALF)]
    seen, handler = answers(*one_by_one)
    async with async_client(handler, retries=Retries(max_attempts=2)) as client:
        assert len(await events_of(client.stream(JOB_ID))) == 5
    assert [r.headers.get("Last-Event-ID") for r in seen] == [None, "0", "1", "2", "3"]

    # ... max_attempts - 1 reconnects without one end the stream
    broken = httpx.RemoteProtocolError("peer closed connection")
    seen, handler = answers(stream(*FIRST_HALF), broken, stream())
    async with async_client(handler, retries=Retries(max_attempts=3)) as client:
        events: list[StreamEvent] = []
        with pytest.raises(TransportError, match="gave up after 2 reconnects without an event"):
            async for event in client.stream(JOB_ID):
                events.append(event)
    assert [e.id for e in events] == [0, 1, 2] and len(seen) == 3


async def test_a_stream_that_never_opened_is_not_retried_but_a_503_is(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen, handler = answers(httpx.ConnectError("refused"))
    async with async_client(handler) as client:
        with pytest.raises(TransportError, match="refused"):
            await events_of(client.stream_run({}))
    assert len(seen) == 1  # a submit the server may have taken is not sent again

    draining = {"error": "draining", "code": "draining"}
    unavailable = httpx.Response(503, json=draining)
    retry_later = httpx.Response(503, json=draining, headers={"Retry-After": "4"})
    seen, handler = answers(retry_later, unavailable, stream(*FIRST_HALF, *SECOND_HALF))
    async with async_client(handler, retries=Retries(backoff=1)) as client:
        start = trio.current_time()
        assert len(await events_of(client.stream(JOB_ID))) == 5
        assert trio.current_time() - start == pytest.approx(4 + 2)  # Retry-After, then backoff

    seen, handler = answers(unavailable)
    async with async_client(handler, retries=Retries(max_attempts=1)) as client:
        with pytest.raises(Unavailable):
            await events_of(client.stream(JOB_ID))


async def test_an_answer_that_is_not_a_stream_is_unexpected() -> None:
    _, handler = answers(httpx.Response(200, json=JOB))
    async with async_client(handler) as client:
        with pytest.raises(UnexpectedResponse, match="expected an event stream"):
            await events_of(client.stream(JOB_ID))
    _, handler = answers(stream(sse(0, "custom", "no attempt")))
    async with async_client(handler) as client:
        with pytest.raises(UnexpectedResponse, match="not a job event"):
            await events_of(client.stream(JOB_ID))


async def test_a_stream_resumed_after_the_job_ended_yields_nothing() -> None:
    # after the end's own id the server sends nothing, and the job says it has ended
    seen, handler = answers(stream(), httpx.Response(200, json=DONE))
    async with async_client(handler) as client:
        assert await events_of(client.stream(JOB_ID, after=4)) == []
    assert [(r.method, r.url.path) for r in seen] == [("GET", EVENTS), ("GET", f"/jobs/{JOB_ID}")]
    assert seen[0].headers["Last-Event-ID"] == "4"


async def test_stream_run_posts_the_submit_then_resumes_at_the_location(
    autojump_clock: trio.testing.MockClock,
) -> None:
    opened = stream(*FIRST_HALF, headers={"Location": EVENTS})
    seen, handler = answers(opened, stream(*SECOND_HALF))
    async with async_client(handler) as client:
        events = client.stream_run(
            {"q": 1},
            stream_mode=["updates", "custom"],
            timeout=30,
            max_attempts=2,
            idempotency_key="k-1",
        )
        assert [e.id for e in await events_of(events)] == [0, 1, 2, 3, 4]
    submit, resume = seen
    assert (submit.method, submit.url.path, submit.url.params["stream"]) == (
        "POST",
        "/jobs",
        "true",
    )
    assert json.loads(submit.content) == {
        "input": {"q": 1},
        "streamMode": ["updates", "custom"],
        "timeoutSeconds": 30,
        "maxAttempts": 2,
    }
    assert submit.headers["Idempotency-Key"] == "k-1"
    assert (resume.method, resume.url.path, resume.content) == ("GET", EVENTS, b"")
    assert resume.headers["Last-Event-ID"] == "2" and "Idempotency-Key" not in resume.headers


async def test_submit_and_run_carry_stream_mode() -> None:
    queued = {**JOB, "status": "queued"}
    seen, handler = answers(httpx.Response(202, json=queued), httpx.Response(200, json=DONE))
    async with async_client(handler) as client:
        await client.submit({}, stream_mode="custom")
        assert await client.run({}, stream_mode=[], max_attempts=3) == {"ok": True}
    assert json.loads(seen[0].content) == {"input": {}, "streamMode": "custom"}
    assert json.loads(seen[1].content) == {"input": {}, "streamMode": [], "maxAttempts": 3}
