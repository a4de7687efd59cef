"""Request limits, at the ASGI level: the body limit, enforced before anything reads a
request, and connections that an error answer closes (413, 408) really closing.

A request whose ``Content-Length`` is over ``max_body_bytes`` is answered ``413`` at once,
and its connection closed, without reading the body. Further in, Quart answers such a
request too, but keeps waiting for the body it refused, so the connection stays open until
the client gives up; the fast path would read up to the limit first. Bodies without a
``Content-Length`` (chunked) are still counted as they are read, by both.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

from ..metrics import Metrics
from .errors import BODY_TOO_LARGE, error_body
from .middleware import REQUEST_ID_HEADER, request_id_for

ASGIApp = Callable[..., Awaitable[None]]

_REQUEST_ID = REQUEST_ID_HEADER.lower().encode()


class BodyLimit:
    """ASGI layer in front of the app: refuse an announced body over ``limit`` bytes."""

    def __init__(self, app: ASGIApp, limit: int, metrics: Metrics) -> None:
        self._app = app
        self._limit = limit
        self._metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"content-length":
                    if value.isdigit() and int(value) > self._limit:
                        await self._refuse(scope, send)
                        return
                    break
        await self._app(scope, receive, send)

    async def _refuse(self, scope: Any, send: Any) -> None:
        supplied = dict(scope["headers"]).get(_REQUEST_ID, b"").decode("latin-1")
        request_id = request_id_for(supplied)
        body = error_body(BODY_TOO_LARGE)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
            (_REQUEST_ID, request_id.encode()),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        # Not routed: the request was refused before any route saw it.
        self._metrics.http_requests.labels(scope["method"], "unmatched", "413").inc()


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
