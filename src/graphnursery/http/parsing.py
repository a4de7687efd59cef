"""Reading the routes' requests, free of any framework: bodies, query parameters, headers.

Each function takes plain values (bytes, a mapping with ``get``), so the Quart routes and
the fast path read a request with the same code, and refuse a bad one with the same
:class:`~graphnursery.http.errors.HttpError`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from pydantic import TypeAdapter, ValidationError

from ..config import Config
from ..events import parse_stream_mode
from ..jobs import JSON_INTEGERS, JobStatus
from .errors import HttpError, bad_field, invalid_body
from .schemas import BatchSubmit, GeneralSubmit, SeedSubmit, seed_input

MAX_PAGE = 1000
MAX_IDEMPOTENCY_KEY = 255
_seed_body = TypeAdapter(SeedSubmit)
_general_body = TypeAdapter(GeneralSubmit)
_batch_body = TypeAdapter(BatchSubmit)


class Params(Protocol):
    """Query parameters or headers (looked up case-insensitively): a name's first value, or
    None. Quart's ``request.args`` and ``request.headers`` are ones, and so are the fast
    path's."""

    def get(self, name: str, /) -> str | None: ...


class Headers(Params, Protocol):
    """Request headers: also every value of a name (Quart's ``request.headers`` is one)."""

    def getlist(self, name: str, /) -> list[str]: ...


def load_json_object(raw: bytes) -> dict[str, Any]:
    """A request body as a JSON object, or the HttpError that says why not."""
    if not raw:
        raise HttpError(400, "invalid_body", "request body must be a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise HttpError(400, "malformed_json", f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise HttpError(400, "invalid_body", "request body must be a JSON object")
    if _LONG_DIGITS.search(raw):
        _refuse_wide_integers(json.loads(raw), "body")
    return body


#: 19 digits in a row: where an integer past 64 bits may be, which orjson reads as a float.
_LONG_DIGITS = re.compile(rb"\d{19}")


def _refuse_wide_integers(value: Any, path: str) -> None:
    """Refuse an integer a job cannot keep exactly (past 64 bits), naming where it is.

    Only bodies with a 19-digit run come here, read again by ``json`` (which keeps big
    integers exact) to tell ``12345678901234567890123`` from a float or a string of digits.
    """
    if isinstance(value, dict):
        for key, item in value.items():
            _refuse_wide_integers(item, f"{path}.{key}" if path != "body" else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_wide_integers(item, f"{path}.{index}")
    elif isinstance(value, int) and not JSON_INTEGERS[0] <= value <= JSON_INTEGERS[1]:
        message = f"integer {value} is past the 64 bits a job keeps exactly; send it as a string"
        raise bad_field("invalid_body", path, message, "integer")


@dataclass(frozen=True, slots=True)
class SubmitBody:
    """What a submit body asks for."""

    input: Any
    timeout: float | None
    max_attempts: int | None
    stream_mode: tuple[str, ...] | None


def parse_submit(raw: bytes) -> SubmitBody:
    """Validate a submit body (seed or general form).

    A timeout over ``max_job_timeout`` is the engine's to refuse (``InvalidTimeout``)."""
    body = load_json_object(raw)
    try:
        if "input" in body:
            form: GeneralSubmit | SeedSubmit = _general_body.validate_python(body)
            job_input = body["input"]
        else:
            form = _seed_body.validate_python(body)
            job_input = seed_input(body)
    except ValidationError as exc:
        raise invalid_body(exc) from None
    try:
        modes = parse_stream_mode(form.streamMode)
    except ValueError as exc:
        raise bad_field("invalid_body", "streamMode", str(exc), "value_error") from None
    return SubmitBody(job_input, form.timeoutSeconds, form.maxAttempts, modes)


def parse_stream(query: Params) -> bool:
    """``?stream=true``: answer with the job's event stream."""
    raw = query.get("stream")
    if raw is None or raw.lower() in ("false", "0", ""):
        return False
    if raw.lower() in ("true", "1"):
        return True
    raise query_error("stream", "must be true or false")


def parse_batch(raw: bytes) -> BatchSubmit:
    try:
        return _batch_body.validate_python(load_json_object(raw))
    except ValidationError as exc:
        raise invalid_body(exc) from None


def query_error(field: str, message: str) -> HttpError:
    return bad_field("invalid_parameter", field, message, "query")


def parse_wait(query: Params, config: Config) -> float | None:
    """``?wait=S``: seconds to long-poll, from 0 to ``max_wait``; None when absent."""
    raw = query.get("wait")
    if raw is None:
        return None
    try:
        wait = float(raw)
    except ValueError:
        wait = -1.0
    if not 0 <= wait <= config.max_wait:
        message = f"wait must be a number of seconds from 0 to {config.max_wait:g}"
        raise bad_field("invalid_parameter", "wait", message, "query", message)
    return wait


def parse_include(query: Params) -> bool:
    """``?include=input``: whether the job's input goes in the answer."""
    raw = query.get("include")
    if raw is None or raw == "input":
        return raw == "input"
    raise query_error("include", "must be 'input'")


def parse_list_query(query: Params) -> tuple[JobStatus | None, int, str | None, str | None]:
    """``GET /jobs``' ``status``, ``limit``, ``cursor`` and ``graph``."""
    raw_status = query.get("status")
    status = None
    if raw_status is not None:
        try:
            status = JobStatus(raw_status)
        except ValueError:
            choices = ", ".join(s.value for s in JobStatus)
            raise query_error("status", f"must be one of {choices}") from None
    raw_limit = query.get("limit")
    if raw_limit is None:
        raw_limit = "100"
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_PAGE:
        raise query_error("limit", f"must be an integer from 1 to {MAX_PAGE}")
    return status, int(raw_limit), query.get("cursor") or None, query.get("graph") or None


def idempotency_key(headers: Params) -> str | None:
    key = headers.get("Idempotency-Key") or None
    if key is not None and len(key) > MAX_IDEMPOTENCY_KEY:
        message = f"at most {MAX_IDEMPOTENCY_KEY} characters"
        raise bad_field("invalid_header", "Idempotency-Key", message, "header")
    return key
