"""Per-request concerns around every route: request ids, API-key auth, request metrics."""

from __future__ import annotations

import hmac
import re
import uuid

import structlog
from quart import Quart, Response, g, request

from ..config import Config
from ..metrics import Metrics
from .errors import ApiError

REQUEST_ID_HEADER = "X-Request-ID"
VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
OPEN_PATHS = frozenset({"/health", "/live", "/ready", "/openapi.json", "/docs"})


def request_id_for(supplied: str | None) -> str:
    """The client's ``X-Request-ID`` when it is a sane one, else a new id."""
    return supplied if supplied and VALID_REQUEST_ID.fullmatch(supplied) else uuid.uuid4().hex


def key_matches(presented: str, keys: tuple[str, ...]) -> bool:
    """Constant-time check against every key (no early exit that would reveal which one)."""
    presented_bytes = presented.encode()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(presented_bytes, key.encode())
    return matched


def install(app: Quart, config: Config, metrics: Metrics) -> None:
    keys = config.api_keys
    open_paths = OPEN_PATHS | ({"/metrics"} if config.metrics_public else frozenset())

    @app.before_request
    async def bind_request_id() -> None:
        request_id = request_id_for(request.headers.get(REQUEST_ID_HEADER))
        g.request_id = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)

    if keys:

        @app.before_request
        async def require_api_key() -> None:
            if request.path in open_paths:
                return
            scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not key_matches(presented.strip(), keys):
                raise ApiError(
                    401,
                    "unauthorized",
                    "missing or wrong API key: send 'Authorization: Bearer <key>'",
                    headers={"WWW-Authenticate": "Bearer"},
                )

    @app.after_request
    async def finish_request(response: Response) -> Response:
        request_id = getattr(g, "request_id", None)
        if request_id is not None:
            response.headers[REQUEST_ID_HEADER] = request_id
        rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
        metrics.http_requests.labels(request.method, rule, str(response.status_code)).inc()
        return response
