"""graphnursery.Client and AsyncClient against a real server (hypercorn on port 0, workers).

The async client is exercised under Trio (this test run) and under asyncio (in a thread);
the blocking client in a thread. The server runs in this test's Trio run throughout.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from functools import partial
from typing import Any

import httpx
import pytest
import trio

import graphnursery
from graphnursery import (
    AsyncClient,
    Client,
    ClientError,
    GraphNurseryError,
    InvalidRequest,
    JobCrashed,
    JobFailed,
    JobTimedOut,
    JobUnsuccessful,
    NotFound,
    Retries,
    TooManyRequests,
    Unauthorized,
    WaitTimeout,
)
from graphnursery.client import NO_RETRIES
from graphnursery.jobs import JobStatus
from graphnursery.server import serve
from support import Gate, deadline, readme_block, until

ECHO = "examples/echo.py"
FLAKY = "examples/flaky.py"
CRASH = "examples/crash.py"
SLEEP = "examples/sleep.py"
TOOLBOX = "tests/graphs/toolbox.py"


@asynccontextmanager
async def server(graph: str, **settings: Any) -> AsyncIterator[str]:
    """Serve ``graph`` in this test's Trio run; yields its base URL."""
    config = graphnursery.Config(
        graph=graph, **{"port": 0, "workers": 1, "store": "memory://", **settings}
    )
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(partial(serve, config, handle_signals=False))
        yield urls[0]
        nursery.cancel_scope.cancel()


Exchange = tuple[str, str, int]


class Recording(httpx.AsyncHTTPTransport):
    """httpx's transport, noting each request's method, path and answer status (under Trio)."""

    def __init__(self) -> None:
        super().__init__()
        self.exchanges: list[Exchange] = []
        self._noted = trio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        self.exchanges.append((request.method, request.url.path, response.status_code))
        self._noted.set()
        self._noted = trio.Event()
        return response

    async def until(self, holds: Callable[[list[Exchange]], bool], waiting_for: str) -> None:
        """Wait until the exchanges so far satisfy ``holds`` (30 s at most)."""
        with deadline(30, waiting_for):
            while not holds(self.exchanges):
                await self._noted.wait()


async def test_submit_get_wait_run_round_trip() -> None:
    transport = Recording()
    async with server(ECHO) as url, AsyncClient(url, transport=transport) as client:
        job = await client.submit({"question": "hi"})
        uuid.UUID(job.id)
        assert job.status in (JobStatus.QUEUED, JobStatus.RUNNING)
        assert isinstance(job.created_at, datetime) and job.created_at.tzinfo is not None

        assert (await client.get(job.id)).id == job.id

        done = await client.wait(job.id, timeout=30)
        assert done.status is JobStatus.COMPLETED and done.done
        assert done.result == {"echo": {"question": "hi"}}
        assert done.error is None
        assert done.attempts == 1
        assert done.duration_ms is not None and done.duration_ms >= 0
        assert done.started_at is not None and done.completed_at is not None
        assert done.created_at == job.created_at

        transport.exchanges.clear()
        assert await client.run([1, "two", None]) == {"echo": [1, "two", None]}
        # run() long-polls on the submit itself: a short job is one request, answered 200
        assert transport.exchanges == [("POST", "/jobs", 200)]

        seed = [{"role": "user", "content": "hello"}]
        assert await client.run(messages=seed, data={"k": 1}) == {
            "echo": {"messages": seed, "data": {"k": 1}, "metadata": {}}
        }


async def test_wait_long_polls_until_the_job_is_terminal(gate: Gate) -> None:
    transport = Recording()
    async with server(TOOLBOX) as url, AsyncClient(url, poll_wait=0.02, transport=transport) as c:
        job = await c.submit(gate.hold())

        def polls(exchanges: list[Exchange]) -> list[Exchange]:
            return [x for x in exchanges if x[:2] == ("GET", f"/jobs/{job.id}")]

        async def open_after_two_polls() -> None:
            await transport.until(lambda seen: len(polls(seen)) >= 2, "two long-polls")
            gate.open()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(open_after_two_polls)
            done = await c.wait(job.id)
        assert done.status is JobStatus.COMPLETED and done.result["input"] == gate.hold()
        # the job outlasted two 20 ms long-polls; the client asked again each time
        assert len(polls(transport.exchanges)) >= 2
        assert all(status == 200 for *_, status in polls(transport.exchanges))


