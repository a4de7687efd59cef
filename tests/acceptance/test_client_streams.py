"""The clients' event streams (``stream``, ``stream_run``) against a real server.

A real hypercorn on port 0 with real worker processes runs ``tests/graphs/streamer.py``;
jobs are held mid-stream on a ``Gate``. A dropped connection is a real one: the client talks
to the server through :class:`Relay`, a TCP relay in this test's Trio run that the test cuts.
The blocking client runs in a thread, the server in this test's Trio run throughout.
"""

from __future__ import annotations

import asyncio
import re
import sys
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import trio

from graphnursery import (
    AsyncClient,
    Client,
    InvalidRequest,
    JobFailed,
    NotFound,
    Retries,
    StreamEvent,
    TransportError,
    Unauthorized,
)
from graphnursery.jobs import JobStatus
from support import Gate, deadline, readme_block, running_server

STREAMER = "tests/graphs/streamer.py"
#: Reconnect at once: the tests wait on events, not on backoff.
QUICK = Retries(max_attempts=5, backoff=0.01)


def summary(events: Iterable[StreamEvent]) -> list[tuple[int, str, Any]]:
    """Each event's id, name and, for the graph's own events, what it emitted."""
    return [(e.id, e.event, e.data if e.event == "custom" else None) for e in events]


def expected(count: int, first: int = 0) -> list[tuple[int, str, Any]]:
    """A fresh stream of ``{"events": count}`` that completes, from id ``first`` on."""
    whole = [
        (0, "job", None),
        (1, "running", None),
        *((i + 2, "custom", {"i": i}) for i in range(count)),
        (count + 2, "completed", None),
    ]
    return whole[first:]


class Relay:
    """A TCP relay to the server that the test can cut, as a network failure would.

    ``cut()`` closes every connection through it at once (both ends); connections opened
    after it are relayed again, unless ``refuse`` is set: then they are closed as soon as
    they are accepted. ``requests[n]`` is what the client sent on its n-th connection.
    """

    def __init__(self, port: int) -> None:
        self._port = port
        self._scopes: list[trio.CancelScope] = []
        self.requests: list[bytearray] = []
        self.refuse = False
        self._connected = trio.Event()

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        task_status.started(listeners[0].socket.getsockname()[1])
        await trio.serve_listeners(self._relay, listeners)

    def cut(self) -> None:
        for scope in self._scopes:
            scope.cancel()

    async def connections(self, count: int) -> None:
        """Wait until ``count`` connections have come in."""
        with deadline(30, f"{count} connections through the relay"):
            while len(self.requests) < count:
                await self._connected.wait()

    async def _relay(self, client: trio.SocketStream) -> None:
        sent = bytearray()
        self.requests.append(sent)
        self._connected.set()
        self._connected = trio.Event()
        async with client:
            if self.refuse:
                return
            server = await trio.open_tcp_stream("127.0.0.1", self._port)
            async with server, trio.open_nursery() as nursery:
                self._scopes.append(nursery.cancel_scope)
                nursery.start_soon(self._pump, client, server, sent, nursery.cancel_scope)
                nursery.start_soon(self._pump, server, client, None, nursery.cancel_scope)

    @staticmethod
    async def _pump(
        source: trio.SocketStream,
        sink: trio.SocketStream,
        record: bytearray | None,
        scope: trio.CancelScope,
    ) -> None:
        try:
            while chunk := await source.receive_some():
                if record is not None:
                    record += chunk
                await sink.send_all(chunk)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        scope.cancel()  # one side is gone: close the other too


def resumed_after(request: bytes) -> int | None:
    """The ``Last-Event-ID`` a request carried."""
    match = re.search(rb"\r\nlast-event-id: *(\d+)\r\n", bytes(request), re.IGNORECASE)
    return None if match is None else int(match.group(1))


def request_line(request: bytes) -> bytes:
    return bytes(request).split(b"\r\n", 1)[0]


# -- events in order ---------------------------------------------------------------------------


async def test_stream_yields_the_job_its_log_in_order_then_its_end(gate: Gate) -> None:
    async with running_server(STREAMER) as http, AsyncClient(str(http.base_url)) as client:
        job = await client.submit(gate.hold(events=6))
        seen: list[StreamEvent] = []
        with deadline(60, "the stream to end"):
            async for event in client.stream(job.id):
                seen.append(event)
                if event.id == 4:  # the first half: the job waits at the gate, running
                    assert (await client.get(job.id)).status is JobStatus.RUNNING
                    gate.open()
        assert summary(seen) == expected(6)
        first, last = seen[0], seen[-1]
        assert first.job is not None and first.job.id == job.id and not first.terminal
        assert last.terminal and last.job is not None and last.job.done
        assert last.job.outcome() == {"emitted": 6, "kept": 6}
        assert last.data["droppedEvents"] == 0
        assert all(e.attempt == 1 and e.job is None for e in seen[1:-1])

        # resumed after an id: exactly what followed; after the end: nothing
        resumed = [e async for e in client.stream(job.id, after=5)]
        assert summary(resumed) == expected(6, first=6)
        assert [e async for e in client.stream(job.id, after=last.id)] == []

        # a job that fails ends its stream with its error
        failing = await client.submit({"events": 2, "raise": "boom"})
        events = [e async for e in client.stream(failing.id)]
        assert [e.event for e in events] == ["job", "running", "custom", "custom", "failed"]
        assert events[-1].job is not None
        with pytest.raises(JobFailed, match="boom"):
            events[-1].job.outcome()


