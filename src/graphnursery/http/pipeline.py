"""The one request pipeline: what every request and answer goes through, whoever serves it.

Two things answer requests: the Quart app, and the ASGI layer in front of it (``front.py``:
the hot job routes' fast path, and bodies announced over the limit). Both call the same
:class:`Pipeline` for the request id, the API-key check, reading the body (its size limit and
its timeout), the request metric and the error answer, so they cannot drift apart. The
Quart side is wired in by :func:`attach`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import structlog
import trio
from quart import Quart, Response, g, request

from ..auth import ANONYMOUS
from ..config import WORKSPACE_NAME, Config
from ..errors import AuthError
from ..logs import get_logger
from ..metrics import Metrics
from . import caller
from .errors import HttpError, answer_for, body_timed_out, body_too_large, internal_error
from .parsing import Headers, Params

log = get_logger("graphnursery.http")

REQUEST_ID_HEADER = "X-Request-ID"
VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
#: Paths answered without an API key: probes and the API's description.
OPEN_PATHS = frozenset({"/health", "/live", "/ready", "/ok", "/openapi.json", "/docs"})
#: Where ``/docs`` loads Swagger UI's script and style from (open too: ``/docs`` needs them).
DOCS_ASSETS = "/docs/static"

Answer = tuple[int, bytes, dict[str, str]]


class ReceivedBody:
    """An ASGI ``receive`` as the body's chunks (what :meth:`Pipeline.read_body` reads)."""

    __slots__ = ("_ended", "_receive")

    def __init__(self, receive: Any) -> None:
        self._receive = receive
        self._ended = False

    def __aiter__(self) -> ReceivedBody:
        return self

    async def __anext__(self) -> bytes:
        if self._ended:
            raise StopAsyncIteration
        message = await self._receive()
        if message["type"] == "http.disconnect":
            raise StopAsyncIteration
        self._ended = not message.get("more_body", False)
        chunk: bytes = message.get("body", b"")
        return chunk


class Pipeline:
    """Per-request concerns, the same for every path that answers (see the module doc)."""

    def __init__(self, config: Config, metrics: Metrics) -> None:
        self._auth = config.authenticator()
        self._open_paths = OPEN_PATHS | ({"/metrics"} if config.metrics_public else set())
        self._max_body_bytes = config.max_body_bytes
        self._body_timeout = config.body_timeout
        self._requests = metrics.http_requests

    def request_id(self, headers: Params) -> str:
        """The client's ``X-Request-ID`` when it is a sane one, else a new id; log lines
        written while answering carry it."""
        supplied = headers.get(REQUEST_ID_HEADER)
        request_id = (
            supplied if supplied and VALID_REQUEST_ID.fullmatch(supplied) else uuid.uuid4().hex
        )
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        return request_id

    async def authorize(self, headers: Headers, path: str) -> None:
        """Who is calling (see ``auth``), for the handlers (``caller``): 401 unless nothing
        is configured, ``path`` is open, or a configured key or a valid JWT is presented."""
        caller.set_caller(ANONYMOUS)
        if not self._auth.enabled or path in self._open_paths:
            return
        if path.startswith(DOCS_ASSETS + "/"):
            return
        if len(headers.getlist("Authorization")) > 1:  # which one counts is ambiguous
            raise HttpError(
                400,
                "invalid_header",
                "Authorization: send it once",
                [{"field": "Authorization", "message": "sent more than once", "type": "header"}],
            )
        authorization, api_key = headers.get("Authorization"), headers.get("x-api-key")
        try:
            if self._auth.needs_thread:  # a JWKS may be read (a file, a URL): not here
                who = await trio.to_thread.run_sync(self._auth.authenticate, authorization, api_key)
            else:
                who = self._auth.authenticate(authorization, api_key)
        except AuthError as exc:
            if exc.reason == "jwks_unavailable":
                raise HttpError(503, "unavailable", exc.message) from None
            which = [{"field": "Authorization", "message": exc.message, "type": exc.reason}]
            raise HttpError(
                401, "unauthorized", exc.message, which, headers={"WWW-Authenticate": "Bearer"}
            ) from None
        if not WORKSPACE_NAME.fullmatch(who.workspace):  # a JWT's claim: kept apart by it
            raise HttpError(
                401,
                "unauthorized",
                "the token's workspace is not a workspace name (letters, digits, '.', '_', '-')",
                headers={"WWW-Authenticate": "Bearer"},
            )
        caller.set_caller(who)

    async def read_body(self, chunks: AsyncIterator[bytes]) -> bytes:
        """The request body: 413 past ``max_body_bytes``, 408 if it takes longer than
        ``body_timeout`` to arrive."""
        with trio.move_on_after(self._body_timeout):
            return await self._gather(chunks)
        raise body_timed_out(self._body_timeout)

    async def _gather(self, chunks: AsyncIterator[bytes]) -> bytes:
        parts: list[bytes] = []
        size = 0
        async for chunk in chunks:
            size += len(chunk)
            if size > self._max_body_bytes:
                raise body_too_large()
            parts.append(chunk)
        return b"".join(parts)

    def record(self, method: str, route: str, status: int) -> None:
        """Count an answer (``route`` is the route's rule, ``unmatched`` when none)."""
        self._requests.labels(method, route, str(status)).inc()

    def answer_error(self, error: Exception) -> Answer:
        """The answer to an error raised while serving a request: the status, the JSON body
        and the extra headers. An error nobody mapped is logged and answered 500."""
        answer = answer_for(error)
        if answer is None:
            log.error("unhandled error answering a request", exc_info=error)
            answer = internal_error()
        return answer.status, answer.body(), answer.headers


def attach(app: Quart, pipeline: Pipeline) -> None:
    """Run the Quart app's requests through ``pipeline``: hooks and its one error handler."""

    @app.before_request
    async def begin() -> None:
        g.request_id = pipeline.request_id(request.headers)
        await pipeline.authorize(request.headers, request.path)

    @app.after_request
    async def finish(response: Response) -> Response:
        request_id = getattr(g, "request_id", None)
        if request_id is not None:
            response.headers[REQUEST_ID_HEADER] = request_id
        rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
        pipeline.record(request.method, rule, response.status_code)
        return response

    @app.errorhandler(Exception)
    async def answer_error(error: Exception) -> Response:
        status, body, headers = pipeline.answer_error(error)
        return Response(body, status=status, headers=headers, content_type="application/json")
