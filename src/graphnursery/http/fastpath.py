"""The job routes' hot path, answered below Quart.

``POST /jobs``, ``POST /execute`` and ``GET /jobs/{id}`` carry nearly all of a server's
traffic (and ``POST /runs/wait``, ``/threads/{id}/runs/wait``, a LangGraph client's), and
Quart's per-request machinery (request and response objects, contexts, routing, hooks)
costs more CPU than the rest of a no-op job's path. :class:`FastPath` matches exactly those
routes on the ASGI scope, for the layer in front of Quart (``front.py``) to answer; every
other request goes on to Quart. It is only a transport: what a route does is the same
:class:`~.handlers.JobHandlers` (:class:`~.run_handlers.RunHandlers`) the Quart routes
call, and
everything around it (request id, API key, body limits, metrics, error answers) the same
:class:`~.pipeline.Pipeline`. ``Config.fast_path = False`` turns it off; the acceptance
tests run the API both ways.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from .handlers import JobHandlers, Reply
from .parsing import Params
from .pipeline import Pipeline, ReceivedBody
from .run_handlers import RunHandlers

#: Answers a request below Quart: (scope, receive, headers, *route arguments) -> reply.
Handler = Callable[..., Awaitable[Reply]]
#: A matched request: its route (the metric's label), its handler and the route's arguments.
Match = tuple[str, Handler, tuple[str, ...]]

_JOB_PATH = re.compile(r"/jobs/([^/]+)")
_THREAD_WAIT_PATH = re.compile(r"/threads/([^/]+)/runs/wait")


class FastPath:
    """The three hot job routes, read straight from ASGI."""

    def __init__(self, handlers: JobHandlers, pipeline: Pipeline, runs: RunHandlers) -> None:
        self._handlers = handlers
        self._pipeline = pipeline
        self._runs = runs

    def match(self, method: str, path: str) -> Match | None:
        """The route for this request, if it is one of the three; None otherwise."""
        if method == "POST" and path == "/jobs":
            return path, self._create, ()
        if method == "POST" and path == "/execute":
            return path, self._execute, ()
        if method == "GET" and (found := _JOB_PATH.fullmatch(path)):
            return "/jobs/<job_id>", self._read, (found[1],)
        if method == "POST" and path == "/runs/wait":
            return path, self._wait_run, ()
        if method == "POST" and (found := _THREAD_WAIT_PATH.fullmatch(path)):
            return "/threads/<thread_id>/runs/wait", self._wait_run, (found[1],)
        return None

    async def _wait_run(
        self, scope: dict[str, Any], receive: Any, headers: Params, thread_id: str | None = None
    ) -> Reply:
        body = await self._pipeline.read_body(ReceivedBody(receive))
        return await self._runs.wait(thread_id, body)

    async def _execute(self, scope: dict[str, Any], receive: Any, headers: Params) -> Reply:
        body = await self._pipeline.read_body(ReceivedBody(receive))
        return await self._handlers.execute(headers, body)

    async def _create(self, scope: dict[str, Any], receive: Any, headers: Params) -> Reply:
        body = await self._pipeline.read_body(ReceivedBody(receive))
        return await self._handlers.create(_query(scope), headers, body)

    async def _read(
        self, scope: dict[str, Any], receive: Any, headers: Params, job_id: str
    ) -> Reply:
        return await self._handlers.read(job_id, _query(scope))


def _query(scope: dict[str, Any]) -> dict[str, str]:
    """The query string's parameters (the first value of each)."""
    query = scope.get("query_string", b"")
    if not query:
        return {}
    return {name: values[0] for name, values in parse_qs(query.decode("latin-1")).items()}
