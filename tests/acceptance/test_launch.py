"""The ways in: the CLI (and python -m), and hypercorn with the shipped config."""

from __future__ import annotations

import os
import re
import signal
import sys
from functools import partial
from pathlib import Path

import httpx
import trio

from support import PIPE, read_serving_url, read_until

HYPERCORN_LINE = re.compile(r"Running on (http://[\d.]+:\d+)")


async def serve_job(url: str) -> dict[str, object]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        response = await client.post("/jobs", params={"wait": 30}, json={"input": {"via": "cli"}})
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]


async def test_cli_serves_on_a_free_port_and_prints_it(workdir: Path) -> None:
    command = [sys.executable, "-m", "graphnursery", "serve", "examples/echo.py"]
    command += ["--port", "0", "--workers", "1"]
    async with trio.open_nursery() as nursery:
        proc = await nursery.start(partial(trio.run_process, command, stdout=PIPE, cwd=workdir))
        try:
            url = await read_serving_url(proc, proc.stdout)
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
            assert not url.endswith(":0")
            job = await serve_job(url)
            assert job["result"] == {"echo": {"via": "cli"}}
        finally:
            proc.send_signal(signal.SIGTERM)
        assert await proc.wait() == 0


async def test_cli_with_a_graph_that_cannot_be_imported_exits_nonzero_with_the_error(
    workdir: Path,
) -> None:
    command = [sys.executable, "-m", "graphnursery", "serve", "tests/graphs/broken_import.py"]
    result = await trio.run_process(
        [*command, "--port", "0", "--workers", "1"],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        cwd=workdir,
    )
    assert result.returncode != 0
    stderr = result.stderr.decode()
    assert "ModuleNotFoundError" in stderr
    assert "graphnursery_no_such_module" in stderr
    assert b"serving" not in result.stdout  # it never listened


async def test_cli_rejects_an_invalid_setting_naming_it() -> None:
    command = [sys.executable, "-m", "graphnursery", "serve", "examples/echo.py", "--workers", "0"]
    result = await trio.run_process(command, capture_stderr=True, check=False)
    assert result.returncode == 2
    assert "'workers'" in result.stderr.decode()


async def test_hypercorn_launch_with_the_shipped_config_serves_a_job(workdir: Path) -> None:
    env = {**os.environ, "GRAPHNURSERY_GRAPH": "examples/echo.py", "GRAPHNURSERY_WORKERS": "1"}
    command = [
        sys.executable,
        "-m",
        "hypercorn",
        "--config",
        "python:graphnursery.hypercorn_config",
    ]
    command += ["--bind", "127.0.0.1:0", "graphnursery.asgi:app"]
    async with trio.open_nursery() as nursery:
        proc = await nursery.start(
            partial(trio.run_process, command, stderr=PIPE, env=env, cwd=workdir)
        )
        try:
            url = await read_until(proc.stderr, HYPERCORN_LINE)
            job = await serve_job(url)
            assert job["status"] == "completed"
        finally:
            proc.send_signal(signal.SIGTERM)
        await proc.wait()
