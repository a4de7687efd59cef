"""Helpers for tests: a real graphnursery server (hypercorn, port 0, worker processes)."""

from __future__ import annotations

import re
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import orjson
import trio

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


async def finished(client: httpx.AsyncClient, job_id: str, wait: float = 30) -> dict[str, Any]:
    """Long-poll a job until it is terminal."""
    response = await client.get(f"/jobs/{job_id}", params={"wait": wait})
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] in TERMINAL, job
    return job


async def read_until(stream: trio.abc.ReceiveStream, pattern: re.Pattern[str]) -> str:
    """Read a process's output until ``pattern`` matches; its first group."""
    buffer = b""
    while True:
        chunk = await stream.receive_some()
        if not chunk:
            raise AssertionError(f"process exited before printing it: {buffer.decode()}")
        buffer += chunk
        match = pattern.search(buffer.decode())
        if match:
            return match.group(1)


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
