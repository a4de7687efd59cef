"""An executor that calls the graph in the server's own process: for tests and debugging."""

from __future__ import annotations

from typing import Any

import trio

from . import _worker
from ._emit import StreamSpec
from .errors import GraphLoadError
from .executor import ExecutorStatistics, outcome_from_reply, thread_answer
from .jobs import Outcome


class InlineExecutor:
    """Calls the graph in this process, one job at a time: no isolation and no timeouts.

    For tests of the engine's own timing logic (under Trio's autojump clock, where real
    worker processes would let virtual time race ahead) and for stepping through a graph
    in a debugger. Never for serving.
    """

    def __init__(self, graph: str) -> None:
        self.workers = 1
        self.worker_restarts = 0
        self._running = 0
        _worker.initialize(graph)
        reply = _worker.check_loaded()
        if reply[0] != "ok":
            raise GraphLoadError(graph, *reply[1:])

    async def run(
        self,
        job_input: Any,
        timeout: float,
        trace_context: dict[str, str] | None = None,
        stream: StreamSpec | None = None,
        run: dict[str, Any] | None = None,
    ) -> Outcome:
        await trio.lowlevel.checkpoint()
        reply = _worker.run_job(job_input, trace_context, stream, run)
        return outcome_from_reply(reply, events=_worker.take_events())

    async def thread_op(self, op: str, args: dict[str, Any]) -> bytes:
        await trio.lowlevel.checkpoint()
        return thread_answer(_worker.thread_op(op, args))

    def statistics(self) -> ExecutorStatistics:
        return ExecutorStatistics(workers=1, running=0, idle_workers=1)
