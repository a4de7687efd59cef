"""The ways in: the CLI (and python -m), and hypercorn with the shipped config."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import socket
import sys
from functools import partial
from pathlib import Path

import httpx
import trio

from graphnursery.sources import source_version
from support import PIPE, README, read_serving_url, read_until

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
    assert result.returncode == 1  # the README: "exit with status 1"
    stderr = result.stderr.decode()
    assert "ModuleNotFoundError" in stderr
    assert "graphnursery_no_such_module" in stderr
    assert b"serving" not in result.stdout  # it never listened


async def test_cli_rejects_an_invalid_setting_naming_it() -> None:
    command = [sys.executable, "-m", "graphnursery", "serve", "examples/echo.py", "--workers", "0"]
    result = await trio.run_process(command, capture_stderr=True, check=False)
    assert result.returncode == 2
    assert "'workers'" in result.stderr.decode()


#: The README's hypercorn command with the shipped config, word for word.
README_HYPERCORN = "hypercorn --config python:graphnursery.hypercorn_config graphnursery.asgi:app"
#: Where the shipped config binds when GRAPHNURSERY_HOST/PORT are not set (the README).
DEFAULT_BIND = ("127.0.0.1", 8000)


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as hypercorn binds
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_hypercorn_launch_with_the_shipped_config_serves_a_job(workdir: Path) -> None:
    """The README's command as written, its bind the shipped config's: 127.0.0.1:8000 when
    that port is free, else the port GRAPHNURSERY_PORT names (as the README says it reads)."""
    assert README_HYPERCORN in README.read_text()
    program, *args = README_HYPERCORN.split()
    command = [str(Path(sys.executable).with_name(program)), *args]
    env = {**os.environ, "GRAPHNURSERY_GRAPH": "examples/echo.py"}
    host, port = DEFAULT_BIND
    if not port_is_free(host, port):  # something else on this machine listens there
        port = free_port()
        env["GRAPHNURSERY_PORT"] = str(port)
    async with trio.open_nursery() as nursery:
        proc = await nursery.start(
            partial(trio.run_process, command, stderr=PIPE, env=env, cwd=workdir)
        )
        try:
            url = await read_until(proc.stderr, HYPERCORN_LINE)
            assert url == f"http://{host}:{port}"
            job = await serve_job(url)
            assert job["result"] == {"echo": {"via": "cli"}}
        finally:
            proc.send_signal(signal.SIGTERM)
        with trio.fail_after(60):
            assert await proc.wait() == 0


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "graphnursery", "serve", *args, "--port", "0"]


async def wait_until_running(client: httpx.AsyncClient, job_id: str) -> None:
    """Read the job until it is running (a condition the server reports, with a deadline)."""
    with trio.fail_after(30):
        for _ in itertools.count():
            if (await client.get(f"/jobs/{job_id}")).json()["status"] == "running":
                return
            await trio.sleep(0.02)


async def test_cli_takes_the_api_key_from_the_environment_alone(workdir: Path) -> None:
    env = {**os.environ, "GRAPHNURSERY_API_KEY": "k1", "GRAPHNURSERY_STORE": "memory://"}
    async with trio.open_nursery() as nursery:
        proc = await nursery.start(
            partial(
                trio.run_process, cli_command("examples/echo.py"), stdout=PIPE, env=env, cwd=workdir
            )
        )
        try:
            url = await read_serving_url(proc, proc.stdout)
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                refused = await client.post("/jobs", json={"input": 1})
                assert refused.status_code == 401, refused.text
                assert refused.json()["code"] == "unauthorized"
                headers = {"Authorization": "Bearer k1"}
                accepted = await client.post("/jobs", json={"input": 1}, headers=headers)
                assert accepted.status_code == 202, accepted.text
        finally:
            proc.send_signal(signal.SIGTERM)
        assert await proc.wait() == 0


async def test_cli_takes_the_queue_size_from_the_environment_alone(workdir: Path) -> None:
    env = {**os.environ, "GRAPHNURSERY_QUEUE_SIZE": "2", "GRAPHNURSERY_STORE": "memory://"}
    command = cli_command("tests/graphs/toolbox.py", "--workers", "1", "--shutdown-grace", "0.5")
    async with trio.open_nursery() as nursery:
        proc = await nursery.start(
            partial(trio.run_process, command, stdout=PIPE, env=env, cwd=workdir)
        )
        try:
            url = await read_serving_url(proc, proc.stdout)
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                running = (await client.post("/jobs", json={"input": {"sleep": 60}})).json()
                await wait_until_running(client, running["jobId"])
                for _ in range(2):  # the queue's two places
                    queued = await client.post("/jobs", json={"input": {}})
                    assert queued.status_code == 202, queued.text
                third = await client.post("/jobs", json={"input": {}})
                assert third.status_code == 429, third.text
                assert third.json()["code"] == "queue_full"
                assert "Retry-After" in third.headers
        finally:
            proc.send_signal(signal.SIGTERM)
        assert await proc.wait() == 0


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in {"Z", "X"}


def descendants(pid: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(
                    (entry / "stat").read_text().rpartition(")")[2].split()[1]
                )
            except (OSError, IndexError, ValueError):
                continue
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def graph_workers(pid: int) -> set[int]:
    """The trio-parallel worker processes below ``pid`` (they hold the graph)."""
    workers = set()
    for child in descendants(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline and len(descendants(child)) == 0:
            workers.add(child)
    return workers


PLAIN_HYPERCORN = [sys.executable, "-m", "hypercorn", "-k", "trio", "--bind", "127.0.0.1:0"]
HYPERCORN_ENV = {
    "GRAPHNURSERY_GRAPH": "tests/graphs/toolbox.py",
    "GRAPHNURSERY_WORKERS": "2",
    "GRAPHNURSERY_STORE": "memory://",
    "GRAPHNURSERY_SHUTDOWN_GRACE": "0.5",
}


async def start_plain_hypercorn(nursery: trio.Nursery, workdir: Path) -> trio.Process:
    """``hypercorn -k trio graphnursery.asgi:app`` with no config file, as a user types it."""
    command = [*PLAIN_HYPERCORN, "graphnursery.asgi:app"]
    env = {**os.environ, **HYPERCORN_ENV}
    runner = partial(trio.run_process, command, stderr=PIPE, env=env, cwd=workdir, check=False)
    process: trio.Process = await nursery.start(runner)
    return process


async def test_plain_hypercorn_launch_serves_jobs_and_leaves_no_worker_behind(
    workdir: Path,
) -> None:
    """``hypercorn -k trio graphnursery.asgi:app``, with no config file: hypercorn's worker
    process is daemonic, and the graph's worker processes start anyway; stopping hypercorn
    stops them all, a busy one included."""
    async with trio.open_nursery() as nursery:
        proc = await start_plain_hypercorn(nursery, workdir)
        try:
            url = await read_until(proc.stderr, HYPERCORN_LINE)
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                done = await client.post("/jobs", params={"wait": 30}, json={"input": {"n": 1}})
                assert done.json()["status"] == "completed", done.text
                busy = (await client.post("/jobs", json={"input": {"sleep": 60}})).json()
                await wait_until_running(client, busy["jobId"])
            workers = graph_workers(proc.pid)
            assert len(workers) == 2, workers
        finally:
            proc.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            assert await proc.wait() == 0
    assert not {pid for pid in workers if alive(pid)}


async def test_graph_workers_die_with_a_killed_server_process_even_mid_job(
    workdir: Path,
) -> None:
    async with trio.open_nursery() as nursery:
        proc = await start_plain_hypercorn(nursery, workdir)
        url = await read_until(proc.stderr, HYPERCORN_LINE)
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            busy = (await client.post("/jobs", json={"input": {"sleep": 60}})).json()
            await wait_until_running(client, busy["jobId"])
        workers = graph_workers(proc.pid)
        (server,) = {pid for pid in descendants(proc.pid) if descendants(pid) & workers}
        os.kill(server, signal.SIGKILL)  # no drain, no clean-up: the process is just gone
        with trio.fail_after(10):  # a process's end is seen in /proc, not as an event
            for _ in itertools.count():
                if not {pid for pid in workers if alive(pid)}:
                    break
                await trio.sleep(0.05)
        with trio.fail_after(30):
            await proc.wait()  # hypercorn stops once its worker is gone


async def job_end_lines(
    workdir: Path, *flags: str
) -> tuple[dict[str, str], list[dict[str, object]]]:
    """Serve toolbox.py with ``flags``, run one job that completes and one that fails; the
    job ids by outcome and the server's ``job ended`` log lines."""
    command = cli_command("tests/graphs/toolbox.py", "--workers", "1", "--store", "memory://")
    command += ["--log-format", "json", *flags]
    ids: dict[str, str] = {}
    async with trio.open_nursery() as nursery:
        proc = await nursery.start(
            partial(trio.run_process, command, stdout=PIPE, stderr=PIPE, cwd=workdir)
        )
        try:
            url = await read_serving_url(proc, proc.stdout)
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                for outcome, job_input in (("completed", {}), ("failed", {"raise": "no"})):
                    answer = await client.post(
                        "/jobs", params={"wait": 30}, json={"input": job_input}
                    )
                    assert answer.json()["status"] == outcome, answer.text
                    ids[outcome] = answer.json()["jobId"]
        finally:
            proc.send_signal(signal.SIGTERM)
        stderr = b""
        while chunk := await proc.stderr.receive_some():
            stderr += chunk
        assert await proc.wait() == 0
    lines = [json.loads(line) for line in stderr.decode().splitlines() if line.startswith("{")]
    return ids, [line for line in lines if line.get("event") == "job ended"]