async def test_wait_raises_wait_timeout_with_the_job_as_last_seen(gate: Gate) -> None:
    async with server(TOOLBOX) as url, AsyncClient(url) as client:
        job = await client.submit(gate.hold())
        with pytest.raises(WaitTimeout) as caught:
            await client.wait(job.id, timeout=0.01)
        assert isinstance(caught.value, TimeoutError)
        assert caught.value.job.id == job.id
        assert not caught.value.job.done

        with pytest.raises(WaitTimeout):
            await client.run(gate.hold(), wait_timeout=0.01)
        gate.open()
        # the job was not touched: it still completes
        assert (await client.wait(job.id)).status is JobStatus.COMPLETED


async def test_run_raises_job_failed_with_the_graph_error() -> None:
    async with server(FLAKY) as url, AsyncClient(url) as client:
        with pytest.raises(JobFailed) as caught:
            await client.run({})
        error = caught.value
        assert error.type == "UpstreamError"
        assert error.message == "the upstream model answered 503"
        assert error.job.status is JobStatus.FAILED
        assert "UpstreamError: the upstream model answered 503" in str(error)
        # the README's tree: a JobFailed is also each of the errors above it
        for base in (JobUnsuccessful, ClientError, GraphNurseryError):
            assert isinstance(error, base), base

        assert await client.run({"ok": True}) == {"ok": True}


async def test_run_raises_job_crashed_when_the_worker_dies() -> None:
    async with server(CRASH) as url, AsyncClient(url) as client:
        with pytest.raises(JobCrashed) as caught:
            await client.run({})
        assert caught.value.job.status is JobStatus.CRASHED


async def test_run_raises_job_timed_out_past_the_job_timeout() -> None:
    async with server(SLEEP) as url, AsyncClient(url) as client:
        with pytest.raises(JobTimedOut) as caught:
            await client.run({}, timeout=0.01)
        assert caught.value.job.status is JobStatus.TIMED_OUT


async def test_api_errors_are_typed() -> None:
    async with server(ECHO) as url, AsyncClient(url) as client:
        missing = str(uuid.uuid4())
        with pytest.raises(NotFound) as not_found:
            await client.get(missing)
        assert not_found.value.status == 404
        assert not_found.value.code == "job_not_found"
        assert missing in not_found.value.message
        with pytest.raises(NotFound):
            await client.wait(missing)

        with pytest.raises(InvalidRequest) as invalid:
            await client.submit(messages=[{"role": "robot", "content": "x"}])
        assert invalid.value.status == 400
        assert invalid.value.code == "invalid_body"
        assert invalid.value.detail is not None
        assert "messages.0.role" in [d["field"] for d in invalid.value.detail]

        with pytest.raises(InvalidRequest) as too_long:
            await client.submit({}, timeout=10**9)
        assert [d["field"] for d in too_long.value.detail or []] == ["timeoutSeconds"]


async def test_queue_full_is_retried_after_retry_after_then_accepted(gate: Gate) -> None:
    # one worker, room for one waiting job: two jobs held at the gate fill the server
    async with server(TOOLBOX, queue_size=1) as url:
        async with AsyncClient(url, retries=NO_RETRIES) as plain:
            first = await plain.submit(gate.hold())

            async def first_runs() -> bool:  # off the queue, so the next one has room
                return (await plain.get(first.id)).status is JobStatus.RUNNING

            await until(first_runs, "the first job to run")
            await plain.submit(gate.hold())
            with pytest.raises(TooManyRequests) as full:
                await plain.submit({})
            assert full.value.status == 429 and full.value.code == "queue_full"
            assert full.value.retry_after is not None and full.value.retry_after >= 1

        # the server wants >= 1 s; a client that will not wait that long gives up at once
        impatient = Retries(max_attempts=5, max_delay=0.5)
        async with AsyncClient(url, retries=impatient) as client:
            with pytest.raises(TooManyRequests):
                await client.submit({})

        transport = Recording()

        async def open_once_refused() -> None:
            await transport.until(lambda seen: bool(seen), "the first answer")
            gate.open()  # the held jobs end, and the queue has room before the retry

        async with (
            AsyncClient(url, retries=Retries(max_attempts=3), transport=transport) as c,
            trio.open_nursery() as nursery,
        ):
            nursery.start_soon(open_once_refused)
            start = trio.current_time()
            job = await c.submit({"n": 3})
            waited = trio.current_time() - start
            assert [status for *_, status in transport.exchanges] == [429, 202]
            assert waited >= full.value.retry_after
            assert (await c.wait(job.id)).result["input"] == {"n": 3}


