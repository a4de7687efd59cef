"""The interpreter: ``run_flow`` (asyncio) and ``run_flow_sync``.

Roots get the flow's input; a node with one upstream gets its output, a node with several a
dict ``{upstream_id: output}`` of those whose edge to it was taken. A node runs once every
upstream has settled, if at least one incoming edge was taken; otherwise it is skipped, and
that settles it for its own downstream.

Sync node functions are called directly, on the event loop's thread, by whoever settled
their last upstream (no task, no thread: a node costs microseconds). So a sync node holds the
loop while it runs and its ``timeout`` cannot interrupt it: only the job's timeout, which
kills the worker process, stops a sync node that hangs. Async nodes (and the built-ins) run
as tasks, concurrently, each under its ``timeout``. A node that raises is retried at once,
up to ``max_attempts`` tries; a node that fails them all fails the flow: the running nodes
are cancelled (their status ``cancelled``; those never started stay ``pending``) and
``run_flow`` raises :class:`FlowFailed`, its ``record`` as far as the run got.

Nodes share their outputs with every downstream node (not copied): a node must not change
its input.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from ..errors import GraphNurseryError
from .builtins import CallGraph, call_graph_node, http_request, new_http_client
from .model import Edge, Flow, Node, truthy

if TYPE_CHECKING:
    import httpx


class FlowFailed(GraphNurseryError):
    """A node failed (after its ``max_attempts``): ``node_id``, the exception's type name
    ``error_type`` and ``message``, and the run ``record`` as far as it got."""

    def __init__(self, node_id: str, error_type: str, message: str, record: dict[str, Any]):
        self.node_id = node_id
        self.error_type = error_type
        self.message = message
        self.record = record
        super().__init__(f"flow node {node_id!r} failed: {error_type}: {message}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.node_id, self.error_type, self.message, self.record))


@dataclass(frozen=True)
class FlowRun:
    """A completed run: the flow's ``output`` and its ``record``::

    {"nodes": {id: {"status", "output", "error", "attempts", "started_at", "duration_ms"}}}

    ``output`` is the output of the one sink that ran, or ``{sink_id: output}`` when several
    did (skipped sinks are left out; None when none ran).
    """

    output: Any
    record: dict[str, Any]


async def run_flow(
    flow: Flow,
    flow_input: Any,
    *,
    call_graph: CallGraph | None = None,
    http_client: httpx.AsyncClient | None = None,
) -> FlowRun:
    """Run ``flow`` on ``flow_input``. ``graph`` nodes call ``await call_graph(name, input)``;
    ``http`` nodes use ``http_client``, or one client made for this run (closed at its end).
    Raises :class:`FlowFailed` when a node fails; cancelling the call cancels its nodes."""
    if not flow.resolved:
        raise ValueError(f"flow {flow.name!r} was parsed with resolve=False: it cannot run")
    run = _Run(flow, flow_input, call_graph, http_client)
    try:
        await run.run()
    finally:
        if run.own_client is not None:
            await run.own_client.aclose()
    return FlowRun(run.output(), run.record)


def run_flow_sync(
    flow: Flow,
    flow_input: Any,
    *,
    call_graph: CallGraph | None = None,
    http_client: httpx.AsyncClient | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
) -> FlowRun:
    """:func:`run_flow` from sync code: on ``loop`` (``run_until_complete``: a loop kept
    across runs, as a worker process keeps one) or in a new one (``asyncio.run``)."""
    running = run_flow(flow, flow_input, call_graph=call_graph, http_client=http_client)
    if loop is not None:
        return loop.run_until_complete(running)
    return asyncio.run(running)


class _NodeFailed(Exception):
    """A node failed for good; the run's ``failure`` says which and why."""