async def test_each_job_leaves_one_line_in_the_server_log(workdir: Path) -> None:
    ids, ended = await job_end_lines(workdir)
    assert [(line["job_id"], line["status"], line["level"]) for line in ended] == [
        (ids["completed"], "completed", "info"),
        (ids["failed"], "failed", "warning"),
    ]
    for line in ended:
        assert line["graph"] == "toolbox"  # the graph's name: its file's stem
        assert line["version"] == source_version("tests/graphs/toolbox.py")
        assert line["attempt"] == 1
        assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
        assert isinstance(line["queue_ms"], float) and line["queue_ms"] >= 0
    assert (ended[1]["error_type"], ended[1]["error"]) == ("ValueError", "no")


async def test_log_level_warning_silences_the_lines_of_jobs_that_went_well(workdir: Path) -> None:
    ids, ended = await job_end_lines(workdir, "--log-level", "warning")
    assert [(line["job_id"], line["status"]) for line in ended] == [(ids["failed"], "failed")]


async def test_cli_prints_the_workers_traceback_when_the_graph_cannot_be_loaded(
    workdir: Path,
) -> None:
    command = cli_command("tests/graphs/broken_import.py", "--workers", "1")
    with trio.fail_after(60):
        result = await trio.run_process(command, capture_stderr=True, check=False, cwd=workdir)
    assert result.returncode == 1
    stderr = result.stderr.decode()
    # the traceback from the worker process, down to the graph's own line
    _, traceback = stderr.split("Traceback (most recent call last):\n", 1)[-2:]
    assert 'broken_import.py", line 3, in <module>' in traceback, stderr
    assert "import graphnursery_no_such_module" in traceback
    assert traceback.rstrip().endswith(
        "ModuleNotFoundError: No module named 'graphnursery_no_such_module'"
    )