async def test_submit_many_queues_every_input_in_order_in_batches() -> None:
    inputs = [{"i": i} for i in range(1500)]  # two requests: the server takes 1,000 at a time
    transport = Recording()
    async with (
        server(ECHO, queue_size=2000) as url,
        AsyncClient(url, transport=transport) as client,
    ):
        jobs = await client.submit_many(inputs)
        assert transport.exchanges == [("POST", "/jobs/batch", 202)] * 2
        assert len({job.id for job in jobs}) == len(inputs)
        done = [await client.wait(job.id, timeout=60) for job in jobs]
    assert [job.result["echo"] for job in done] == inputs


async def test_submit_many_returns_what_a_full_queue_took_or_raises_if_none(gate: Gate) -> None:
    # one worker held at the gate, room for three waiting jobs
    patient = Retries(max_attempts=2, backoff=0.05)
    async with (
        server(TOOLBOX, queue_size=3) as url,
        AsyncClient(url, retries=patient) as client,
        AsyncClient(url, retries=NO_RETRIES) as plain,
    ):
        await client.run({"warm": True})  # a short job: the server's Retry-After is short too
        held = await client.submit(gate.hold())

        async def held_runs() -> bool:  # off the queue, so all three places are free
            return (await client.get(held.id)).status is JobStatus.RUNNING

        await until(held_runs, "the held job to run")
        jobs = await client.submit_many([{"i": i} for i in range(10)])
        assert len(jobs) == 3  # the rest were not queued: the queue stayed full
        with pytest.raises(TooManyRequests):
            await plain.submit_many([{"i": 99}])
        gate.open()
        done = [await client.wait(job.id, timeout=30) for job in jobs]
    assert [job.result["input"] for job in done] == [{"i": 0}, {"i": 1}, {"i": 2}]


def blocking_round_trip(url: str) -> None:
    """The blocking client, used as a script would (runs in a thread)."""
    with Client(url) as client:
        assert client.run({"ok": True}) == {"ok": True}
        job = client.submit({"ok": True})
        assert client.get(job.id).id == job.id
        assert client.wait(job.id, timeout=30).result == {"ok": True}
        many = client.submit_many([{"ok": True}, {"ok": True}])
        assert [client.wait(job.id, timeout=30).result for job in many] == [{"ok": True}] * 2
        with pytest.raises(JobFailed) as caught:
            client.run({})
        assert caught.value.type == "UpstreamError"
        with pytest.raises(NotFound):
            client.get(str(uuid.uuid4()))
        with pytest.raises(InvalidRequest):
            client.submit(messages=[])


async def test_blocking_client() -> None:
    async with server(FLAKY) as url:
        await trio.to_thread.run_sync(blocking_round_trip, url)


async def asyncio_round_trip(url: str) -> None:
    asyncio.get_running_loop()  # this really is asyncio
    async with AsyncClient(url, poll_wait=0.05) as client:
        assert await client.run("x") == {"echo": "x"}
        job = await client.submit({"a": 1})
        assert (await client.wait(job.id)).result == {"echo": {"a": 1}}
        with pytest.raises(NotFound):
            await client.get(str(uuid.uuid4()))


async def test_async_client_under_asyncio() -> None:
    async with server(ECHO) as url:
        await trio.to_thread.run_sync(lambda: asyncio.run(asyncio_round_trip(url)))


# The README's "Python client" examples, read from the README itself.
README_BLOCKING = readme_block("from graphnursery import Client, JobFailed")
README_ASYNC = readme_block("from graphnursery import AsyncClient")


