"""Reading the job routes' requests and shaping their answers; the Quart routes and the
fast path both use these, so they answer alike."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError
from quart import request

from .. import tracing
from ..config import Config
from ..engine import Engine
from ..jobs import Job, JobStatus
from ..logs import get_logger
from .errors import ApiError, invalid_body
from .schemas import BatchSubmit, GeneralSubmit, SeedSubmit, job_body, seed_input

log = get_logger("graphnursery.http")

MAX_PAGE = 1000
_seed_body = TypeAdapter(SeedSubmit)
_general_body = TypeAdapter(GeneralSubmit)
batch_body = TypeAdapter(BatchSubmit)


async def read_json_object() -> dict[str, Any]:
    raw = await request.get_data(as_text=False)
    assert isinstance(raw, bytes)
    return load_json_object(raw)


def parse_submit(body: dict[str, Any], config: Config) -> tuple[Any, float | None, int | None]:
    """Validate a submit body (seed or general form) -> (graph input, timeout, max attempts)."""
    try:
        if "input" in body:
            general = _general_body.validate_python(body)
            job_input, timeout, attempts = (
                general.input,
                general.timeoutSeconds,
                general.maxAttempts,
            )
        else:
            seed = _seed_body.validate_python(body)
            job_input, timeout, attempts = seed_input(body), seed.timeoutSeconds, seed.maxAttempts
    except ValidationError as exc:
        raise invalid_body(exc) from None
    if timeout is not None and timeout > config.max_job_timeout:
        raise ApiError(
            400,
            "invalid_body",
            f"invalid request body: timeoutSeconds: must be at most {config.max_job_timeout:g}",
            [
                {
                    "field": "timeoutSeconds",
                    "message": f"must be at most {config.max_job_timeout:g}",
                    "type": "less_than_equal",
                }
            ],
        )
    return job_input, timeout, attempts


def query_error(field: str, message: str) -> ApiError:
    return ApiError(
        400,
        "invalid_parameter",
        f"{field}: {message}",
        [{"field": field, "message": message, "type": "query"}],
    )


def parse_list_query() -> tuple[JobStatus | None, int, str | None]:
    raw_status = request.args.get("status")
    status = None
    if raw_status is not None:
        try:
            status = JobStatus(raw_status)
        except ValueError:
            choices = ", ".join(s.value for s in JobStatus)
            raise query_error("status", f"must be one of {choices}") from None
    raw_limit = request.args.get("limit", "100")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_PAGE:
        raise query_error("limit", f"must be an integer from 1 to {MAX_PAGE}")
    return status, int(raw_limit), request.args.get("cursor") or None


def parse_wait(config: Config) -> float | None:
    return parse_wait_value(request.args.get("wait"), config)


def parse_include(raw: str | None) -> bool:
    """``?include=input``: whether the job's input goes in the answer."""
    if raw is None or raw == "input":
        return raw == "input"
    raise query_error("include", "must be 'input'")


def parse_wait_value(raw: str | None, config: Config) -> float | None:
    if raw is None:
        return None
    try:
        wait = float(raw)
    except ValueError:
        wait = -1.0
    if not 0 <= wait <= config.max_wait:
        message = f"wait must be a number of seconds from 0 to {config.max_wait:g}"
        raise ApiError(
            400,
            "invalid_parameter",
            message,
            [{"field": "wait", "message": message, "type": "query"}],
        )
    return wait


def load_json_object(raw: bytes) -> dict[str, Any]:
    """A request body as a JSON object, or the ApiError that says why not."""
    if not raw:
        raise ApiError(400, "invalid_body", "request body must be a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "malformed_json", f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "request body must be a JSON object")
    return body


async def submit_job(engine: Engine, body: dict[str, Any], headers: Any, config: Config) -> Job:
    """Validate a submit body and its headers, and queue the job (both HTTP paths use it)."""
    job_input, timeout, attempts = parse_submit(body, config)
    key = headers.get("Idempotency-Key") or None
    if key is not None and len(key) > 255:
        message = "at most 255 characters"
        raise ApiError(
            400,
            "invalid_header",
            f"Idempotency-Key: {message}",
            [{"field": "Idempotency-Key", "message": message, "type": "header"}],
        )
    with tracing.remote_parent(headers):
        job = await engine.submit(
            job_input, timeout=timeout, idempotency_key=key, max_attempts=attempts
        )
    log.debug("job submitted", job_id=job.id)
    return job


def seed_accepted(engine: Engine, job: Job) -> dict[str, Any]:
    """``POST /execute``'s answer, the seed's shape."""
    return {"jobId": job.id, "status": job.status.value, "position": engine.position(job.id) or 0}


async def submitted(engine: Engine, job: Job, wait: float | None) -> tuple[int, dict[str, Any]]:
    """``POST /jobs``'s status and body: after waiting up to ``wait`` s for the job to end,
    200 if it has, else 202."""
    if wait:
        job = await engine.wait(job.id, wait)
    status = 200 if job.status.is_terminal else 202
    return status, job_body(job, engine.position(job.id))