async def test_stream_run_submits_with_its_stream_mode_and_streams(tmp_path: Path) -> None:
    async with (
        running_server(STREAMER, retry_backoff=0) as http,
        AsyncClient(str(http.base_url)) as client,
    ):
        events = [e async for e in client.stream_run({"events": 3})]
        assert summary(events) == expected(3)
        assert events[-1].job is not None and events[-1].job.result == {"emitted": 3, "kept": 3}

        # the log keeps only the events stream_mode names: a name, a list, or none
        updates = {"events": 2, "name": "updates"}
        kept = [e async for e in client.stream_run(updates, stream_mode="updates")]
        assert [(e.event, e.data) for e in kept[1:-1]] == [
            ("running", {"status": "running"}),
            ("updates", {"i": 0}),
            ("updates", {"i": 1}),
        ]
        others = [e async for e in client.stream_run({"events": 2}, stream_mode=["values"])]
        assert [e.event for e in others] == ["job", "running", "completed"]
        assert others[-1].job is not None and others[-1].job.result == {"emitted": 2, "kept": 0}

        # submit() and run() carry it too
        job = await client.submit({"events": 2}, stream_mode=[])
        assert [e.event async for e in client.stream(job.id)] == ["job", "running", "completed"]
        assert await client.run({"events": 2}, stream_mode=[]) == {"emitted": 2, "kept": 0}

        # max_attempts: a crashed first attempt is retried; each event names its attempt
        crashes_once = {"events": 1, "fail_first": str(tmp_path / "first-attempt")}
        retried = [e async for e in client.stream_run(crashes_once, max_attempts=2)]
        assert [(e.event, e.attempt) for e in retried] == [
            ("job", None),
            ("running", 1),
            ("custom", 1),
            ("retrying", 1),
            ("running", 2),
            ("custom", 2),
            ("completed", None),
        ]
        assert [e.id for e in retried] == list(range(len(retried)))


def blocking_streams(url: str, gate: Gate) -> None:
    """The blocking client's streams, as a script would use them (runs in a thread)."""
    with Client(url) as client:
        job = client.submit(gate.hold(events=4))
        seen = []
        for event in client.stream(job.id):
            seen.append(event)
            if event.id == 3:
                assert client.get(job.id).status is JobStatus.RUNNING
                gate.open()
        assert summary(seen) == expected(4)
        assert summary(client.stream(job.id, after=2)) == expected(4, first=3)
        assert list(client.stream(job.id, after=seen[-1].id)) == []

        events = list(client.stream_run({"events": 2, "name": "updates"}, stream_mode=["updates"]))
        assert [e.event for e in events] == ["job", "running", "updates", "updates", "completed"]
        assert events[-1].job is not None and events[-1].job.outcome() == {"emitted": 2, "kept": 2}

        with pytest.raises(NotFound):
            list(client.stream(str(uuid.uuid4())))
        with pytest.raises(InvalidRequest):
            list(client.stream(job.id, after=99))


async def test_blocking_client_streams(gate: Gate) -> None:
    async with running_server(STREAMER) as http:
        await trio.to_thread.run_sync(blocking_streams, str(http.base_url), gate)


async def asyncio_streams(url: str) -> list[StreamEvent]:
    asyncio.get_running_loop()  # this really is asyncio
    async with AsyncClient(url) as client:
        events = [e async for e in client.stream_run({"events": 2})]
        assert events[-1].job is not None
        resumed = [e async for e in client.stream(events[-1].job.id, after=1)]
        return events + resumed


async def test_async_client_streams_under_asyncio() -> None:
    async with running_server(STREAMER) as http:
        url = str(http.base_url)
        events = await trio.to_thread.run_sync(lambda: asyncio.run(asyncio_streams(url)))
    assert summary(events) == expected(2) + expected(2, first=2)


# -- dropped connections -----------------------------------------------------------------------


async def test_a_dropped_stream_is_resumed_after_the_last_event_seen(gate: Gate) -> None:
    async with running_server(STREAMER) as http, trio.open_nursery() as nursery:
        assert http.base_url.port is not None
        relay = Relay(http.base_url.port)
        port = await nursery.start(relay.serve)

        async def open_once_resumed() -> None:
            await relay.connections(2)  # the client came back while the job waits
            gate.open()

        nursery.start_soon(open_once_resumed)
        job = (await http.post("/jobs", json={"input": gate.hold(events=6)})).json()
        seen: list[StreamEvent] = []
        async with AsyncClient(f"http://127.0.0.1:{port}", retries=QUICK) as client:
            with deadline(60, "the stream to end"):
                async for event in client.stream(job["jobId"]):
                    seen.append(event)
                    if event.id == 4:  # the first half: the job waits at the gate
                        relay.cut()
        assert summary(seen) == expected(6)  # every id once, in order
        first, resumed = relay.requests
        assert request_line(resumed) == request_line(first)
        assert b"GET /jobs/%s/events" % job["jobId"].encode() in request_line(first)
        assert resumed_after(first) is None
        assert resumed_after(resumed) == 4
        nursery.cancel_scope.cancel()