@pytest.mark.parametrize(
    ("script", "printed"),
    [
        (
            README_BLOCKING,
            "{'echo': {'question': 'hi'}}\ncompleted {'echo': {'question': 'later'}}\n",
        ),
        (
            README_ASYNC,
            "{'echo': {'messages': [{'role': 'user', 'content': 'hello'}], "
            "'data': {}, 'metadata': {}}}\n",
        ),
    ],
    ids=["blocking", "async"],
)
async def test_readme_examples_print_what_they_say(script: str, printed: str) -> None:
    async with server(ECHO) as url:
        script = script.replace("http://127.0.0.1:8000", url)
        done = await trio.run_process([sys.executable, "-c", script], capture_stdout=True)
        assert done.stdout.decode() == printed


async def test_client_sends_its_api_key_and_a_missing_one_is_unauthorized() -> None:
    async with server(ECHO, api_key="k1,k2") as url:
        async with AsyncClient(url, api_key="k2") as client:
            assert await client.run({"x": 1}) == {"echo": {"x": 1}}
        async with AsyncClient(url) as client:
            with pytest.raises(Unauthorized) as info:
                await client.submit({"x": 1})
            assert info.value.code == "unauthorized"


async def test_by_default_a_full_queue_is_asked_five_times_then_raised(tmp_path: Any) -> None:
    """The default ``Retries``: five requests in all, each after the server's Retry-After."""
    gate = str(tmp_path / "gate")  # never opened: the worker and the queue's place stay taken
    async with server(TOOLBOX, queue_size=1) as url:
        async with AsyncClient(url, retries=NO_RETRIES) as plain:
            running = await plain.submit({"gate": gate})
            with trio.fail_after(30):
                for _ in itertools.count():
                    if (await plain.get(running.id)).status is JobStatus.RUNNING:
                        break
                    await trio.sleep(0.02)
            await plain.submit({"gate": gate})
        transport = Recording()
        async with AsyncClient(url, transport=transport) as client:
            start = trio.current_time()
            with pytest.raises(TooManyRequests) as full:
                await client.submit({})
            waited = trio.current_time() - start
    assert [status for *_, status in transport.exchanges] == [429] * 5
    assert full.value.retry_after is not None and full.value.retry_after >= 1
    assert waited >= 4 * full.value.retry_after  # four waits between the five


class FirstRefusal(Recording):
    """``Recording``, with an event set at the first 503 it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.refused = trio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        if response.status_code == 503:
            self.refused.set()
        return response


async def test_by_default_a_503_is_retried_until_the_server_can_take_the_job(
    own_role: tuple[str, str],
) -> None:
    """The database away: submits answer 503 with Retry-After; the client waits it out and
    submits again, and once the database is back the job is accepted and runs."""
    from postgres import allow_login, terminate

    store, role = own_role
    async with server(ECHO, store=store) as url:
        async with AsyncClient(url, retries=NO_RETRIES) as plain:
            assert await plain.run({"n": 0}) == {"echo": {"n": 0}}
            await trio.to_thread.run_sync(allow_login, role, False)
            await trio.to_thread.run_sync(terminate, role)
        # the server says so after 1 s of failing (a request that was waiting on the store
        # when it went away waits longer: it is given up on, and asked again)
        async with httpx.AsyncClient(base_url=url, timeout=0.5) as probe:
            with trio.fail_after(30):
                for _ in itertools.count():
                    with contextlib.suppress(httpx.TimeoutException):
                        if (await probe.get("/health")).status_code == 503:
                            break
                    await trio.sleep(0.05)
        transport = FirstRefusal()
        async with AsyncClient(url, transport=transport) as client:
            async with trio.open_nursery() as nursery:

                async def database_back() -> None:
                    await transport.refused.wait()
                    await trio.to_thread.run_sync(allow_login, role, True)

                nursery.start_soon(database_back)
                job = await client.submit({"n": 1})
            assert (await client.wait(job.id, timeout=30)).result == {"echo": {"n": 1}}
    statuses = [status for method, path, status in transport.exchanges if path == "/jobs"]
    assert statuses[0] == 503 and statuses[-1] == 202, statuses
    assert set(statuses[1:-1]) <= {503} and len(statuses) <= 5, statuses
