"""Every error the API answers, as JSON ``{error, code, detail?}``, mapped in one place.

``error`` stays a human-readable string, because the seed's clients read it as one.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError
from quart import Quart, Response, current_app
from werkzeug.exceptions import HTTPException

from ..errors import EngineClosed, JobConflict, JobNotFound, QueueFull
from ..logs import get_logger

log = get_logger("graphnursery.http")

HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    401: "unauthorized",
    413: "body_too_large",
    415: "unsupported_media_type",
}


class ApiError(Exception):
    """An error answer: status, machine code, message, and optional per-field detail."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        detail: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail
        self.headers = headers or {}


def error_response(error: ApiError) -> Response:
    return Response(
        error_body(error),
        status=error.status,
        headers=error.headers,
        content_type="application/json",
    )


def invalid_body(exc: ValidationError) -> ApiError:
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
    return ApiError(400, "invalid_body", summary, detail)


def retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, round(seconds)))}


def api_error_for(error: Exception) -> ApiError | None:
    """The answer to one of graphnursery's own errors; None for anything else."""
    if isinstance(error, ApiError):
        return error
    if isinstance(error, JobNotFound):
        return ApiError(404, "job_not_found", str(error))
    if isinstance(error, QueueFull):
        return ApiError(429, "queue_full", str(error), headers=retry_after(error.retry_after))
    if isinstance(error, JobConflict):
        return ApiError(409, "conflict", str(error))
    if isinstance(error, EngineClosed):
        code = "draining" if "draining" in str(error) else "unavailable"
        return ApiError(503, code, f"not accepting jobs: {error}", headers=retry_after(5))
    return None


BODY_TOO_LARGE = ApiError(
    413, "body_too_large", "request body is too large", headers={"Connection": "close"}
)


def body_timed_out(seconds: float) -> ApiError:
    """408: the body did not arrive in time (``body_timeout``); the connection is closed."""
    return ApiError(
        408,
        "body_timeout",
        f"the request body did not arrive within {seconds:g} s",
        headers={"Connection": "close"},
    )


def error_body(error: ApiError) -> bytes:
    body: dict[str, Any] = {"error": error.message, "code": error.code}
    if error.detail is not None:
        body["detail"] = error.detail
    return orjson.dumps(body)


def register_error_handlers(app: Quart) -> None:
    @app.errorhandler(ApiError)
    @app.errorhandler(JobNotFound)
    @app.errorhandler(QueueFull)
    @app.errorhandler(JobConflict)
    @app.errorhandler(EngineClosed)
    async def own_error(error: Exception) -> Response:
        api_error = api_error_for(error)
        assert api_error is not None
        return error_response(api_error)

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        if status == 408:  # Quart's BODY_TIMEOUT (the config's body_timeout)
            return error_response(body_timed_out(current_app.config["BODY_TIMEOUT"]))
        if status == 413:  # Quart's MAX_CONTENT_LENGTH, for a body without Content-Length
            return error_response(BODY_TOO_LARGE)
        code = HTTP_CODES.get(status, "http_error")
        message = {
            404: "no such route",
            405: "method not allowed on this route",
        }.get(status, error.description or error.name)
        return error_response(ApiError(status, code, message))

    @app.errorhandler(Exception)
    async def unexpected(error: Exception) -> Response:
        log.exception("unhandled error answering a request")
        return error_response(ApiError(500, "internal_error", "internal server error"))
