"""Helpers for tests: a real graphnursery server (hypercorn, port 0, worker processes)."""

from __future__ import annotations

import itertools
import re
import signal
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import orjson
import trio
from httpx_sse import ServerSentEvent, aconnect_sse

from graphnursery import Config
from graphnursery.server import serve

SERVING_LINE = re.compile(r"graphnursery: serving .* on (http://\S+?)[, ]")
TERMINAL = {"completed", "failed", "timed_out", "cancelled", "crashed"}


#: Settings every test server gets unless a test says otherwise (see ``both_http_paths``).
DEFAULTS: dict[str, Any] = {"port": 0, "workers": 1, "store": "memory://"}


@asynccontextmanager
async def running_server(graph: str, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """Serve ``graph`` in this test's Trio run; yields an httpx client bound to it."""
    config = Config(graph=graph, **{**DEFAULTS, **settings})
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(partial(serve, config, handle_signals=False))
        async with httpx.AsyncClient(base_url=urls[0], timeout=60) as client:
            yield client
        nursery.cancel_scope.cancel()


@contextmanager
def deadline(seconds: float, waiting_for: str) -> Iterator[None]:
    """``trio.fail_after``, failing with what the test waited for instead of a bare timeout."""
    try:
        with trio.fail_after(seconds):
            yield
    except trio.TooSlowError:
        raise AssertionError(f"waited {seconds:g} s for {waiting_for}") from None


async def until(
    holds: Callable[[], Awaitable[bool]], waiting_for: str, seconds: float = 30
) -> None:
    """Check a condition the server only reports when asked (no event to wait on) every 20 ms
    until it holds; an ``AssertionError`` naming it after ``seconds``."""
    with deadline(seconds, waiting_for):
        for _ in itertools.count():
            if await holds():
                return
            await trio.sleep(0.02)


async def finished(client: httpx.AsyncClient, job_id: str, wait: float = 30) -> dict[str, Any]:
    """Long-poll a job until it is terminal, ``wait`` seconds at most. A retried job's
    long-poll also answers at each requeue: then ask again."""
    job: dict[str, Any] = {}
    with deadline(wait, f"job {job_id} to end"):
        while job.get("status") not in TERMINAL:
            response = await client.get(f"/jobs/{job_id}", params={"wait": wait})
            assert response.status_code == 200, response.text
            job = response.json()
    return job


async def until_running(
    client: httpx.AsyncClient, job_id: str, seconds: float = 30
) -> dict[str, Any]:
    """The job once the server says it runs (``seconds`` at most)."""
    job: dict[str, Any] = {}

    async def runs() -> bool:
        nonlocal job
        job = (await client.get(f"/jobs/{job_id}")).json()
        assert job["status"] in {"queued", "running"}, job
        return job["status"] == "running"

    await until(runs, f"job {job_id} to run", seconds)
    return job


async def answers(
    client: httpx.AsyncClient, path: str, status: int, seconds: float = 30
) -> httpx.Response:
    """``GET path`` once it answers ``status`` (a change the server makes on its own, such
    as draining after a signal), ``seconds`` at most."""
    response: httpx.Response | None = None

    async def holds() -> bool:
        nonlocal response
        response = await client.get(path)
        return response.status_code == status

    await until(holds, f"{path} to answer {status}", seconds)
    assert response is not None
    return response


class Gate:
    """Holds ``tests/graphs/toolbox.py`` jobs until the test opens it: a job whose input is
    ``gate.hold(...)`` waits in its worker until the gate's file exists. A step that needs a
    job still running (or still queued behind it) then holds however slow the machine is."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def hold(self, **job_input: Any) -> dict[str, Any]:
        """A toolbox input that waits for this gate, then does what ``job_input`` says."""
        return {"gate": str(self.path), **job_input}

    def open(self) -> None:
        self.path.touch()


async def read_until(
    stream: trio.abc.ReceiveStream, pattern: re.Pattern[str], seconds: float = 60
) -> str:
    """Read a process's output until ``pattern`` matches (``seconds`` at most); its first group."""
    buffer = b""
    try:
        with trio.fail_after(seconds):
            while True:
                chunk = await stream.receive_some()
                if not chunk:
                    raise AssertionError(f"process exited before printing it: {buffer.decode()}")
                buffer += chunk
                match = pattern.search(buffer.decode())
                if match:
                    return match.group(1)
    except trio.TooSlowError:
        raise AssertionError(
            f"no {pattern.pattern!r} in {seconds:g} s; printed: {buffer.decode()}"
        ) from None


async def read_serving_url(proc: trio.Process, stdout: trio.abc.ReceiveStream) -> str:
    """Read a CLI server's stdout until it prints where it listens."""
    return await read_until(stdout, SERVING_LINE)


PIPE = subprocess.PIPE


@asynccontextmanager
async def cli_server(command: list[str]) -> AsyncIterator[tuple[trio.Process, httpx.AsyncClient]]:
    """A CLI server process; yields it and a client. SIGTERM on exit if it still runs."""
    async with trio.open_nursery() as nursery:
        proc: trio.Process = await nursery.start(
            partial(trio.run_process, command, stdout=PIPE, check=False)
        )
        try:
            assert proc.stdout is not None
            url = await read_serving_url(proc, proc.stdout)
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                yield proc, client
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            await proc.wait()


async def read_to_close(client: httpx.AsyncClient, request: bytes) -> tuple[bytes, bytes]:
    """Send raw bytes to the server, read its answer until it closes the connection (10 s at
    most); the status line and headers, and the body."""
    host, port = client.base_url.host, client.base_url.port
    assert port is not None
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream(host, port)
        async with stream:
            await stream.send_all(request)
            answer = b""
            while chunk := await stream.receive_some():
                answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return head, body


async def send_and_read_to_close(client: httpx.AsyncClient, request: bytes) -> tuple[bytes, Any]:
    """``read_to_close``, with the body read as JSON."""
    head, body = await read_to_close(client, request)
    return head, orjson.loads(body)


README = Path(__file__).resolve().parents[1] / "README.md"


def readme_block(marker: str) -> str:
    """The README's python code block that contains ``marker``."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    matching = [block for block in blocks if marker in block]
    assert len(matching) == 1, f"expected one README block with {marker!r}"
    return matching[0]


# -- event streams ----------------------------------------------------------------------

#: The names of a stream's last event.
ENDS = {"completed", "failed", "timed_out", "cancelled", "crashed"}


async def read_events(
    client: httpx.AsyncClient,
    path: str,
    *,
    method: str = "GET",
    until_id: int | None = None,
    **request: Any,
) -> list[ServerSentEvent]:
    """The stream's events up to its end (or up to ``until_id``, then the connection is
    dropped), with a deadline."""
    seen: list[ServerSentEvent] = []
    with deadline(60, f"the stream of {path}"):
        async with aconnect_sse(client, method, path, **request) as source:
            source.response.raise_for_status()
            async for event in source.aiter_sse():
                seen.append(event)
                if event.event in ENDS or (until_id is not None and int(event.id) >= until_id):
                    break
    return seen


def data(event: ServerSentEvent) -> Any:
    return orjson.loads(event.data)
