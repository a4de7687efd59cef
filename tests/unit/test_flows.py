"""Flows (``graphnursery.flows``): validation, the interpreter, the built-in node types.

Node types are ``graphs.flow_nodes:<name>`` (``tests/graphs/flow_nodes.py``). Runs go through
``run_flow_sync``, on asyncio.
"""

from __future__ import annotations

import asyncio
import doctest
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest

import graphnursery.flows
from graphnursery.errors import FlowInvalid
from graphnursery.flows import (
    BUILTIN_TYPES,
    FlowFailed,
    flow_version,
    parse_flow,
    run_flow,
    run_flow_sync,
)

NODES = "graphs.flow_nodes"


def node(node_id: str, function: str = "noop", **fields: Any) -> dict[str, Any]:
    return {"id": node_id, "type": f"{NODES}:{function}", **fields}


def edge(source: str, target: str, condition: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"from": source, "to": target}
    if condition is not None:
        found["condition"] = condition
    return found


def flow(*nodes: dict[str, Any], edges: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"name": "test", "nodes": list(nodes), "edges": edges or []}


def problems_of(data: Any, *, resolve: bool = True) -> list[dict[str, str]]:
    with pytest.raises(FlowInvalid) as caught:
        parse_flow(data, resolve=resolve)
    return caught.value.problems


def problem(problems: list[dict[str, str]], **where: str) -> str:
    """The one problem reported for ``where`` (node=..., edge=... or flow=...)."""
    ((key, name),) = where.items()
    found = [p["problem"] for p in problems if p.get(key) == name]
    assert len(found) == 1, (where, problems)
    return found[0]


# -- the package -------------------------------------------------------------------------------


def test_the_exports_are_the_documented_api() -> None:
    assert sorted(graphnursery.flows.__all__) == [
        "BUILTIN_TYPES",
        "Edge",
        "Flow",
        "FlowFailed",
        "FlowRun",
        "Node",
        "flow_version",
        "parse_flow",
        "run_flow",
        "run_flow_sync",
    ]
    assert frozenset({"http", "graph"}) == BUILTIN_TYPES


def test_the_docstring_example_runs() -> None:
    assert doctest.testmod(graphnursery.flows).failed == 0


def test_importing_flows_imports_neither_trio_nor_quart() -> None:
    code = (
        "import sys, graphnursery.flows; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'trio', 'quart', 'httpx'}))"
    )
    src = str(Path(graphnursery.flows.__file__).parents[2])  # this checkout's src/
    env = {**os.environ, "PYTHONPATH": src}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == "[]"


def test_flow_version_is_stable_under_key_order() -> None:
    one = {
        "name": "v",
        "nodes": [{"id": "a", "type": "http", "config": {"url": "u", "method": "GET"}}],
    }
    two = {
        "nodes": [{"config": {"method": "GET", "url": "u"}, "type": "http", "id": "a"}],
        "name": "v",
    }
    assert flow_version(one) == flow_version(two)
    assert len(flow_version(one)) == 12
    assert int(flow_version(one), 16) >= 0
    assert flow_version({**one, "name": "w"}) != flow_version(one)


# -- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [[], "flow", None, 3])
def test_a_flow_must_be_an_object(data: Any) -> None:
    (found,) = problems_of(data)
    assert found["flow"] == ""
    assert "JSON object" in found["problem"]


def test_the_name_must_be_a_string() -> None:
    assert "no 'name'" in problem(problems_of({"nodes": [node("a")]}), flow="")
    assert "non-empty string" in problem(problems_of({"name": 3, "nodes": [node("a")]}), flow="")


def test_nodes_must_be_a_non_empty_list() -> None:
    assert "list of nodes" in problem(problems_of({"name": "f"}), flow="f")
    assert "list of nodes" in problem(problems_of({"name": "f", "nodes": {}}), flow="f")
    assert problem(problems_of({"name": "f", "nodes": []}), flow="f") == "has no nodes"
    assert "list of edges" in problem(problems_of({**flow(node("a")), "edges": {}}), flow="test")