async def test_a_dropped_stream_run_is_resumed_at_its_location(gate: Gate) -> None:
    async with running_server(STREAMER) as http, trio.open_nursery() as nursery:
        assert http.base_url.port is not None
        relay = Relay(http.base_url.port)
        port = await nursery.start(relay.serve)

        async def open_once_resumed() -> None:
            await relay.connections(2)
            gate.open()

        nursery.start_soon(open_once_resumed)
        url = f"http://127.0.0.1:{port}"
        seen = await trio.to_thread.run_sync(blocking_resume, url, gate, relay.cut)
        assert summary(seen) == expected(6)
        assert seen[0].job is not None
        submit, resumed = relay.requests
        assert request_line(submit) == b"POST /jobs?stream=true HTTP/1.1"
        assert request_line(resumed) == b"GET /jobs/%s/events HTTP/1.1" % seen[0].job.id.encode()
        assert resumed_after(resumed) == 4
        nursery.cancel_scope.cancel()


def blocking_resume(url: str, gate: Gate, cut: Callable[[], None]) -> list[StreamEvent]:
    """The blocking client's stream_run, its connection cut mid-job (runs in a thread)."""
    seen = []
    with Client(url, retries=QUICK) as client:
        for event in client.stream_run(gate.hold(events=6)):
            seen.append(event)
            if event.id == 4:
                trio.from_thread.run_sync(cut)
    return seen


async def test_a_stream_that_cannot_be_resumed_gives_up_after_max_attempts(gate: Gate) -> None:
    async with running_server(STREAMER) as http, trio.open_nursery() as nursery:
        assert http.base_url.port is not None
        relay = Relay(http.base_url.port)
        port = await nursery.start(relay.serve)
        three = Retries(max_attempts=3, backoff=0.01)
        async with AsyncClient(f"http://127.0.0.1:{port}", retries=three) as client:
            seen: list[StreamEvent] = []
            with pytest.raises(TransportError, match="gave up after 2 reconnects"):
                async for event in client.stream_run(gate.hold(events=6)):
                    seen.append(event)
                    if event.id == 4:
                        relay.refuse = True  # the server is out of reach from now on
                        relay.cut()
        # max_attempts=3: the connection that brought the last event, then two reconnects
        assert [e.id for e in seen] == [0, 1, 2, 3, 4]
        assert len(relay.requests) == 3
        gate.open()  # the job never depended on its stream
        assert seen[0].job is not None
        finished = await http.get(f"/jobs/{seen[0].job.id}", params={"wait": 30})
        assert finished.json()["status"] == "completed"
        nursery.cancel_scope.cancel()


# -- errors ------------------------------------------------------------------------------------


async def test_stream_errors_are_the_clients_typed_errors() -> None:
    async with running_server(STREAMER, api_key="k1") as http:
        url = str(http.base_url)
        async with AsyncClient(url, api_key="k1") as client:
            with pytest.raises(NotFound) as missing:
                [e async for e in client.stream(str(uuid.uuid4()))]
            assert missing.value.status == 404 and missing.value.code == "job_not_found"

            job = await client.wait((await client.submit({"events": 1})).id)
            for after in (99, -1):
                with pytest.raises(InvalidRequest) as invalid:
                    [e async for e in client.stream(job.id, after=after)]
                assert invalid.value.code == "invalid_event_id"
            with pytest.raises(InvalidRequest) as reserved:  # "job" names the first event
                [e async for e in client.stream_run({}, stream_mode="job")]
            assert reserved.value.code == "invalid_body"

        async with AsyncClient(url) as anonymous:
            with pytest.raises(Unauthorized):
                [e async for e in anonymous.stream(job.id)]
            with pytest.raises(Unauthorized):
                [e async for e in anonymous.stream_run({})]

        def blocking() -> None:
            with Client(url) as blocking_client, pytest.raises(Unauthorized):
                list(blocking_client.stream(job.id))
            with Client(url, api_key="k1") as blocking_client, pytest.raises(NotFound):
                list(blocking_client.stream(str(uuid.uuid4())))

        await trio.to_thread.run_sync(blocking)


# The README's streaming example, read from the README itself.
README_STREAM = readme_block("client.stream_run(")


async def test_readme_stream_example_prints_what_it_says() -> None:
    async with running_server("examples/progress.py") as http:
        script = README_STREAM.replace("http://127.0.0.1:8000", str(http.base_url))
        done = await trio.run_process([sys.executable, "-c", script], capture_stdout=True)
    assert done.stdout.decode() == (
        "2 {'step': 1, 'of': 2}\n3 {'step': 2, 'of': 2}\ncompleted {'done': 2}\n"
    )
