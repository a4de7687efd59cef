"""Several graphs per server: each with its own workers and queue, its jobs named by graph
and version, reloads that never drop a job. Real worker processes, real hypercorn."""

from __future__ import annotations

import json
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from graphnursery.sources import source_version
from support import Gate, cli_server, finished, running_server, until, until_running

GRAPHS = Path(__file__).resolve().parents[1] / "graphs"
TOOLBOX = f"{GRAPHS}/toolbox.py:graph"
ECHO = str(Path(__file__).resolve().parents[2] / "examples" / "echo.py")


async def test_two_graphs_a_slow_one_never_blocks_the_other(tmp_path: Path) -> None:
    gate = Gate(tmp_path / "gate")
    async with running_server(f"slow={TOOLBOX} echo={ECHO}:graph", workers=1) as client:
        # The slow graph's only worker is held, and a second job waits in its queue.
        held = (await client.post("/graphs/slow/jobs", json={"input": gate.hold()})).json()
        queued = (await client.post("/jobs", json={"input": gate.hold()})).json()  # default
        await until_running(client, held["jobId"])
        assert queued["graph"] == "slow" and queued["status"] == "queued"

        # The other graph runs at once on its own worker.
        answer = await client.post("/graphs/echo/jobs?wait=30", json={"input": {"n": 1}})
        assert answer.status_code == 200, answer.text
        job = answer.json()
        assert job["status"] == "completed" and job["result"] == {"echo": {"n": 1}}
        assert job["graph"] == "echo"
        assert job["version"] == source_version(f"{ECHO}:graph")

        graphs = (await client.get("/graphs")).json()["graphs"]
        assert [g["name"] for g in graphs] == ["slow", "echo"]
        slow = graphs[0]
        assert slow["default"] is True and graphs[1]["default"] is False
        assert slow["busyWorkers"] == 1 and slow["queueLength"] == 1
        assert graphs[1]["queueLength"] == 0

        stats = (await client.get("/stats")).json()
        assert stats["graphs"]["slow"]["running"] == 1
        assert stats["graphs"]["slow"]["queued"] == 1
        assert stats["graphs"]["echo"]["completed"] == 1
        assert stats["running"] == 1 and stats["completed"] == 1 and stats["workers"] == 2
        health = (await client.get("/health")).json()
        assert health["graphs"]["echo"]["completed"] == 1

        metrics = (await client.get("/metrics")).text
        assert 'graphnursery_jobs_submitted_total{graph="slow"} 2.0' in metrics
        assert 'graphnursery_jobs_finished_total{graph="echo",status="completed"} 1.0' in metrics
        assert 'graphnursery_queue_depth{graph="slow"} 1.0' in metrics

        only_echo = (await client.get("/jobs", params={"graph": "echo"})).json()["jobs"]
        assert [j["jobId"] for j in only_echo] == [job["jobId"]]
        only_slow = (await client.get("/jobs", params={"graph": "slow"})).json()["jobs"]
        assert {j["jobId"] for j in only_slow} == {held["jobId"], queued["jobId"]}
        gate.open()
        assert (await finished(client, queued["jobId"]))["status"] == "completed"


async def test_unknown_graph_answers_404_json() -> None:
    async with running_server(f"echo={ECHO}:graph") as client:
        for method, path in [
            ("GET", "/graphs/nope"),
            ("GET", "/graphs/nope/versions"),
            ("POST", "/graphs/nope/reload"),
            ("POST", "/graphs/nope/jobs"),
        ]:
            answer = await client.request(method, path, json={"input": 1})
            assert answer.status_code == 404, (path, answer.text)
            assert answer.json()["code"] == "graph_not_found"
            assert "'nope'" in answer.json()["error"]
        assert (await client.get("/jobs")).json()["jobs"] == []


def _write_graph(path: Path, answer: str) -> None:
    path.write_text(
        textwrap.dedent(
            f"""
            import os, time

            def graph(input):
                gate = input.get("gate") if isinstance(input, dict) else None
                while gate and not os.path.exists(gate):
                    time.sleep(0.01)
                return {{"answer": {answer!r}, "pid": os.getpid()}}
            """
        )
    )


async def test_reload_runs_queued_jobs_on_the_new_version_and_lets_running_ones_finish(
    tmp_path: Path,
) -> None:
    source = tmp_path / "agent.py"
    _write_graph(source, "one")
    gate = Gate(tmp_path / "gate")
    async with running_server(f"agent={source}:graph", workers=1) as client:
        first = (await client.get("/graphs/agent")).json()["version"]
        assert first == source_version(f"{source}:graph")
        running = (await client.post("/jobs", json={"input": gate.hold()})).json()
        await until_running(client, running["jobId"])
        queued = (await client.post("/jobs", json={"input": {}})).json()
        assert queued["version"] == first

        unchanged = (await client.post("/graphs/agent/reload")).json()
        assert unchanged == {
            "graph": "agent",
            "version": first,
            "previous": first,
            "changed": False,
        }

        _write_graph(source, "two")
        reloaded = (await client.post("/graphs/agent/reload")).json()
        second = reloaded["version"]
        assert reloaded == {"graph": "agent", "version": second, "previous": first, "changed": True}
        assert second != first and (await client.get("/graphs/agent")).json()["version"] == second

        gate.open()
        old = await finished(client, running["jobId"])
        new = await finished(client, queued["jobId"])
        assert old["result"]["answer"] == "one" and old["version"] == first
        assert new["result"]["answer"] == "two" and new["version"] == second
        assert new["result"]["pid"] != old["result"]["pid"]  # new worker processes

        versions = (await client.get("/graphs/agent/versions")).json()
        assert versions["live"] == second
        assert [(v["version"], v["live"]) for v in versions["versions"]] == [
            (first, False),
            (second, True),
        ]
        assert versions["versions"][0]["retiredAt"] is not None