def test_unknown_keys_are_rejected_by_name() -> None:
    found = problems_of(
        {
            **flow(node("a", colour="red"), node("b"), edges=[{**edge("a", "b"), "weight": 2}]),
            "extra": 1,
        }
    )
    assert problem(found, flow="test") == "unknown key 'extra'"
    assert problem(found, node="a") == "unknown key 'colour'"
    assert problem(found, edge="a->b") == "unknown key 'weight'"


def test_a_node_needs_a_string_id_and_a_unique_one() -> None:
    found = problems_of(
        flow(
            node("a"),
            {"type": f"{NODES}:noop"},
            {"id": 7, "type": "http", "config": {"url": "u"}},
            node("a"),
            5,
        )
    )
    assert "'id'" in problem(found, node="nodes[1]")
    assert "'id'" in problem(found, node="nodes[2]")
    assert problem(found, node="a") == "duplicate id: nodes[0] and nodes[3]"
    assert "JSON object" in problem(found, node="nodes[4]")


def test_unknown_types_name_their_node() -> None:
    found = problems_of(
        flow(
            node("builtin_like", type="httpx"),
            {"id": "no_type"},
            {"id": "module", "type": "graphs.no_such_module:f"},
            {"id": "attribute", "type": f"{NODES}:no_such_function"},
            {"id": "syntax", "type": "a b:c"},
            node("value", "not_callable"),
            node("none", "no_arguments"),
            node("three", "too_many"),
            node("generator", "generator"),
        )
    )
    assert problem(found, node="builtin_like").startswith("unknown type 'httpx'")
    assert "'type'" in problem(found, node="no_type")
    assert problem(found, node="module") == (
        "unknown type 'graphs.no_such_module:f': No module named 'graphs.no_such_module'"
    )
    assert problem(found, node="attribute").startswith(
        f"unknown type '{NODES}:no_such_function': module '{NODES}' has no attribute"
    )
    assert problem(found, node="syntax").startswith("unknown type 'a b:c'")
    assert "is not callable" in problem(found, node="value")
    assert "f(input) or f(input, config)" in problem(found, node="none")
    assert "f(input) or f(input, config)" in problem(found, node="three")
    assert "generator function" in problem(found, node="generator")
    assert len(found) == 9


def test_without_resolve_only_the_type_syntax_is_checked() -> None:
    parsed = parse_flow(flow({"id": "a", "type": "not_installed.module:run"}), resolve=False)
    assert parsed.nodes[0].function is None
    assert not parsed.resolved
    assert "unknown type" in problem(
        problems_of(flow({"id": "a", "type": "nocolon"}), resolve=False), node="a"
    )
    with pytest.raises(ValueError, match="resolve=False"):
        run_flow_sync(parsed, 1)


@pytest.mark.parametrize("timeout", [0, -1, "5", True, None])
def test_timeout_must_be_a_positive_number(timeout: Any) -> None:
    data = flow({**node("a"), "timeout": timeout})
    if timeout is None:  # null: no timeout
        assert parse_flow(data).nodes[0].timeout is None
    else:
        assert "'timeout'" in problem(problems_of(data), node="a")


@pytest.mark.parametrize("max_attempts", [0, -2, 1.5, "2", True])
def test_max_attempts_must_be_an_integer_of_at_least_one(max_attempts: Any) -> None:
    found = problems_of(flow(node("a", max_attempts=max_attempts)))
    assert "'max_attempts'" in problem(found, node="a")


def test_edges_must_join_existing_nodes() -> None:
    found = problems_of(
        flow(
            node("a"), node("b"), edges=[edge("a", "ghost"), edge("phantom", "b"), {"from": "a"}, 3]
        )
    )
    assert problem(found, edge="a->ghost") == "'to' names a missing node 'ghost'"
    assert problem(found, edge="phantom->b") == "'from' names a missing node 'phantom'"
    assert "'to'" in problem(found, edge="edges[2]")
    assert "JSON object" in problem(found, edge="edges[3]")


