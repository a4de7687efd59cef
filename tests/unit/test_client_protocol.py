"""The client's protocol handling through httpx.MockTransport (no sockets, no server).

What a real server cannot show on demand: long Retry-After waits (on Trio's autojump clock),
HTTP-date Retry-After, 401/409/5xx answers, headers sent, cancel() and list().
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
import trio
import trio.testing

import graphnursery
from graphnursery import ConfigError
from graphnursery import client as client_module
from graphnursery.client import (
    ApiError,
    AsyncClient,
    Client,
    Conflict,
    Job,
    JobCancelled,
    JobPage,
    Retries,
    ServerError,
    TooManyRequests,
    TransportError,
    Unauthorized,
    Unavailable,
    UnexpectedResponse,
)
from graphnursery.jobs import JobStatus

JOB_ID = "5f0c7e36-93a1-4a8e-9d7e-2f1f3c1b9a10"
QUEUED = {"jobId": JOB_ID, "status": "queued", "position": 0, "attempts": 0,
          "createdAt": "2026-11-23T00:00:00.000Z"}  # fmt: skip
CANCELLED = {
    **QUEUED,
    "status": "cancelled",
    "error": {"type": "Cancelled", "message": "cancelled by a client"},
    "completedAt": "2026-11-23T00:00:01.500Z",
}

Handler = Callable[[httpx.Request], httpx.Response]


def answers(*responses: httpx.Response) -> tuple[list[httpx.Request], Handler]:
    """A handler giving ``responses`` in turn, and the list of requests it saw."""
    seen: list[httpx.Request] = []
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return queue.pop(0)

    return seen, handler


def error(status: int, code: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json={"error": f"{code} happened", "code": code}, headers=headers)


def async_client(handler: Handler, **settings: Any) -> AsyncClient:
    return AsyncClient("http://gn.test", transport=httpx.MockTransport(handler), **settings)


async def test_429_and_503_wait_retry_after_then_succeed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen, handler = answers(
        error(429, "queue_full", {"Retry-After": "7"}),
        error(503, "unavailable", {"Retry-After": "3"}),
        httpx.Response(202, json=QUEUED),
    )
    async with async_client(handler) as client:
        start = trio.current_time()
        job = await client.submit({"x": 1})
        assert trio.current_time() - start == pytest.approx(10)
    assert job.id == JOB_ID and job.status is JobStatus.QUEUED
    assert len(seen) == 3
    assert all(json.loads(r.content) == {"input": {"x": 1}} for r in seen)


async def test_retry_after_as_an_http_date(autojump_clock: trio.testing.MockClock) -> None:
    # autojump moves Trio's clock, not the wall clock: the date is a fixed 30 s ahead of now
    # (to the second, as HTTP dates are), and the client reads the wall clock once it has it
    before = datetime.now(UTC)
    when = format_datetime(before + timedelta(seconds=30), usegmt=True)
    _, handler = answers(
        error(429, "queue_full", {"Retry-After": when}), httpx.Response(202, json=QUEUED)
    )
    async with async_client(handler) as client:
        start = trio.current_time()
        await client.submit({})
        waited = trio.current_time() - start
    # the date less the wall clock when the client read it: however slow the machine, no
    # more than 30 s, and no less than 29 s less the wall-clock time the test took
    took = (datetime.now(UTC) - before).total_seconds()
    assert 29 - took <= waited <= 30


async def test_without_retry_after_the_backoff_doubles(
    autojump_clock: trio.testing.MockClock,
) -> None:
    _, handler = answers(
        error(503, "unavailable"), error(503, "unavailable"), httpx.Response(200, json=QUEUED)
    )
    async with async_client(handler, retries=Retries(backoff=2)) as client:
        start = trio.current_time()
        await client.get(JOB_ID)
        assert trio.current_time() - start == pytest.approx(2 + 4)


async def test_gives_up_after_max_attempts(autojump_clock: trio.testing.MockClock) -> None:
    seen, handler = answers(*[error(429, "queue_full", {"Retry-After": "1"})] * 3)
    async with async_client(handler, retries=Retries(max_attempts=3)) as client:
        with pytest.raises(TooManyRequests) as caught:
            await client.submit({})
    assert len(seen) == 3
    assert caught.value.retry_after == 1 and caught.value.code == "queue_full"


async def test_a_retry_after_beyond_max_delay_is_not_waited_for() -> None:
    seen, handler = answers(error(503, "unavailable", {"Retry-After": "120"}))
    async with async_client(handler, retries=Retries(max_delay=60)) as client:
        with pytest.raises(Unavailable) as caught:
            await client.get(JOB_ID)
    assert len(seen) == 1 and caught.value.retry_after == 120


@pytest.mark.parametrize(
    ("status", "error_class"),
    [(400, graphnursery.InvalidRequest), (401, Unauthorized), (404, graphnursery.NotFound),
     (409, Conflict), (413, graphnursery.PayloadTooLarge), (500, ServerError),
     (502, ServerError), (418, ApiError)],
)  # fmt: skip
async def test_other_errors_are_typed_and_not_retried(
    status: int, error_class: type[ApiError]
) -> None:
    seen, handler = answers(error(status, "some_code"))
    async with async_client(handler) as client:
        with pytest.raises(error_class) as caught:
            await client.get(JOB_ID)
    assert type(caught.value) is error_class
    assert len(seen) == 1
    assert (caught.value.status, caught.value.code) == (status, "some_code")
    assert caught.value.message == "some_code happened"


async def test_an_answer_that_is_not_graphnursery_json() -> None:
    html = httpx.Response(
        502, text="<html>Bad Gateway</html>", headers={"content-type": "text/html"}
    )
    _, handler = answers(
        html, httpx.Response(200, text="<html>hello</html>"), httpx.Response(200, json={"a": 1})
    )
    async with async_client(handler) as client:
        with pytest.raises(ServerError) as caught:
            await client.get(JOB_ID)
        assert caught.value.code == "http_error" and "Bad Gateway" in caught.value.message
        with pytest.raises(UnexpectedResponse):
            await client.get(JOB_ID)
        with pytest.raises(UnexpectedResponse):
            await client.get(JOB_ID)


async def test_connection_errors_are_transport_errors() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with async_client(refuse) as client:
        with pytest.raises(TransportError) as caught:
            await client.get(JOB_ID)
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


async def test_api_key_and_idempotency_key_headers() -> None:
    seen, handler = answers(httpx.Response(202, json=QUEUED), error(401, "unauthorized"))
    async with async_client(handler, api_key="s3cret") as client:
        await client.submit(messages=[{"role": "user", "content": "hi"}], idempotency_key="k-1")
        with pytest.raises(Unauthorized):
            await client.get(JOB_ID)
    assert all(r.headers["Authorization"] == "Bearer s3cret" for r in seen)
    assert seen[0].headers["Idempotency-Key"] == "k-1"
    assert "Idempotency-Key" not in seen[1].headers
    assert json.loads(seen[0].content) == {"messages": [{"role": "user", "content": "hi"}]}


async def test_cancel_answers_the_job_or_conflict() -> None:
    seen, handler = answers(httpx.Response(200, json=CANCELLED), error(409, "job_finished"))
    async with async_client(handler) as client:
        job = await client.cancel(JOB_ID)
        assert job.status is JobStatus.CANCELLED and job.error is not None
        with pytest.raises(Conflict):
            await client.cancel(JOB_ID)
    assert [(r.method, r.url.path) for r in seen] == [("POST", f"/jobs/{JOB_ID}/cancel")] * 2
    with pytest.raises(JobCancelled):
        job.outcome()


async def test_list_sends_the_filters_and_pages_with_the_cursor() -> None:
    seen, handler = answers(
        httpx.Response(200, json={"jobs": [CANCELLED], "nextCursor": "c2"}),
        httpx.Response(200, json={"jobs": [], "nextCursor": None}),
    )
    async with async_client(handler) as client:
        page = await client.list(JobStatus.CANCELLED, limit=1)
        assert page == JobPage((Job.from_json(CANCELLED),), "c2")
        last = await client.list("cancelled", limit=1, cursor=page.next_cursor)
        assert last == JobPage((), None)
    assert [dict(r.url.params) for r in seen] == [
        {"status": "cancelled", "limit": "1"},
        {"status": "cancelled", "limit": "1", "cursor": "c2"},
    ]


def test_blocking_client_retries_and_maps_errors_the_same_way() -> None:
    seen, handler = answers(
        error(429, "queue_full", {"Retry-After": "0"}),
        httpx.Response(202, json=QUEUED),
        httpx.Response(200, json=CANCELLED),
        httpx.Response(200, json={"jobs": [QUEUED], "nextCursor": None}),
        error(409, "job_finished"),
    )
    with Client("http://gn.test", transport=httpx.MockTransport(handler)) as client:
        assert client.submit({}).id == JOB_ID
        job = client.wait(JOB_ID)  # wait() answers the job whatever its end
        assert job.status is JobStatus.CANCELLED
        with pytest.raises(JobCancelled):
            job.outcome()
        assert client.list(limit=5).jobs[0].id == JOB_ID
        with pytest.raises(Conflict):
            client.cancel(JOB_ID)
    assert len(seen) == 5


def test_submit_takes_input_or_messages_not_both() -> None:
    with Client("http://gn.test", transport=httpx.MockTransport(lambda r: error(500, "x"))) as c:
        with pytest.raises(TypeError):
            c.submit({"a": 1}, messages=[{"role": "user", "content": "x"}])
        with pytest.raises(TypeError):
            c.submit({"a": 1}, data={"b": 2})


def test_job_parses_every_field() -> None:
    job = Job.from_json(
        {**QUEUED, "status": "completed", "result": {"ok": True}, "attempts": 1,
         "startedAt": "2026-11-23T00:00:00.250Z", "completedAt": "2026-11-23T00:00:01.000Z",
         "durationMs": 750}
    )  # fmt: skip
    assert job.done and job.outcome() == {"ok": True}
    assert job.started_at == datetime(2026, 11, 23, 0, 0, 0, 250000, tzinfo=UTC)
    assert job.duration_ms == 750 and job.attempts == 1
    with pytest.raises(UnexpectedResponse):
        Job.from_json({"jobId": JOB_ID, "status": "sleeping"})


@pytest.mark.parametrize(
    "settings",
    [{"max_attempts": 0}, {"max_attempts": 1.5}, {"max_delay": -1}, {"backoff": float("nan")}],
)
def test_retries_reject_invalid_values_naming_the_setting(settings: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=next(iter(settings))):
        Retries(**settings)


def test_the_documented_error_tree_is_the_class_tree() -> None:
    """errors.py's docstring draws the one error tree: every class in it, under its parent,
    and the client's branch exported by graphnursery.client."""
    from graphnursery import errors

    lines = (errors.__doc__ or "").splitlines()
    first = next(i for i, line in enumerate(lines) if line.strip() == "GraphNurseryError")
    root_column = lines[first].index("GraphNurseryError")
    parents: list[str] = []
    documented = set()
    for line in lines[first:]:
        match = re.search(r"\w+", line)
        if match is None:
            break
        depth = (match.start() - root_column) // 4
        parents[depth:] = [match.group()]
        cls = getattr(errors, match.group())
        documented.add(cls)
        if depth:
            assert cls.__bases__[0] is getattr(errors, parents[depth - 1]), match.group()
            if issubclass(cls, errors.ClientError):
                assert match.group() in client_module.__all__
    defined = {
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, errors.GraphNurseryError)
    }
    assert documented == defined
    assert len([cls for cls in documented if issubclass(cls, errors.ClientError)]) == 18
