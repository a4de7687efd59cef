"""The library examples of the README, run as a user would run them."""

from __future__ import annotations

import os
import signal
import sys
from functools import partial
from pathlib import Path

import httpx
import trio

from support import PIPE, read_serving_url, readme_block

# The README's serve_graph block, pointed at a real example graph and a free port.
SERVE_GRAPH = readme_block("serve_graph(").replace(
    '"app/graph.py:graph", workers=4, port=8000', '"examples/echo.py", workers=1, port=0'
)
OPEN_ENGINE = readme_block("open_engine(")


async def test_serve_graph_serves_until_sigterm(workdir: Path) -> None:
    assert "port=0" in SERVE_GRAPH
    command = [sys.executable, "-c", SERVE_GRAPH]
    async with trio.open_nursery() as nursery:
        proc = await nursery.start(partial(trio.run_process, command, stdout=PIPE, cwd=workdir))
        try:
            url = await read_serving_url(proc, proc.stdout)
            async with httpx.AsyncClient(base_url=url) as client:
                response = await client.post("/jobs", params={"wait": 30}, json={"input": 5})
                assert response.json()["result"] == {"echo": 5}
        finally:
            proc.send_signal(signal.SIGTERM)
        assert await proc.wait() == 0


async def test_serve_graph_reads_the_environment_and_its_keywords_win(workdir: Path) -> None:
    """GRAPHNURSERY_API_KEY alone protects it; GRAPHNURSERY_WORKERS=3 loses to workers=1."""
    env = {**os.environ, "GRAPHNURSERY_API_KEY": "k1", "GRAPHNURSERY_WORKERS": "3"}
    command = [sys.executable, "-c", SERVE_GRAPH]
    async with trio.open_nursery() as nursery:
        proc = await nursery.start(
            partial(trio.run_process, command, stdout=PIPE, env=env, cwd=workdir)
        )
        try:
            url = await read_serving_url(proc, proc.stdout)
            async with httpx.AsyncClient(base_url=url) as client:
                refused = await client.post("/jobs", json={"input": 5})
                assert refused.status_code == 401, refused.text
                stats = await client.get("/stats", headers={"Authorization": "Bearer k1"})
                assert stats.json()["workers"] == 1
        finally:
            proc.send_signal(signal.SIGTERM)
        assert await proc.wait() == 0


async def test_open_engine_example_prints_the_result(workdir: Path) -> None:
    script = workdir / "engine_example.py"
    script.write_text(OPEN_ENGINE)
    result = await trio.run_process([sys.executable, str(script)], capture_stdout=True, cwd=workdir)
    assert result.stdout.decode().strip() == "completed {'echo': {'question': 'hi'}}"