def test_a_duplicate_edge_is_rejected() -> None:
    found = problems_of(flow(node("a"), node("b"), edges=[edge("a", "b"), edge("a", "b")]))
    assert problem(found, edge="a->b") == "duplicate edge"


def test_a_cycle_names_a_node_on_it() -> None:
    found = problems_of(
        flow(
            node("a"),
            node("b"),
            node("c"),
            node("d"),
            edges=[edge("a", "b"), edge("b", "c"), edge("c", "b"), edge("d", "d")],
        )
    )
    assert problem(found, node="b") == "is on a cycle: b -> c -> b"
    assert "is on a cycle: d -> d" in [p["problem"] for p in found if p["node"] == "d"]
    assert all("node" in p for p in found)


def test_nodes_reachable_only_from_a_cycle_are_unreachable() -> None:
    found = problems_of(
        flow(
            node("a"),
            node("b"),
            node("c"),
            node("d"),
            edges=[edge("b", "c"), edge("c", "b"), edge("c", "d")],
        )
    )
    assert "cycle" in next(p for p in found if p["node"] == "b")["problem"]
    unreachable = sorted(p["node"] for p in found if "unreachable" in p["problem"])
    assert unreachable == ["b", "c", "d"]


def test_a_condition_must_parse() -> None:
    found = problems_of(
        flow(node("a"), node("b"), node("c"), edges=[edge("a", "b", "foo[?"), edge("a", "c", "")])
    )
    assert problem(found, edge="a->b").startswith("condition 'foo[?' does not parse: ")
    assert problem(found, edge="a->c").startswith("condition '' does not parse: ")
    assert "'condition'" in problem(
        problems_of(flow(node("a"), node("b"), edges=[{**edge("a", "b"), "condition": 1}])),
        edge="a->b",
    )


def test_builtin_configs_are_checked() -> None:
    found = problems_of(
        flow(
            {"id": "no_url", "type": "http"},
            {"id": "bad_method", "type": "http", "config": {"url": "http://x", "method": "FETCH"}},
            {"id": "bad_key", "type": "http", "config": {"url": "http://x", "body": 1}},
            {"id": "no_graph", "type": "graph", "config": {}},
            {"id": "graph_not_string", "type": "graph", "config": {"graph": 3}},
            {"id": "config_list", "type": "graph", "config": []},
        )
    )
    assert "'url'" in problem(found, node="no_url")
    assert "'method'" in problem(found, node="bad_method")
    assert problem(found, node="bad_key") == "unknown config key 'body'"
    assert "'graph'" in problem(found, node="no_graph")
    assert "'graph'" in problem(found, node="graph_not_string")
    assert any(
        "'config' must be an object" in p["problem"] for p in found if p["node"] == "config_list"
    )


def test_every_problem_is_reported_at_once() -> None:
    data = {
        "name": "many",
        "nodes": [node("a"), node("a"), {"id": "b", "type": "nope"}, node("c", timeout=0)],
        "edges": [edge("a", "zz", "[["), edge("c", "c")],
        "version": 2,
    }
    found = problems_of(data)
    where = {next(f"{k}={v}" for k, v in p.items() if k != "problem") for p in found}
    assert where == {"flow=many", "node=a", "node=b", "node=c", "edge=a->zz"}
    assert len(found) >= 7  # duplicate, type, timeout, missing node, condition, cycle, key
    message = str(FlowInvalid(found))
    assert message.startswith("invalid flow: ") and f"(and {len(found) - 1} more)" in message


def test_a_valid_flow_knows_its_shape() -> None:
    parsed = parse_flow(
        flow(
            node("d"),
            node("a"),
            node("b"),
            node("c"),
            edges=[edge("a", "b"), edge("a", "c"), edge("b", "d"), edge("c", "d")],
        )
    )
    assert parsed.name == "test"
    assert [n.id for n in parsed.nodes] == ["d", "a", "b", "c"]
    assert parsed.order == ("a", "b", "c", "d")
    assert parsed.roots == ("a",)
    assert parsed.sinks == ("d",)
    assert parsed.upstream["d"] == ("b", "c")
    assert parsed.downstream["a"] == ("b", "c")
    assert [e.name for e in parsed.edges] == ["a->b", "a->c", "b->d", "c->d"]


