"""``parse_flow``: a flow definition (JSON data) to a :class:`Flow`, or ``FlowInvalid`` listing
every problem found, each naming its ``node``, ``edge`` (``"a->b"``) or the ``flow``."""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError

from ..errors import FlowInvalid
from . import topology
from .model import BUILTIN_TYPES, Edge, Flow, Node, NodeKind

FLOW_KEYS = frozenset({"name", "nodes", "edges"})
NODE_KEYS = frozenset({"id", "type", "config", "timeout", "max_attempts"})
EDGE_KEYS = frozenset({"from", "to", "condition"})
CONFIG_KEYS = {
    "http": frozenset({"url", "method", "headers", "json", "timeout"}),
    "graph": frozenset({"graph"}),
}
HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
IMPORT_STRING = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*\Z")


class _Problems:
    def __init__(self) -> None:
        self.found: list[dict[str, str]] = []

    def add(self, where: str, name: str, problem: str) -> None:
        self.found.append({where: name, "problem": problem})


def parse_flow(data: Any, *, resolve: bool = True) -> Flow:
    """Validate a flow definition and build its :class:`Flow`.

    With ``resolve`` (the default) each import-string node type is imported and must be
    callable; without it only its syntax is checked (the server validates flows it does not
    run; the worker processes parse them again with ``resolve=True``). Raises
    :class:`~graphnursery.errors.FlowInvalid` with every problem found.
    """
    if not isinstance(data, dict):
        raise FlowInvalid([{"flow": "", "problem": f"a flow is a JSON object, not {_kind(data)}"}])
    problems = _Problems()
    name = data.get("name")
    label = name if isinstance(name, str) else ""
    if "name" not in data:
        problems.add("flow", label, "has no 'name'")
    elif not isinstance(name, str) or not name:
        kind = "an empty string" if name == "" else _kind(name)
        problems.add("flow", label, f"'name' must be a non-empty string, not {kind}")
    for key in data:
        if key not in FLOW_KEYS:
            problems.add("flow", label, f"unknown key {key!r}")
    raw_nodes = data.get("nodes")
    if not isinstance(raw_nodes, list):
        what = "has no 'nodes'" if "nodes" not in data else f"'nodes' is {_kind(raw_nodes)}"
        problems.add("flow", label, f"{what}: it must be a list of nodes")
        raw_nodes = []
    elif not raw_nodes:
        problems.add("flow", label, "has no nodes")
    raw_edges = data.get("edges", [])
    if not isinstance(raw_edges, list):
        problems.add("flow", label, f"'edges' is {_kind(raw_edges)}: it must be a list of edges")
        raw_edges = []

    ids: dict[str, int] = {}  # every node id, with the index of its first node
    nodes = [_node(n, raw, ids, resolve, problems) for n, raw in enumerate(raw_nodes)]
    edges: list[Edge | None] = []
    seen_edges: set[tuple[str, str]] = set()
    for n, raw in enumerate(raw_edges):
        edge = _edge(n, raw, ids, problems)
        if edge is not None and (edge.source, edge.target) in seen_edges:
            problems.add("edge", edge.name, "duplicate edge")
            edge = None
        elif edge is not None:
            seen_edges.add((edge.source, edge.target))
        edges.append(edge)
    _check_graph(list(ids), [e for e in edges if e is not None], problems)
    if problems.found:
        raise FlowInvalid(problems.found)
    return Flow(
        name=label,
        nodes=tuple(node for node in nodes if node is not None),
        edges=tuple(edge for edge in edges if edge is not None),
    )


def _node(
    index: int, raw: Any, ids: dict[str, int], resolve: bool, problems: _Problems
) -> Node | None:
    """The node, or None if it has a problem (its id is still recorded, for the edges)."""
    if not isinstance(raw, dict):
        problems.add("node", f"nodes[{index}]", f"a node is a JSON object, not {_kind(raw)}")
        return None
    node_id = raw.get("id")
    if not isinstance(node_id, str) or not node_id:
        problems.add("node", f"nodes[{index}]", "a node needs an 'id', a non-empty string")
        node_id = f"nodes[{index}]"
    elif node_id in ids:
        first = ids[node_id]
        problems.add("node", node_id, f"duplicate id: nodes[{first}] and nodes[{index}]")
        return None
    else:
        ids[node_id] = index
    before = len(problems.found)
    for key in raw:
        if key not in NODE_KEYS:
            problems.add("node", node_id, f"unknown key {key!r}")
    timeout = raw.get("timeout")
    if timeout is not None and not (_is_number(timeout) and timeout > 0):
        problems.add("node", node_id, f"'timeout' must be a number of seconds > 0, not {timeout!r}")
    max_attempts = raw.get("max_attempts", 1)
    if not (isinstance(max_attempts, int) and not isinstance(max_attempts, bool)) or (
        max_attempts < 1
    ):
        problems.add(
            "node", node_id, f"'max_attempts' must be an integer >= 1, not {max_attempts!r}"
        )
    config = raw.get("config", {})
    if not isinstance(config, dict):
        problems.add("node", node_id, f"'config' must be an object, not {_kind(config)}")
        config = {}
    config = dict(config)  # a copy: built-in configs are normalised, the caller's data is not
    node_type = raw.get("type")
    kind: NodeKind = "python"
    resolved: tuple[Callable[..., Any], bool, bool] | None = None
    if not isinstance(node_type, str):
        problems.add(
            "node", node_id, "a node needs a 'type': 'http', 'graph' or 'package.module:function'"
        )
    elif node_type in BUILTIN_TYPES:
        kind = "http" if node_type == "http" else "graph"
        for problem in _builtin_config(node_type, config):
            problems.add("node", node_id, problem)
    elif not IMPORT_STRING.match(node_type):
        problems.add(
            "node",
            node_id,
            f"unknown type {node_type!r}: not a built-in "
            f"({', '.join(sorted(BUILTIN_TYPES))}) nor 'package.module:function'",
        )
    elif resolve:
        try:
            resolved = _resolve(node_type)
        except _Unresolved as error:
            problems.add("node", node_id, str(error))
    if len(problems.found) > before:
        return None
    function, is_async, takes_config = resolved or (None, kind != "python", True)
    return Node(
        id=node_id,
        type=str(node_type),
        config=config,
        timeout=float(timeout) if timeout is not None else None,
        max_attempts=max_attempts,
        kind=kind,
        function=function,
        is_async=is_async,
        takes_config=takes_config,
    )


