"""Every error the API answers, as JSON ``{error, code, detail?}``, mapped in one place.

``ANSWERS`` is the table: each typed error raised below the HTTP layer (the engine's
``JobNotFound``, ``QueueFull``, ...; Quart's own HTTP errors) and the answer it gets. Code in
this package that refuses a request raises an :class:`HttpError`, which is its own answer.
``error`` stays a human-readable string, because the seed's clients read it as one.

Not to be confused with :class:`graphnursery.ApiError`: that is what the *client* raises
when it receives one of these answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from ..errors import (
    EngineClosed,
    FlowInvalid,
    GraphConflict,
    GraphLoadError,
    GraphNotFound,
    InvalidTimeout,
    JobConflict,
    JobNotFound,
    QueueFull,
    QuotaExceeded,
    ScheduleInvalid,
    ScheduleNotFound,
    StoreError,
    ThreadConflict,
    ThreadNotFound,
    ThreadStateError,
)

Detail = list[dict[str, Any]]


@dataclass(eq=False)
class HttpError(Exception):
    """An error answer, raised where a request is refused: status, machine code, message,
    optional per-field ``detail`` and extra response headers."""

    status: int
    code: str
    message: str
    detail: Detail | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message

    def body(self) -> bytes:
        body: dict[str, Any] = {"error": self.message, "code": self.code}
        if self.detail is not None:
            body["detail"] = self.detail
        return orjson.dumps(body)


def retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, round(seconds)))}


def bad_field(code: str, field: str, message: str, kind: str, summary: str = "") -> HttpError:
    """400 naming one bad field (of the body, the query or the headers) in ``detail``."""
    detail = [{"field": field, "message": message, "type": kind}]
    return HttpError(400, code, summary or f"{field}: {message}", detail)


def invalid_body(exc: ValidationError) -> HttpError:
    detail = [
        {
            "field": ".".join(str(part) for part in err["loc"]) or "body",
            "message": err["msg"],
            "type": err["type"],
        }
        for err in exc.errors(include_url=False, include_context=False, include_input=False)
    ]
    first = detail[0]
    summary = f"invalid request body: {first['field']}: {first['message']}"
    if len(detail) > 1:
        summary += f" (and {len(detail) - 1} more)"
    return HttpError(400, "invalid_body", summary, detail)


def flow_detail(error: FlowInvalid) -> Detail:
    """An invalid flow's problems as ``detail`` items: ``field`` where (``nodes.<id>``,
    ``edges.<a->b>``, ``flow``), and the ``node`` or ``edge`` at fault by name."""
    detail: Detail = []
    for problem in error.problems:
        item: dict[str, Any] = {"message": problem["problem"], "type": "invalid_flow"}
        if "node" in problem:
            item.update(field=f"nodes.{problem['node']}", node=problem["node"])
        elif "edge" in problem:
            item.update(field=f"edges.{problem['edge']}", edge=problem["edge"])
        else:
            item["field"] = "flow"
        detail.append(item)
    return detail


def timeout_refused(field: str, maximum: float) -> HttpError:
    """400 for a ``timeoutSeconds`` over ``max_job_timeout`` (the engine's ``InvalidTimeout``)."""
    message = f"must be greater than 0 and at most {maximum:g}"
    return bad_field(
        "invalid_body", field, message, "timeout", f"invalid request body: {field}: {message}"
    )


def body_too_large() -> HttpError:
    """413; the connection is closed, as the rest of the body may still be on its way."""
    return HttpError(
        413, "body_too_large", "request body is too large", headers={"Connection": "close"}
    )


def body_timed_out(seconds: float | None = None) -> HttpError:
    """408: the body did not arrive in time (``body_timeout``); the connection is closed."""
    within = "in time" if seconds is None else f"within {seconds:g} s"
    return HttpError(
        408,
        "body_timeout",
        f"the request body did not arrive {within}",
        headers={"Connection": "close"},
    )


def internal_error() -> HttpError:
    return HttpError(500, "internal_error", "internal server error")


def _engine_closed(error: EngineClosed) -> HttpError:
    code = "draining" if "draining" in str(error) else "unavailable"
    return HttpError(503, code, f"not accepting jobs: {error}", headers=retry_after(5))


def _store_error(error: StoreError) -> HttpError:
    """The store failed under a request (unreachable past its retries, say): 503, not 500."""
    return HttpError(
        503, "store_unavailable", f"the job store failed: {error}", headers=retry_after(5)
    )


#: Quart's own HTTP errors (routing, and its body buffer's limits) by status.
_QUART_ANSWERS: dict[int, Callable[[HTTPException], HttpError]] = {
    404: lambda error: HttpError(404, "not_found", "Not found"),
    405: lambda error: HttpError(405, "method_not_allowed", "method not allowed on this route"),
    408: lambda error: body_timed_out(),
    413: lambda error: body_too_large(),
}
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    409: "conflict",
    415: "unsupported_media_type",
}


def _quart_error(error: HTTPException) -> HttpError:
    status = error.code or 500
    answer = _QUART_ANSWERS.get(status)
    if answer is not None:
        return answer(error)
    return HttpError(status, _HTTP_CODES.get(status, "http_error"), error.description or error.name)


#: Error type -> its answer. An error not here (nor a subclass of one) is a 500.
ANSWERS: dict[type[Exception], Callable[[Any], HttpError]] = {
    HttpError: lambda error: error,
    JobNotFound: lambda error: HttpError(404, "job_not_found", str(error)),
    GraphNotFound: lambda error: HttpError(404, "graph_not_found", str(error)),
    GraphLoadError: lambda error: HttpError(409, "graph_load_failed", str(error)),
    GraphConflict: lambda error: HttpError(409, "conflict", str(error)),
    FlowInvalid: lambda error: HttpError(400, "invalid_flow", str(error), flow_detail(error)),
    ScheduleInvalid: lambda error: bad_field(
        "invalid_body", error.field, error.problem, "schedule", f"invalid schedule: {error}"
    ),
    ScheduleNotFound: lambda error: HttpError(404, "schedule_not_found", str(error)),
    InvalidTimeout: lambda error: timeout_refused("timeoutSeconds", error.maximum),
    QuotaExceeded: lambda error: HttpError(
        429,
        "quota_exceeded",
        str(error),
        [{"field": "workspace", "message": str(error), "type": error.limit}],
        headers=retry_after(error.retry_after),
    ),
    QueueFull: lambda error: HttpError(
        429, "queue_full", str(error), headers=retry_after(error.retry_after)
    ),
    JobConflict: lambda error: HttpError(409, "conflict", str(error)),
    ThreadNotFound: lambda error: HttpError(404, "thread_not_found", str(error)),
    ThreadConflict: lambda error: HttpError(409, "conflict", str(error)),
    ThreadStateError: lambda error: HttpError(422, "thread_state_error", str(error)),
    EngineClosed: _engine_closed,
    StoreError: _store_error,
    HTTPException: _quart_error,
}


def answer_for(error: Exception) -> HttpError | None:
    """The answer ``ANSWERS`` gives ``error`` (by its type or nearest base); None if none."""
    for kind in type(error).__mro__:
        answer = ANSWERS.get(kind)
        if answer is not None:
            return answer(error)
    return None