async def test_a_source_that_fails_to_load_is_refused_and_the_live_version_stays(
    tmp_path: Path,
) -> None:
    source = tmp_path / "agent.py"
    _write_graph(source, "one")
    async with running_server(f"agent={source}:graph", workers=1) as client:
        live = (await client.get("/graphs/agent")).json()["version"]
        source.write_text("import no_such_module_here\n")
        refused = await client.post("/graphs/agent/reload")
        assert refused.status_code == 409, refused.text
        assert refused.json()["code"] == "graph_load_failed"
        assert "ModuleNotFoundError" in refused.json()["error"]
        assert "no_such_module_here" in refused.json()["error"]
        assert (await client.get("/graphs/agent")).json()["version"] == live
        job = (await client.post("/jobs?wait=30", json={"input": {}})).json()
        assert job["result"]["answer"] == "one" and job["version"] == live


async def test_sighup_reloads_every_graph(tmp_path: Path) -> None:
    source = tmp_path / "agent.py"
    _write_graph(source, "one")
    command = [sys.executable, "-m", "graphnursery", "serve", f"agent={source}:graph"]
    command += ["echo=" + ECHO + ":graph", "--port", "0", "--workers", "1"]
    command += ["--store", "memory://", "--engine-thread", "false"]
    async with cli_server(command) as (proc, client):
        before = (await client.post("/jobs?wait=30", json={"input": {}})).json()
        _write_graph(source, "two")
        proc.send_signal(signal.SIGHUP)

        async def reloaded() -> bool:
            return (await client.get("/graphs/agent")).json()["version"] != before["version"]

        await until(reloaded, "the SIGHUP reload")
        after = (await client.post("/jobs?wait=30", json={"input": {}})).json()
        assert after["result"]["answer"] == "two"
        echo = (await client.get("/graphs/echo/versions")).json()["versions"]
        assert len(echo) == 1  # its source had not changed


async def test_a_toml_file_gives_each_graph_its_own_settings(tmp_path: Path) -> None:
    config = tmp_path / "graphnursery.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            store = "memory://"
            port = 0
            workers = 1
            engine_thread = false

            [graphs.echo]
            source = "{ECHO}:graph"
            workers = 2
            queue_size = 5
            job_timeout = 7.5
            tag = "v1.0"

            [graphs.toolbox]
            source = "{TOOLBOX}"
            max_attempts = 3
            """
        )
    )
    command = [sys.executable, "-m", "graphnursery", "serve", str(config)]
    async with cli_server(command) as (_, client):
        graphs = {g["name"]: g for g in (await client.get("/graphs")).json()["graphs"]}
        assert graphs["echo"]["workers"] == 2 and graphs["echo"]["queueCapacity"] == 5
        assert graphs["echo"]["jobTimeout"] == 7.5 and graphs["echo"]["tag"] == "v1.0"
        assert graphs["toolbox"]["workers"] == 1 and graphs["toolbox"]["maxAttempts"] == 3
        job = (await client.post("/graphs/toolbox/jobs", json={"input": 1})).json()
        assert job["maxAttempts"] == 3


def test_a_bad_per_graph_setting_is_named(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(f'[graphs.echo]\nsource = "{ECHO}:graph"\nworkers = 0\n')
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "graphnursery", "serve", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "graphs.echo.workers" in done.stderr and "positive integer" in done.stderr


LANGGRAPH_GRAPH = """
from typing import TypedDict

from langgraph.graph import END, START, StateGraph


class State(TypedDict):
    text: str
    greeting: str


def greet(state: State) -> dict:
    import os
    return {"greeting": os.environ["GREETING"] + ", " + state["text"]}


builder = StateGraph(State)
builder.add_node("greet", greet)
builder.add_edge(START, "greet")
builder.add_edge("greet", END)
graph = builder.compile()
"""


@pytest.mark.parametrize("graph_value", ["./src/agent/graph.py:graph", "object"])
async def test_langgraph_json_is_served_as_written(tmp_path: Path, graph_value: str) -> None:
    # The layout and file LangGraph's own templates ship (langgraph new): a package under
    # src/, a .env beside langgraph.json.
    package = tmp_path / "src" / "agent"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "graph.py").write_text(LANGGRAPH_GRAPH)
    (tmp_path / ".env").write_text("# secrets\nGREETING='hello'\n")
    path = "./src/agent/graph.py:graph"
    value = path if graph_value != "object" else {"path": path, "description": "greets"}
    (tmp_path / "langgraph.json").write_text(
        json.dumps({"dependencies": ["."], "graphs": {"agent": value}, "env": ".env"}, indent=2)
    )
    async with running_server(str(tmp_path / "langgraph.json")) as client:
        graphs = (await client.get("/graphs")).json()["graphs"]
        assert [g["name"] for g in graphs] == ["agent"]
        job = await client.post("/graphs/agent/jobs?wait=60", json={"input": {"text": "you"}})
        assert job.json()["result"] == {"text": "you", "greeting": "hello, you"}, job.text
        assert job.json()["version"] == source_version(str(package / "graph.py") + ":graph")
