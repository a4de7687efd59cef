"""JSON flow graphs, served from a file and stored with POST /flows: validation errors by
node and edge, conditions, concurrent branches, fan-in, node retries, run records, versions
and the live pointer. Real worker processes, real hypercorn."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import trio

from graphnursery.flows import flow_version
from support import cli_server, finished, running_server

GRAPHS = Path(__file__).resolve().parents[1] / "graphs"
ECHO = str(Path(__file__).resolve().parents[2] / "examples" / "echo.py")
NODES = "tests.graphs.flow_nodes"  # importable from the repository root, the servers' cwd


def node(node_id: str, fn: str, **more: Any) -> dict[str, Any]:
    return {"id": node_id, "type": f"{NODES}:{fn}", **more}


BRANCHING = {
    "name": "branching",
    "nodes": [
        node("classify", "classify"),
        node("big", "tag", config={"tag": "big"}),
        node("small", "tag", config={"tag": "small"}),
    ],
    "edges": [
        {"from": "classify", "to": "big", "condition": "size == 'big'"},
        {"from": "classify", "to": "small", "condition": "size == 'small'"},
    ],
}

FAN_IN = {
    "name": "fan_in",
    "nodes": [
        node("start", "noop"),
        node("slow_a", "sleep", config={"seconds": 1.0}),
        node("slow_b", "sleep", config={"seconds": 1.0}),
        node("join", "noop"),
    ],
    "edges": [
        {"from": "start", "to": "slow_a"},
        {"from": "start", "to": "slow_b"},
        {"from": "slow_a", "to": "join"},
        {"from": "slow_b", "to": "join"},
    ],
}


async def test_a_condition_takes_one_branch_and_the_record_says_so(tmp_path: Path) -> None:
    flow_file = tmp_path / "branching.json"
    flow_file.write_text(json.dumps(BRANCHING))
    async with running_server(str(flow_file)) as client:
        job = (await client.post("/jobs?wait=30", json={"input": 42})).json()
        assert job["status"] == "completed", job
        assert job["result"] == {"tag": "big", "input": {"size": "big", "value": 42}}
        assert job["graph"] == "branching"
        assert job["version"] == flow_version(BRANCHING)
        nodes = job["record"]["nodes"]
        assert nodes["classify"]["status"] == "completed"
        assert nodes["big"]["status"] == "completed"
        assert nodes["small"]["status"] == "skipped"
        assert nodes["classify"]["output"] == {"size": "big", "value": 42}
        assert nodes["big"]["duration_ms"] >= 0 and nodes["big"]["started_at"] > 0

        other = (await client.post("/jobs?wait=30", json={"input": 3})).json()
        assert other["result"]["tag"] == "small"


async def test_branches_run_concurrently_and_fan_in_maps_each_upstream(tmp_path: Path) -> None:
    flow_file = tmp_path / "fan_in.json"
    flow_file.write_text(json.dumps(FAN_IN))
    async with running_server(str(flow_file)) as client:
        job = (await client.post("/jobs?wait=30", json={"input": {"x": 1}})).json()
        assert job["status"] == "completed", job
        assert job["result"] == {"slow_a": {"x": 1}, "slow_b": {"x": 1}}
        nodes = job["record"]["nodes"]
        a, b = nodes["slow_a"], nodes["slow_b"]
        # Both started before either finished: the two 1 s sleeps overlapped.
        assert b["started_at"] < a["started_at"] + a["duration_ms"] / 1000
        assert a["started_at"] < b["started_at"] + b["duration_ms"] / 1000


async def test_a_failing_node_is_retried_then_fails_the_job_naming_it(tmp_path: Path) -> None:
    flow = {
        "name": "retries",
        "nodes": [
            node("flaky", "flaky", config={"key": "acceptance", "fail_times": 1}, max_attempts=2),
            node("bad", "boom", max_attempts=3),
        ],
        "edges": [{"from": "flaky", "to": "bad"}],
    }
    flow_file = tmp_path / "retries.json"
    flow_file.write_text(json.dumps(flow))
    async with running_server(str(flow_file)) as client:
        job = (await client.post("/jobs?wait=30", json={"input": 7})).json()
        assert job["status"] == "failed"
        assert job["error"]["type"] == "ValueError"
        assert "'bad'" in job["error"]["message"]
        nodes = job["record"]["nodes"]
        assert nodes["flaky"]["status"] == "completed" and nodes["flaky"]["attempts"] == 2
        assert nodes["bad"]["status"] == "failed" and nodes["bad"]["attempts"] == 3
        assert nodes["bad"]["error"]["type"] == "ValueError"


async def test_every_validation_error_names_its_node_or_edge() -> None:
    invalid = {
        "name": "broken",
        "nodes": [
            node("a", "noop"),
            {"id": "b", "type": "no_colon_here"},
            node("c", "noop"),
            node("d", "noop"),
            node("a", "noop"),
        ],
        "edges": [
            {"from": "a", "to": "ghost"},
            {"from": "c", "to": "d"},
            {"from": "d", "to": "c"},
            {"from": "a", "to": "b", "condition": "size =="},
        ],
    }
    async with running_server(ECHO) as client:
        answer = await client.post("/flows", json=invalid)
        assert answer.status_code == 400
        body = answer.json()
        assert body["code"] == "invalid_flow"
        named = {(item.get("node"), item.get("edge")) for item in body["detail"]}
        assert ("b", None) in named  # unknown type
        assert ("a", None) in named  # a duplicate id
        assert (None, "a->ghost") in named  # an edge to a missing node
        assert (None, "a->b") in named  # a condition that does not parse
        cycles = [item for item in body["detail"] if "cycle" in item["message"]]
        assert cycles and cycles[0].get("node") in {"c", "d"}
        assert (await client.get("/flows")).json() == {"flows": []}  # nothing saved

        # A node type the workers cannot import: refused, naming it.
        missing = {"name": "missing", "nodes": [node("x", "not_there")], "edges": []}
        answer = await client.post("/flows", json=missing)
        assert answer.status_code == 400
        assert "not_there" in answer.json()["error"] and "'x'" in answer.json()["error"]
        assert (await client.get("/flows/missing")).status_code == 404


async def test_stored_flows_keep_versions_and_the_live_pointer_moves_back() -> None:
    one = {"name": "adder", "nodes": [node("add", "add", config={"add": 1})], "edges": []}
    two = {"name": "adder", "nodes": [node("add", "add", config={"add": 100})], "edges": []}
    async with running_server(ECHO) as client:
        first = await client.post("/flows", json=one)
        assert first.status_code == 201, first.text
        assert first.json()["number"] == 1 and first.json()["version"] == flow_version(one)
        again = await client.post("/flows", json=one)
        assert again.status_code == 200 and again.json()["number"] == 1

        job = (await client.post("/flows/adder/jobs?wait=30", json={"input": 1})).json()
        assert job["result"] == 2 and job["version"] == flow_version(one)
        assert job["graph"] == "adder"

        second = (await client.post("/flows", json=two)).json()
        assert second["number"] == 2 and second["live"]
        job = (await client.post("/flows/adder/jobs?wait=30", json={"input": 1})).json()
        assert job["result"] == 101 and job["version"] == flow_version(two)

        moved = await client.put("/flows/adder/live", json={"version": flow_version(one)})
        assert moved.status_code == 200 and moved.json()["live"]
        job = (await client.post("/flows/adder/jobs?wait=30", json={"input": 1})).json()
        assert job["result"] == 2 and job["version"] == flow_version(one)

        versions = (await client.get("/flows/adder/versions")).json()
        assert [v["number"] for v in versions["versions"]] == [1, 2]
        assert versions["live"] == flow_version(one)
        listed = (await client.get("/flows")).json()["flows"]
        assert [(f["name"], f["liveNumber"], f["versions"]) for f in listed] == [("adder", 1, 2)]
        shown = (await client.get(f"/flows/adder?version={flow_version(two)}")).json()
        assert shown["definition"] == two and not shown["live"]
        jobs = (await client.get("/jobs?graph=adder")).json()["jobs"]
        assert len(jobs) == 3

        unknown = await client.put("/flows/adder/live", json={"version": "nope"})
        assert unknown.status_code == 404
        assert (await client.post("/flows/nothing/jobs", json={"input": 1})).status_code == 404
        taken = await client.post("/flows", json={**one, "name": "echo"})
        assert taken.status_code == 409  # the served graph's name


async def test_stored_flows_survive_a_restart(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'jobs.db'}"
    flow = {"name": "doubler", "nodes": [node("d", "double")], "edges": []}
    async with running_server(ECHO, store=store) as client:
        assert (await client.post("/flows", json=flow)).status_code == 201
    async with running_server(ECHO, store=store) as client:
        job = (await client.post("/flows/doubler/jobs?wait=30", json={"input": 21})).json()
        assert job["result"] == 42


async def test_a_graph_node_calls_another_served_graph(tmp_path: Path) -> None:
    flow = {
        "name": "caller",
        "nodes": [
            node("first", "double"),
            {"id": "echo", "type": "graph", "config": {"graph": "echo"}},
        ],
        "edges": [{"from": "first", "to": "echo"}],
    }
    flow_file = tmp_path / "caller.json"
    flow_file.write_text(json.dumps(flow))
    async with running_server(f"{flow_file} echo={ECHO}:graph") as client:
        job = (await client.post("/graphs/caller/jobs?wait=30", json={"input": 4})).json()
        assert job["status"] == "completed", job
        assert job["result"] == {"echo": 8}


async def test_graphnursery_serve_flow_json(tmp_path: Path) -> None:
    shutil.copy(GRAPHS / "flow_nodes.py", tmp_path / "my_nodes.py")  # beside the flow file
    flow = {"name": "local", "nodes": [{"id": "d", "type": "my_nodes:double"}], "edges": []}
    flow_file = tmp_path / "flow.json"
    flow_file.write_text(json.dumps(flow))
    command = [sys.executable, "-m", "graphnursery", "serve", str(flow_file), "--port", "0"]
    command += ["--workers", "1", "--store", "memory://"]
    async with cli_server(command) as (_, client):
        job = (await client.post("/jobs", json={"input": "ab"})).json()
        done = await finished(client, job["jobId"])
        assert done["result"] == "abab" and done["graph"] == "local"
        with trio.fail_after(5):
            graphs = (await client.get("/graphs")).json()["graphs"]
        assert graphs[0]["version"] == flow_version(flow)