async def test_cli_log_is_readable_lines_on_a_terminal(
    workdir: Path,
) -> None:
    """``--log-format auto`` (the default): console lines when stderr is a terminal (JSON
    lines when it is not: test_environment.py, and the tests above)."""
    controller, terminal = os.openpty()
    command = cli_command("tests/graphs/toolbox.py", "--workers", "1", "--store", "memory://")
    output = b""
    async with trio.open_nursery() as nursery:
        proc = await nursery.start(
            partial(trio.run_process, command, stdout=PIPE, stderr=terminal, cwd=workdir)
        )
        os.close(terminal)  # the server holds it now
        try:
            url = await read_serving_url(proc, proc.stdout)
            job = await serve_job(url)
        finally:
            proc.send_signal(signal.SIGTERM)
        reader = trio.lowlevel.FdStream(controller)
        with trio.fail_after(30):
            try:
                while chunk := await reader.receive_some():
                    output += chunk
            except trio.BrokenResourceError:  # EIO: the terminal's last holder has ended
                pass
        await reader.aclose()
        assert await proc.wait() == 0
    lines = [line for line in output.decode(errors="replace").splitlines() if line.strip()]
    ended = [line for line in lines if "job ended" in line]
    assert len(ended) == 1 and job["jobId"] in ended[0], lines
    assert not [line for line in lines if line.lstrip().startswith("{")], lines