# -- running -----------------------------------------------------------------------------------


def test_a_chain_passes_each_output_on() -> None:
    parsed = parse_flow(
        flow(
            node("one", "double"),
            node("two", "add", config={"add": 3}),
            node("three", "async_double"),
            edges=[edge("one", "two"), edge("two", "three")],
        )
    )
    run = run_flow_sync(parsed, 5)
    assert run.output == 26
    nodes = run.record["nodes"]
    assert [nodes[n]["output"] for n in ("one", "two", "three")] == [10, 13, 26]
    for entry in nodes.values():
        assert entry["status"] == "completed"
        assert entry["attempts"] == 1 and entry["error"] is None
        assert isinstance(entry["started_at"], float) and entry["duration_ms"] >= 0
    json.dumps(run.record)  # JSON as it is


def test_a_condition_takes_one_branch_and_skipping_propagates() -> None:
    parsed = parse_flow(
        flow(
            node("classify", "classify"),
            node("big", "tag", config={"tag": "big"}),
            node("small", "tag", config={"tag": "small"}),
            node("after_big", "noop"),
            edges=[
                edge("classify", "big", "size == 'big'"),
                edge("classify", "small", "size == 'small'"),
                edge("big", "after_big"),
            ],
        )
    )
    run = run_flow_sync(parsed, 3)
    statuses = {k: v["status"] for k, v in run.record["nodes"].items()}
    assert statuses == {
        "classify": "completed",
        "big": "skipped",
        "small": "completed",
        "after_big": "skipped",
    }
    assert run.output == {
        "tag": "small",
        "input": {"size": "small", "value": 3},
    }  # the one sink that ran
    assert run_flow_sync(parsed, 30).output == {"tag": "big", "input": {"size": "big", "value": 30}}


@pytest.mark.parametrize(
    ("condition", "taken"),
    [
        ("value", True),
        ("`0`", True),
        ("`false`", False),
        ("missing", False),
        ("`[]`", False),
        ("`{}`", False),
        ("''", False),
        ("`[0]`", True),
    ],
)
def test_conditions_follow_jmespath_truthiness(condition: str, taken: bool) -> None:
    parsed = parse_flow(flow(node("a"), node("b"), edges=[edge("a", "b", condition)]))
    run = run_flow_sync(parsed, {"value": 0})
    assert run.record["nodes"]["b"]["status"] == ("completed" if taken else "skipped")
    assert run.output == ({"value": 0} if taken else None)


def test_fan_in_gets_the_outputs_of_the_upstreams_that_ran() -> None:
    parsed = parse_flow(
        flow(
            node("start"),
            node("left", "double"),
            node("right", "add"),
            node("never", "boom"),
            node("join"),
            edges=[
                edge("start", "left"),
                edge("start", "right"),
                edge("start", "never", "`false`"),
                edge("left", "join"),
                edge("right", "join"),
                edge("never", "join"),
            ],
        )
    )
    run = run_flow_sync(parsed, 4)
    assert run.output == {"left": 8, "right": 5}
    assert run.record["nodes"]["never"]["status"] == "skipped"


def test_several_sinks_make_a_dict_and_no_sink_none() -> None:
    parsed = parse_flow(
        flow(
            node("a"), node("b", "double"), node("c", "add"), edges=[edge("a", "b"), edge("a", "c")]
        )
    )
    assert run_flow_sync(parsed, 1).output == {"b": 2, "c": 2}
    skipped = parse_flow(flow(node("a"), node("b"), edges=[edge("a", "b", "`null`")]))
    assert run_flow_sync(skipped, 1).output is None
    roots = parse_flow(flow(node("x", "double"), node("y", "async_double")))
    assert run_flow_sync(roots, 2).output == {"x": 4, "y": 4}


