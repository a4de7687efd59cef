"""A flow's parts as :func:`~graphnursery.flows.parse_flow` builds them: ``Node``, ``Edge``
and ``Flow``, all frozen. A ``Flow`` precomputes what running it needs (topological order,
upstream and downstream maps, roots, sinks), so the interpreter only looks things up."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from .topology import topological_order

#: Node types served by graphnursery itself; any other type is an import string
#: ``package.module:function``.
BUILTIN_TYPES = frozenset({"http", "graph"})

NodeKind = Literal["python", "http", "graph"]


def flow_version(data: Any) -> str:
    """A flow definition's version: the first 12 hex digits of the sha256 of its JSON with
    sorted keys, so the same definition has the same version whatever its key order."""
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()[:12]


def truthy(value: Any) -> bool:
    """JMESPath truthiness: false, null and empty strings, lists and objects are false;
    everything else (0 included) is true."""
    if value is None or value is False:
        return False
    if isinstance(value, str | list | dict):
        return len(value) > 0
    return True


@dataclass(frozen=True)
class Node:
    """One step. ``type`` is ``"http"``, ``"graph"`` or an import string; for the latter,
    ``function`` is the imported callable (None when parsed with ``resolve=False``),
    ``is_async`` says whether calling it makes a coroutine, and ``takes_config`` whether it is
    called ``function(input, config)`` rather than ``function(input)``.

    ``timeout`` (seconds) bounds each attempt of an async node or a built-in; a sync function
    runs on the loop's thread and cannot be interrupted, so its ``timeout`` is not enforced
    (the job's timeout, which kills the worker process, is what stops it). ``max_attempts``
    counts tries: a node that raises is retried at once until it has made them all."""

    id: str
    type: str
    config: Mapping[str, Any] = field(default_factory=dict)
    timeout: float | None = None
    max_attempts: int = 1
    kind: NodeKind = "python"
    function: Callable[..., Any] | None = field(default=None, compare=False, repr=False)
    is_async: bool = field(default=False, compare=False, repr=False)
    takes_config: bool = field(default=True, compare=False, repr=False)


@dataclass(frozen=True)
class Edge:
    """``source -> target``, taken when ``condition`` (a JMESPath expression searched in the
    source's output) is truthy, or always when there is none. ``test`` is the compiled
    expression."""

    source: str
    target: str
    condition: str | None = None
    test: Any = field(default=None, compare=False, repr=False)

    @property
    def name(self) -> str:
        return f"{self.source}->{self.target}"

    def taken(self, output: Any) -> bool:
        return self.test is None or truthy(self.test.search(output))


@dataclass(frozen=True)
class Flow:
    """A validated flow. Build one with :func:`~graphnursery.flows.parse_flow`; the derived
    fields are computed here from ``nodes`` and ``edges``, which must form a DAG.

    ``order`` is a topological order (declaration order among equals); ``upstream`` and
    ``downstream`` map every node id to its neighbours' ids, ``outgoing`` to its edges;
    ``roots`` have no incoming edges (they get the flow's input), ``sinks`` no outgoing ones
    (their outputs make the flow's output).
    """

    name: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    order: tuple[str, ...] = field(init=False, repr=False, compare=False)
    upstream: Mapping[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    downstream: Mapping[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    outgoing: Mapping[str, tuple[Edge, ...]] = field(init=False, repr=False, compare=False)
    roots: tuple[str, ...] = field(init=False, repr=False, compare=False)
    sinks: tuple[str, ...] = field(init=False, repr=False, compare=False)
    by_id: Mapping[str, Node] = field(init=False, repr=False, compare=False)
    #: Every import-string node has its function (parsed with ``resolve=True``).
    resolved: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ids = [node.id for node in self.nodes]
        upstream: dict[str, list[str]] = {node_id: [] for node_id in ids}
        outgoing: dict[str, list[Edge]] = {node_id: [] for node_id in ids}
        for edge in self.edges:
            upstream[edge.target].append(edge.source)
            outgoing[edge.source].append(edge)
        order = topological_order(ids, {k: [e.target for e in v] for k, v in outgoing.items()})
        if order is None:
            raise ValueError(f"flow {self.name!r} has a cycle")
        put = object.__setattr__
        put(self, "order", tuple(order))
        put(self, "upstream", {k: tuple(v) for k, v in upstream.items()})
        put(self, "outgoing", {k: tuple(v) for k, v in outgoing.items()})
        put(self, "downstream", {k: tuple(e.target for e in v) for k, v in outgoing.items()})
        put(self, "roots", tuple(node_id for node_id in ids if not upstream[node_id]))
        put(self, "sinks", tuple(node_id for node_id in ids if not outgoing[node_id]))
        put(self, "by_id", {node.id: node for node in self.nodes})
        put(
            self,
            "resolved",
            all(node.function is not None for node in self.nodes if node.kind == "python"),
        )
