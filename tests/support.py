"""Helpers for tests: a real graphnursery server (hypercorn, port 0, worker processes)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
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

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_block(marker: str) -> str:
    """The README's python code block that contains ``marker``."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    matching = [block for block in blocks if marker in block]
    assert len(matching) == 1, f"expected one README block with {marker!r}"
    return matching[0]