def test_independent_async_branches_run_concurrently() -> None:
    parsed = parse_flow(
        flow(
            node("start"),
            node("one", "sleep", config={"seconds": 0.2}),
            node("two", "sleep", config={"seconds": 0.2}),
            node("join"),
            edges=[
                edge("start", "one"),
                edge("start", "two"),
                edge("one", "join"),
                edge("two", "join"),
            ],
        )
    )
    began = time.monotonic()
    run = run_flow_sync(parsed, "x")
    elapsed = time.monotonic() - began
    assert run.output == {"one": "x", "two": "x"}
    assert elapsed < 0.35, elapsed  # one after the other would be 0.4 s


def test_callables_are_called_with_or_without_config() -> None:
    parsed = parse_flow(
        flow(
            node("a", "async_callable"),
            node("b", "tag", config={"tag": "t"}),
            edges=[edge("a", "b")],
        )
    )
    assert parsed.nodes[0].is_async and not parsed.nodes[0].takes_config
    assert not parsed.nodes[1].is_async and parsed.nodes[1].takes_config
    assert run_flow_sync(parsed, 1).output == {"tag": "t", "input": {"called": 1}}


def test_a_node_is_retried_up_to_max_attempts() -> None:
    key = f"retry-{time.monotonic_ns()}"
    parsed = parse_flow(flow(node("a", "flaky", config={"key": key}, max_attempts=2)))
    run = run_flow_sync(parsed, "in")
    assert run.output == {"calls": 2, "input": "in"}
    assert run.record["nodes"]["a"]["attempts"] == 2
    assert run.record["nodes"]["a"]["status"] == "completed"


def test_a_node_failing_every_attempt_fails_the_flow() -> None:
    parsed = parse_flow(
        flow(
            node("a"),
            node("bad", "boom", max_attempts=3),
            node("after"),
            edges=[edge("a", "bad"), edge("bad", "after")],
        )
    )
    with pytest.raises(FlowFailed) as caught:
        run_flow_sync(parsed, 1)
    failed = caught.value
    assert (failed.node_id, failed.error_type, failed.message) == ("bad", "ValueError", "boom on 1")
    assert str(failed) == "flow node 'bad' failed: ValueError: boom on 1"
    assert isinstance(failed.__cause__, ValueError)
    nodes = failed.record["nodes"]
    assert nodes["bad"]["status"] == "failed"
    assert nodes["bad"]["attempts"] == 3
    assert nodes["bad"]["error"] == {"type": "ValueError", "message": "boom on 1"}
    assert nodes["a"]["status"] == "completed"
    assert nodes["after"]["status"] == "pending"
    json.dumps(failed.record)


def test_a_failing_node_cancels_the_running_ones() -> None:
    parsed = parse_flow(
        flow(
            node("bad", "async_boom", config={"after": 0.05}),
            node("slow", "sleep", config={"seconds": 30}),
            node("after_slow"),
            edges=[edge("slow", "after_slow")],
        )
    )
    began = time.monotonic()
    with pytest.raises(FlowFailed) as caught:
        run_flow_sync(parsed, None)
    assert time.monotonic() - began < 5
    nodes = caught.value.record["nodes"]
    assert caught.value.node_id == "bad"
    assert (nodes["bad"]["status"], nodes["slow"]["status"], nodes["after_slow"]["status"]) == (
        "failed",
        "cancelled",
        "pending",
    )
    assert nodes["bad"]["error"] == {"type": "RuntimeError", "message": "async boom"}


def test_a_sync_node_returning_an_awaitable_fails() -> None:
    parsed = parse_flow(flow(node("a", "returns_coroutine")))
    with pytest.raises(FlowFailed, match="make it 'async def'"):
        run_flow_sync(parsed, 1)


def test_an_async_node_times_out() -> None:
    parsed = parse_flow(
        flow(node("slow", "sleep", config={"seconds": 30}, timeout=0.05, max_attempts=2))
    )
    began = time.monotonic()
    with pytest.raises(FlowFailed) as caught:
        run_flow_sync(parsed, None)
    assert time.monotonic() - began < 5
    assert (caught.value.error_type, caught.value.message) == (
        "TimeoutError",
        "timed out after 0.05 s",
    )
    assert caught.value.record["nodes"]["slow"]["attempts"] == 2


