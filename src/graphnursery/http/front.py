"""The ASGI layers around the Quart app: what a request meets before Quart does.

:class:`Front` sees every HTTP request first. A request whose ``Content-Length`` is over
``max_body_bytes`` is answered ``413`` at once, and its connection closed, without reading
the body (Quart would keep waiting for the body it refused, so the connection stayed open
until the client gave up); bodies without a ``Content-Length`` (chunked) are counted as they
are read, by the pipeline's ``read_body``, on either path. With the fast path on, its three
job routes are answered here too. Everything else goes on to Quart, wrapped in
:class:`CloseAfterAnswer`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from . import bodies
from .bodies import Parts
from .errors import body_too_large
from .fastpath import FastPath, Handler, Match
from .handlers import Reply
from .parsing import Params
from .pipeline import Pipeline, ReceivedBody
from .run_handlers import Streamed

ASGIApp = Callable[..., Awaitable[None]]
RawHeaders = list[tuple[bytes, bytes]]


class ScopeHeaders:
    """An ASGI scope's headers, looked up case-insensitively (for the ASGI layers)."""

    __slots__ = ("_headers", "_raw")

    def __init__(self, raw: RawHeaders) -> None:
        self._raw = raw
        # The first value of each name, as Quart's headers give it.
        self._headers = {name.decode("latin-1").lower(): value for name, value in reversed(raw)}

    def get(self, name: str, default: None = None, /) -> str | None:
        value = self._headers.get(name.lower())
        return default if value is None else value.decode("latin-1")

    def getlist(self, name: str, /) -> list[str]:
        """Every value of ``name``, in order."""
        wanted = name.lower().encode("latin-1")
        return [value.decode("latin-1") for key, value in self._raw if key.lower() == wanted]


def raw_headers(headers: dict[str, str]) -> RawHeaders:
    return [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
    ]


async def send_json(
    send: Any, status: int, body: bytes | Parts, request_id: str, extra: RawHeaders
) -> None:
    """Write a whole JSON answer (whole, or in parts) on an ASGI ``send`` (the layers in
    front of Quart)."""
    parts: Parts = [body] if isinstance(body, bytes) else body
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(bodies.size(parts)).encode()),
        (b"x-request-id", request_id.encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    for part in parts[:-1]:
        await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body", "body": parts[-1]})


async def send_streamed(
    send: Any, status: int, reply: Streamed, request_id: str, extra: RawHeaders
) -> None:
    """Write a JSON answer as it comes, chunked (a ``/wait`` still waiting)."""
    headers = [(b"content-type", b"application/json"), (b"x-request-id", request_id.encode())]
    await send({"type": "http.response.start", "status": status, "headers": [*headers, *extra]})
    async with contextlib.aclosing(reply.chunks) as chunks:
        async for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def _refuse_unread(scope: dict[str, Any], receive: Any, headers: Params) -> Reply:
    raise body_too_large()


class Front:
    """ASGI layer in front of the Quart ``app``: answers what need not reach Quart."""

    def __init__(
        self, app: ASGIApp, pipeline: Pipeline, fast_path: FastPath | None, max_body_bytes: int
    ) -> None:
        self._app = app
        self._pipeline = pipeline
        self._fast_path = fast_path
        self._max_body_bytes = max_body_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            found = self._match(scope)
            if found is not None:
                route, handler, args = found
                await self._answer(scope, receive, send, route, handler, args)
                return
        await self._app(scope, receive, send)

    def _match(self, scope: dict[str, Any]) -> Match | None:
        for name, value in scope["headers"]:
            if name == b"content-length":
                if value.isdigit() and int(value) > self._max_body_bytes:
                    # Not routed: refused before any route saw it.
                    return "unmatched", _refuse_unread, ()
                break
        if self._fast_path is None or b"stream=" in scope.get("query_string", b""):
            return None  # a streamed submit is Quart's: its answer is a stream
        return self._fast_path.match(scope["method"], scope["path"])

    async def _answer(
        self,
        scope: dict[str, Any],
        receive: Any,
        send: Any,
        route: str,
        handler: Handler,
        args: tuple[str, ...],
    ) -> None:
        pipeline = self._pipeline
        headers = ScopeHeaders(scope["headers"])
        request_id = pipeline.request_id(headers)
        try:
            try:
                await pipeline.authorize(headers, scope["path"])
            except Exception:
                # Refused before the body was read: read it now, or the connection could
                # not carry the client's next request (hypercorn closes it, mid-reuse).
                if handler is not _refuse_unread:  # too large to read: closed instead
                    with contextlib.suppress(Exception):
                        await pipeline.read_body(ReceivedBody(receive))
                raise
            status, reply, extra = await handler(scope, receive, headers, *args)
            if isinstance(reply, Streamed):
                await send_streamed(send, status, reply, request_id, raw_headers(extra))
                pipeline.record(scope["method"], route, status)
                return
            body: bytes | Parts = bodies.encode(reply)
        except Exception as exc:
            status, body, extra = pipeline.answer_error(exc)
        await send_json(send, status, body, request_id, raw_headers(extra) if extra else [])
        pipeline.record(scope["method"], route, status)


class CloseAfterAnswer:
    """ASGI layer around the Quart app: the last message of each answer is sent shielded.

    When an answer closes the connection (``Connection: close``, as after a 408 body
    timeout), hypercorn closes the socket inside that last send. Quart-Trio cancels the
    request's tasks once it has answered, and that cancellation aborted hypercorn's close
    half-way, leaving the connection open until the client gave up. Hypercorn shields its
    own socket writes the same way.
    """

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def send_last_shielded(message: Any) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body"):
                with trio.CancelScope(shield=True):
                    await send(message)
            else:
                await send(message)

        await self._app(scope, receive, send_last_shielded)
