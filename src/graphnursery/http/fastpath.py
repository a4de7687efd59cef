"""The job routes' hot path, answered below Quart.

``POST /jobs``, ``POST /execute`` and ``GET /jobs/{id}`` carry nearly all of a server's
traffic, and Quart's per-request machinery (request and response objects, contexts,
routing, hooks) costs more CPU than the rest of a no-op job's path. This ASGI layer, in
front of the Quart app (as its ``asgi_app``), answers exactly those three routes with the
same code the Quart routes use — body limits, JSON parsing, validation, auth, request ids,
metrics, the engine calls, the job's JSON form and the error answers — and hands every other
request to Quart untouched. ``Config.fast_path = False`` turns it off; the acceptance tests
run the API both ways.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import orjson
import structlog
import trio

from ..config import Config
from ..engine import Engine
from ..logs import get_logger
from ..metrics import Metrics
from .errors import BODY_TOO_LARGE, ApiError, api_error_for, body_timed_out, error_body
from .middleware import REQUEST_ID_HEADER, key_matches, request_id_for
from .parsing import (
    load_json_object,
    parse_include,
    parse_wait_value,
    seed_accepted,
    submit_job,
    submitted,
)
from .schemas import job_body

log = get_logger("graphnursery.http")

ASGIApp = Callable[..., Awaitable[None]]

_JOB_PATH = re.compile(r"/jobs/([^/]+)")
_JSON = (b"content-type", b"application/json")


class _Headers:
    """The request headers, looked up case-insensitively (what the shared code needs)."""

    __slots__ = ("_headers",)

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._headers = {name.decode("latin-1").lower(): value for name, value in raw}

    def get(self, name: str, default: str | None = None) -> str | None:
        value = self._headers.get(name.lower())
        return default if value is None else value.decode("latin-1")


class FastPath:
    """ASGI middleware: the three job routes here, everything else to ``app``."""

    def __init__(
        self, app: ASGIApp, engine: Callable[[], Engine], config: Config, metrics: Metrics
    ) -> None:
        self._app = app
        self._engine = engine
        self._config = config
        self._metrics = metrics
        self._keys = config.api_keys

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            method, path = scope["method"], scope["path"]
            if method == "POST" and path in ("/jobs", "/execute"):
                await self._answer(scope, receive, send, path, self._submit)
                return
            if method == "GET" and (match := _JOB_PATH.fullmatch(path)):
                await self._answer(scope, receive, send, "/jobs/<job_id>", self._get, match[1])
                return
        await self._app(scope, receive, send)

    async def _answer(
        self,
        scope: dict[str, Any],
        receive: Any,
        send: Any,
        route: str,
        handler: Callable[..., Awaitable[tuple[int, bytes, list[tuple[bytes, bytes]]]]],
        *args: Any,
    ) -> None:
        headers = _Headers(scope["headers"])
        request_id = request_id_for(headers.get(REQUEST_ID_HEADER))
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            self._authorize(headers)
            status, body, extra = await handler(scope, receive, headers, *args)
        except Exception as exc:
            error = api_error_for(exc)
            if error is None:
                log.exception("unhandled error answering a request")
                error = ApiError(500, "internal_error", "internal server error")
            status, body = error.status, error_body(error)
            extra = [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
        response_headers = [
            _JSON,
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode()),
            *extra,
        ]
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": body})
        self._metrics.http_requests.labels(scope["method"], route, str(status)).inc()

    def _authorize(self, headers: _Headers) -> None:
        if not self._keys:
            return
        scheme, _, presented = (headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not key_matches(presented.strip(), self._keys):
            raise ApiError(
                401,
                "unauthorized",
                "missing or wrong API key: send 'Authorization: Bearer <key>'",
                headers={"WWW-Authenticate": "Bearer"},
            )

    async def _read_body(self, receive: Any) -> bytes:
        with trio.move_on_after(self._config.body_timeout):
            return await self._receive_body(receive)
        raise body_timed_out(self._config.body_timeout)

    async def _receive_body(self, receive: Any) -> bytes:
        limit = self._config.max_body_bytes
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise BODY_TOO_LARGE
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    @staticmethod
    def _query(scope: dict[str, Any]) -> dict[str, str]:
        """The query string's parameters (the first value of each)."""
        query = scope.get("query_string", b"")
        if not query:
            return {}
        return {name: values[0] for name, values in parse_qs(query.decode("latin-1")).items()}

    def _running_engine(self) -> Engine:
        return self._engine()

    async def _submit(
        self, scope: dict[str, Any], receive: Any, headers: _Headers
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        wait = (
            parse_wait_value(self._query(scope).get("wait"), self._config)
            if scope["path"] == "/jobs"
            else None
        )
        body = load_json_object(await self._read_body(receive))
        engine = self._running_engine()
        job = await submit_job(engine, body, headers, self._config)
        if scope["path"] == "/execute":
            return 200, orjson.dumps(seed_accepted(engine, job)), []
        status, answer = await submitted(engine, job, wait)
        return status, orjson.dumps(answer), [(b"location", f"/jobs/{job.id}".encode())]

    async def _get(
        self, scope: dict[str, Any], receive: Any, headers: _Headers, job_id: str
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        query = self._query(scope)
        wait = parse_wait_value(query.get("wait"), self._config)
        with_input = parse_include(query.get("include"))
        engine = self._running_engine()
        job = await (engine.wait(job_id, wait) if wait else engine.get(job_id))
        body = job_body(job, engine.position(job_id), with_input=with_input)
        return 200, orjson.dumps(body), []