def test_a_condition_that_raises_fails_its_target() -> None:
    parsed = parse_flow(flow(node("a"), node("b"), edges=[edge("a", "b", "length(@) > `1`")]))
    with pytest.raises(FlowFailed) as caught:
        run_flow_sync(parsed, 5)  # length() of a number
    assert caught.value.node_id == "b"
    assert "on edge a->b raised" in caught.value.message


def test_run_flow_sync_uses_a_given_loop() -> None:
    parsed = parse_flow(flow(node("a", "async_double")))
    loop = asyncio.new_event_loop()
    try:
        assert [run_flow_sync(parsed, n, loop=loop).output for n in range(3)] == [0, 2, 4]
        assert loop.run_until_complete(run_flow(parsed, 5)).output == 10
    finally:
        loop.close()


# -- built-ins ---------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    hits: dict[str, int] = {}

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        _Handler.hits[self.path] = _Handler.hits.get(self.path, 0) + 1
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        if self.path == "/text":
            self._send(200, b"plain text", "text/plain; charset=utf-8")
        elif self.path == "/missing":
            self._send(404, b'{"error": "nope"}', "application/json")
        else:
            echo = {
                "method": self.command,
                "path": self.path,
                "body": body,
                "x_test": self.headers.get("x-test"),
            }
            self._send(200, orjson.dumps(echo), "application/json")

    def _send(self, status: int, content: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def http_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_http_node_gets_json_and_posts_its_input(http_url: str) -> None:
    parsed = parse_flow(
        flow(
            {"id": "get", "type": "http", "config": {"url": f"{http_url}/get", "method": "get"}},
            {
                "id": "post",
                "type": "http",
                "config": {"url": f"{http_url}/post", "headers": {"x-test": "yes"}},
            },
            {"id": "text", "type": "http", "config": {"url": f"{http_url}/text", "method": "GET"}},
            edges=[edge("get", "post"), edge("get", "text")],
        )
    )
    run = run_flow_sync(parsed, None)
    got = run.record["nodes"]["get"]["output"]
    assert got["status"] == 200
    assert got["headers"]["content-type"] == "application/json"
    assert got["body"] == {"method": "GET", "path": "/get", "body": None, "x_test": None}
    posted = run.output["post"]["body"]
    assert posted == {"method": "POST", "path": "/post", "body": got, "x_test": "yes"}
    assert run.output["text"]["body"] == "plain text"


def test_http_node_error_status_raises_and_is_retried(http_url: str) -> None:
    _Handler.hits.pop("/missing", None)
    parsed = parse_flow(
        flow(
            {
                "id": "fetch",
                "type": "http",
                "config": {"url": f"{http_url}/missing"},
                "max_attempts": 2,
            }
        )
    )
    with pytest.raises(FlowFailed) as caught:
        run_flow_sync(parsed, None)
    assert caught.value.error_type == "HTTPStatusError"
    assert "answered 404" in caught.value.message
    assert caught.value.record["nodes"]["fetch"]["attempts"] == 2
    assert _Handler.hits["/missing"] == 2


def test_graph_node_calls_call_graph() -> None:
    calls: list[tuple[str, Any]] = []

    async def call_graph(name: str, graph_input: Any) -> Any:
        calls.append((name, graph_input))
        await asyncio.sleep(0)
        return {"answered_by": name}

    parsed = parse_flow(
        flow(
            node("a", "double"),
            {"id": "sub", "type": "graph", "config": {"graph": "summarise"}},
            edges=[edge("a", "sub")],
        )
    )
    assert run_flow_sync(parsed, 2, call_graph=call_graph).output == {"answered_by": "summarise"}
    assert calls == [("summarise", 4)]
    with pytest.raises(FlowFailed, match="without a call_graph") as caught:
        run_flow_sync(parsed, 2)
    assert caught.value.node_id == "sub"