class _Run:
    """One run's state. Everything here happens on the loop's thread, between awaits."""

    def __init__(
        self,
        flow: Flow,
        flow_input: Any,
        call_graph: CallGraph | None,
        http_client: httpx.AsyncClient | None,
    ) -> None:
        self.flow = flow
        self.input = flow_input
        self.call_graph = call_graph
        self.client = http_client
        self.own_client: httpx.AsyncClient | None = None
        self.nodes: dict[str, dict[str, Any]] = {
            node_id: {
                "status": "pending",
                "output": None,
                "error": None,
                "attempts": 0,
                "started_at": None,
                "duration_ms": None,
            }
            for node_id in flow.order
        }
        self.record: dict[str, Any] = {"nodes": self.nodes}
        self.remaining = {node_id: len(ups) for node_id, ups in flow.upstream.items()}
        self.taken: dict[str, list[str]] = {}  # node id -> upstreams whose edge to it was taken
        self.group: asyncio.TaskGroup | None = None
        self.failure: FlowFailed | None = None
        self.cause: BaseException | None = None

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as self.group:
                for root in self.flow.roots:
                    node = self.flow.by_id[root]
                    if node.is_async:
                        self.group.create_task(self._run_async(node, self.input))
                    else:
                        self._run_sync(node, self.input)
                        self._settle(root)
        except BaseExceptionGroup as errors:
            _, others = errors.split(_NodeFailed)
            if others is not None:
                raise others from None
            assert self.failure is not None
            raise self.failure from self.cause

    def output(self) -> Any:
        ran = [s for s in self.flow.sinks if self.nodes[s]["status"] == "completed"]
        if len(ran) == 1:
            return self.nodes[ran[0]]["output"]
        return {sink: self.nodes[sink]["output"] for sink in ran} if ran else None

    def _settle(self, settled: str) -> None:
        """``settled`` completed or was skipped: take its edges, and start the nodes that
        makes ready; sync ones run here, so a chain of them runs in this one loop."""
        flow, nodes, taken, remaining = self.flow, self.nodes, self.taken, self.remaining
        stack = [settled]
        while stack:
            source = stack.pop()
            record = nodes[source]
            ran = record["status"] == "completed"
            for edge in flow.outgoing[source]:
                target = edge.target
                if ran and (edge.test is None or self._test(edge, record["output"])):
                    taken.setdefault(target, []).append(source)
                left = remaining[target] - 1
                remaining[target] = left
                if left or self.failure is not None:
                    continue
                node = flow.by_id[target]
                sources = taken.get(target)
                if not sources:
                    nodes[target]["status"] = "skipped"
                    stack.append(target)
                    continue
                if len(flow.upstream[target]) == 1:
                    node_input = nodes[sources[0]]["output"]
                else:
                    node_input = {
                        s: nodes[s]["output"] for s in flow.upstream[target] if s in sources
                    }
                if node.is_async:
                    assert self.group is not None
                    self.group.create_task(self._run_async(node, node_input))
                else:
                    self._run_sync(node, node_input)
                    stack.append(target)

    def _test(self, edge: Edge, output: Any) -> bool:
        try:
            return truthy(edge.test.search(output))
        except Exception as error:  # a JMESPath function given the wrong types, say
            # The target fails: it cannot tell whether to run.
            message = f"condition {edge.condition!r} on edge {edge.name} raised: {error}"
            record = self.nodes[edge.target]
            record["status"] = "failed"
            record["error"] = {"type": type(error).__name__, "message": message}
            self._fail(edge.target, type(error).__name__, message, error)

    def _run_sync(self, node: Node, node_input: Any) -> None:
        record = self.nodes[node.id]
        record["started_at"] = time.time()
        began = time.perf_counter()
        function, config, attempt = node.function, node.config, 0
        assert function is not None
        while True:
            attempt += 1
            try:
                output = function(node_input, config) if node.takes_config else function(node_input)
                if hasattr(output, "__await__"):
                    getattr(output, "close", lambda: None)()
                    raise TypeError("the node returned an awaitable: make it 'async def'")
                break
            except Exception as error:
                if attempt < node.max_attempts:
                    continue
                self._finish(record, attempt, began, "failed", error=error)
                self._fail(node.id, type(error).__name__, str(error), error)
        self._finish(record, attempt, began, "completed", output)

    async def _run_async(self, node: Node, node_input: Any) -> None:
        record = self.nodes[node.id]
        record["status"] = "running"
        record["started_at"] = time.time()
        began = time.perf_counter()
        attempt = 0
        try:
            while True:
                attempt += 1
                try:
                    output = await self._attempt(node, node_input)
                    break
                except Exception as error:
                    if attempt < node.max_attempts:
                        continue
                    self._finish(record, attempt, began, "failed", error=error)
                    self._fail(node.id, type(error).__name__, str(error), error)
        except asyncio.CancelledError:
            self._finish(record, attempt, began, "cancelled")
            raise
        self._finish(record, attempt, began, "completed", output)
        self._settle(node.id)

    async def _attempt(self, node: Node, node_input: Any) -> Any:
        if node.timeout is None:
            return await self._call(node, node_input)
        deadline = asyncio.timeout(node.timeout)
        try:
            async with deadline:
                return await self._call(node, node_input)
        except TimeoutError:
            if deadline.expired():
                raise TimeoutError(f"timed out after {node.timeout:g} s") from None
            raise

    def _call(self, node: Node, node_input: Any) -> Awaitable[Any]:
        if node.kind == "python":
            assert node.function is not None
            if node.takes_config:
                return node.function(node_input, node.config)  # type: ignore[no-any-return]
            return node.function(node_input)  # type: ignore[no-any-return]
        if node.kind == "http":
            if self.client is None:
                self.client = self.own_client = new_http_client()
            return http_request(self.client, node_input, node.config)
        return call_graph_node(self.call_graph, node.config["graph"], node_input)

    @staticmethod
    def _finish(
        record: dict[str, Any],
        attempts: int,
        began: float,
        status: str,
        output: Any = None,
        error: BaseException | None = None,
    ) -> None:
        record["status"] = status
        record["output"] = output
        record["error"] = None if error is None else _error(error)
        record["attempts"] = attempts
        record["duration_ms"] = (time.perf_counter() - began) * 1000

    def _fail(self, node_id: str, error_type: str, message: str, cause: BaseException) -> NoReturn:
        if self.failure is None:  # the first failure is the flow's
            self.failure = FlowFailed(node_id, error_type, message, self.record)
            self.cause = cause
        raise _NodeFailed(node_id)


def _error(error: BaseException) -> dict[str, str]:
    return {"type": type(error).__name__, "message": str(error)}
