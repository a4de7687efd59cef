"""Settings from ``GRAPHNURSERY_*`` variables alone, under each launch the README names: the
CLI, ``serve_graph()`` and hypercorn with the shipped config. Every kind of value goes through
each: a list (``API_KEY``, ``RETRY_ON``), a boolean (``METRICS_PUBLIC``), numbers, ``HOST`` and
``PORT`` (the address it binds), ``SHUTDOWN_GRACE`` (how long a SIGTERM waits for a job)."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import socket
import sys
from typing import Any

import httpx
import pytest
import trio

from support import PIPE, SERVING_LINE, TERMINAL

TOOLBOX = "tests/graphs/toolbox.py"
HYPERCORN_LINE = re.compile(r"Running on (http://[\d.]+:\d+)")
#: Not the default 127.0.0.1: an address the server can only have taken from the variable.
HOST = "127.0.0.2"
HYPERCORN = [sys.executable, "-m", "hypercorn", "--config", "python:graphnursery.hypercorn_config"]

LAUNCHES: dict[str, tuple[list[str], str, re.Pattern[str]]] = {
    # the command, the stream where it says where it listens, and how it says it
    "cli": ([sys.executable, "-m", "graphnursery", "serve", TOOLBOX], "stdout", SERVING_LINE),
    "serve_graph": (
        [sys.executable, "-c", f"from graphnursery import serve_graph; serve_graph({TOOLBOX!r})"],
        "stdout",
        SERVING_LINE,
    ),
    "hypercorn": (
        [*HYPERCORN, "graphnursery.asgi:app"],
        "stderr",
        HYPERCORN_LINE,
    ),
}
#: Each launch reads the boolean spelled another way.
TRUE = {"cli": "true", "serve_graph": "1", "hypercorn": "yes"}


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def environment(launch: str, **settings: str) -> dict[str, str]:
    """This process's environment without any ``GRAPHNURSERY_*`` variable, plus ``settings``
    (``GRAPHNURSERY_GRAPH`` for hypercorn, which has no other way to be told the graph)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAPHNURSERY_")}
    if launch == "hypercorn":
        env["GRAPHNURSERY_GRAPH"] = TOOLBOX
    env.update({f"GRAPHNURSERY_{name.upper()}": value for name, value in settings.items()})
    return env


class Output:
    """One output stream of a process, read to its end in the background."""

    def __init__(self) -> None:
        self.data = b""
        self.closed = False
        self._changed = trio.Event()

    @property
    def text(self) -> str:
        return self.data.decode(errors="replace")

    async def read(self, stream: trio.abc.ReceiveStream) -> None:
        while chunk := await stream.receive_some():
            self.data += chunk
            self._changed.set()
            self._changed = trio.Event()
        self.closed = True
        self._changed.set()

    async def search(self, pattern: re.Pattern[str], seconds: float = 60) -> str:
        """The first group of ``pattern`` once the output holds it (``seconds`` at most)."""
        with trio.fail_after(seconds):
            while (match := pattern.search(self.text)) is None:
                assert not self.closed, f"the process ended without printing it: {self.text}"
                await self._changed.wait()
        return match.group(1)


async def final(client: httpx.AsyncClient, job_id: str, **kwargs: Any) -> dict[str, Any]:
    """The job once it has ended (a retried job's long-poll also answers at its requeue)."""
    with trio.fail_after(60):
        while True:
            response = await client.get(f"/jobs/{job_id}", params={"wait": 30}, **kwargs)
            job: dict[str, Any] = response.json()
            if job["status"] in TERMINAL:
                return job


async def until_running(client: httpx.AsyncClient, job_id: str, **kwargs: Any) -> None:
    with trio.fail_after(30):
        for _ in itertools.count():
            job = (await client.get(f"/jobs/{job_id}", **kwargs)).json()
            assert job["status"] in {"queued", "running"}, job
            if job["status"] == "running":
                return
            await trio.sleep(0.02)


@pytest.mark.parametrize("launch", LAUNCHES)
async def test_every_kind_of_setting_comes_from_the_environment(launch: str, workdir: Any) -> None:
    command, url_stream, url_line = LAUNCHES[launch]
    port = free_port(HOST)
    env = environment(
        launch,
        host=HOST,
        port=str(port),
        workers="1",
        store="memory://",
        api_key="k1,k2",
        metrics_public=TRUE[launch],
        retry_on="crashed,failed",
        max_attempts="2",
        retry_backoff="0",
        shutdown_grace="0.5",
    )
    k1, k2 = ({"Authorization": f"Bearer {key}"} for key in ("k1", "k2"))
    outputs = {"stdout": Output(), "stderr": Output()}
    async with trio.open_nursery() as nursery:
        proc = await trio.lowlevel.open_process(
            command, stdout=PIPE, stderr=PIPE, env=env, cwd=workdir
        )
        nursery.start_soon(outputs["stdout"].read, proc.stdout)
        nursery.start_soon(outputs["stderr"].read, proc.stderr)
        try:
            url = await outputs[url_stream].search(url_line)
            assert url == f"http://{HOST}:{port}"  # HOST and PORT became the bind
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                assert (await client.get("/stats", headers=k2)).json()["workers"] == 1
                refused = await client.post("/jobs", json={"input": {}})
                assert refused.status_code == 401, refused.text  # the key list is in force
                assert (await client.get("/metrics")).status_code == 200  # ...but not here

                # retry_on lists failed, max_attempts is 2: a raising job runs twice
                raising = await client.post("/jobs", json={"input": {"raise": "x"}}, headers=k1)
                failed = await final(client, raising.json()["jobId"], headers=k2)
                assert (failed["status"], failed["attempts"]) == ("failed", 2), failed

                busy = await client.post("/jobs", json={"input": {"sleep": 60}}, headers=k1)
                busy_id = busy.json()["jobId"]
                await until_running(client, busy_id, headers=k1)
            proc.send_signal(signal.SIGTERM)
            with trio.fail_after(25):  # the default grace (30 s) would not be over yet
                assert await proc.wait() == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    # not a terminal: the log is JSON lines, one for each job that ended
    lines = [json.loads(line) for line in outputs["stderr"].text.splitlines() if line.strip()]
    ended = {line["job_id"]: line for line in lines if line["event"] == "job ended"}
    assert (ended[failed["jobId"]]["status"], ended[failed["jobId"]]["attempt"]) == ("failed", 2)
    assert ended[busy_id]["status"] == "cancelled"  # killed when the 0.5 s grace ran out


@pytest.mark.parametrize("launch", LAUNCHES)
async def test_a_malformed_variable_stops_startup_naming_it(launch: str, workdir: Any) -> None:
    command, _, _ = LAUNCHES[launch]
    env = environment(launch, workers="many", store="memory://", port="0")
    with trio.fail_after(60):
        result = await trio.run_process(
            command, env=env, cwd=workdir, capture_stdout=True, capture_stderr=True, check=False
        )
    if launch != "hypercorn":
        # hypercorn 0.18 itself exits 0 whatever its worker's status (its run() reads the
        # status again from a list it has just emptied): that it stopped is what it says
        assert result.returncode != 0
    stderr = result.stderr.decode()
    assert "'workers'" in stderr and "GRAPHNURSERY_WORKERS" in stderr, stderr
    assert b"serving" not in result.stdout