class _Unresolved(Exception):
    pass


def _resolve(node_type: str) -> tuple[Callable[..., Any], bool, bool]:
    """Import a node type: (function, is_async, takes_config), decided here once."""
    module_name, _, attr = node_type.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as error:
        raise _Unresolved(f"unknown type {node_type!r}: {error}") from None
    except Exception as error:  # the module itself raised while importing
        raise _Unresolved(
            f"unknown type {node_type!r}: importing it raised {type(error).__name__}: {error}"
        ) from None
    if not callable(found):
        raise _Unresolved(f"type {node_type!r} is not callable (it is {_kind(found)})")
    if inspect.isgeneratorfunction(found) or inspect.isasyncgenfunction(found):
        raise _Unresolved(f"type {node_type!r} is a generator function: a node returns its output")
    # An object whose __call__ is async is an async node too.
    is_async = inspect.iscoroutinefunction(found) or inspect.iscoroutinefunction(
        type(found).__call__
    )
    try:
        parameters = list(inspect.signature(found).parameters.values())
    except (TypeError, ValueError):  # no signature to read (some C callables): pass both
        return found, is_async, True
    if any(p.kind is p.VAR_POSITIONAL for p in parameters):
        return found, is_async, True
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in parameters if p.default is p.empty and p.kind is not p.VAR_KEYWORD]
    if not positional or len(required) > 2 or any(p.kind is p.KEYWORD_ONLY for p in required):
        raise _Unresolved(
            f"type {node_type!r} must be callable as f(input) or f(input, config), "
            f"not f{inspect.signature(found)}"
        )
    return found, is_async, len(positional) >= 2


def _builtin_config(node_type: str, config: dict[str, Any]) -> list[str]:
    found = [f"unknown config key {key!r}" for key in config if key not in CONFIG_KEYS[node_type]]
    if node_type == "graph":
        if not isinstance(config.get("graph"), str) or not config["graph"]:
            found.append("a 'graph' node needs config 'graph', the name of the graph to call")
        return found
    if not isinstance(config.get("url"), str) or not config["url"]:
        found.append("an 'http' node needs config 'url', a string")
    method = config.get("method")
    if method is not None and (not isinstance(method, str) or method.upper() not in HTTP_METHODS):
        found.append(f"config 'method' must be one of {', '.join(sorted(HTTP_METHODS))}")
    elif method is not None:
        config["method"] = method.upper()
    headers = config.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        found.append("config 'headers' must be an object of strings")
    timeout = config.get("timeout")
    if timeout is not None and not (_is_number(timeout) and timeout > 0):
        found.append(f"config 'timeout' must be a number of seconds > 0, not {timeout!r}")
    return found


def _edge(index: int, raw: Any, ids: dict[str, int], problems: _Problems) -> Edge | None:
    if not isinstance(raw, dict):
        problems.add("edge", f"edges[{index}]", f"an edge is a JSON object, not {_kind(raw)}")
        return None
    source, target = raw.get("from"), raw.get("to")
    ends_ok = isinstance(source, str) and isinstance(target, str)
    name = f"{source}->{target}" if ends_ok else f"edges[{index}]"
    before = len(problems.found)
    for end, value in (("from", source), ("to", target)):
        if not isinstance(value, str):
            problems.add("edge", name, f"an edge needs '{end}', a node id")
        elif value not in ids:
            problems.add("edge", name, f"'{end}' names a missing node {value!r}")
    for key in raw:
        if key not in EDGE_KEYS:
            problems.add("edge", name, f"unknown key {key!r}")
    condition = raw.get("condition")
    test = None
    if condition is not None:
        if not isinstance(condition, str):
            problems.add(
                "edge", name, f"'condition' must be a JMESPath string, not {_kind(condition)}"
            )
        else:
            try:
                test = jmespath.compile(condition)
            except JMESPathError as error:
                message = " ".join(str(error).split())
                problems.add("edge", name, f"condition {condition!r} does not parse: {message}")
    if len(problems.found) > before:
        return None
    assert isinstance(source, str) and isinstance(target, str)
    return Edge(source=source, target=target, condition=condition, test=test)


def _check_graph(ids: list[str], edges: list[Edge], problems: _Problems) -> None:
    """Cycles, and nodes no root reaches (only a cycle leads to them)."""
    downstream: dict[str, list[str]] = {node_id: [] for node_id in ids}
    has_upstream: set[str] = set()
    for edge in edges:
        downstream[edge.source].append(edge.target)
        has_upstream.add(edge.target)
    for cycle in topology.cycles(ids, downstream):
        problems.add("node", cycle[0], f"is on a cycle: {' -> '.join(cycle)}")
    roots = [node_id for node_id in ids if node_id not in has_upstream]
    for node_id in topology.unreachable(ids, roots, downstream):
        problems.add(
            "node",
            node_id,
            "is unreachable: no path from a root (a node with no incoming "
            "edges) leads to it, only a cycle does",
        )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    """A value's kind in JSON words, for messages."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), f"a {type(value).__name__}")
