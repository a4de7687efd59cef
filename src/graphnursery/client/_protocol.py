"""What both clients share: value objects, request bodies, answers and retries."""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypedDict

import httpx

from .. import errors
from ..jobs import JobError, JobStatus

DEFAULT_URL = "http://127.0.0.1:8000"
USER_AGENT = "graphnursery-client/0.1.0"


# -- value objects ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Retries:
    """How 429 (queue full) and 503 (unavailable) answers are retried; nothing else is.

    ``max_attempts`` counts the first request: 1 means never retry. The client waits the
    server's ``Retry-After``, or ``backoff * 2**n`` seconds when it sent none. If the wait would
    exceed ``max_delay`` the client gives up at once and raises the error, whose
    ``retry_after`` says when the server expects room.
    """

    max_attempts: int = 5
    max_delay: float = 60.0
    backoff: float = 0.5

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise errors.ConfigError(
                "max_attempts", f"must be an integer, got {self.max_attempts!r}"
            )
        if self.max_attempts < 1:
            raise errors.ConfigError("max_attempts", f"must be at least 1, got {self.max_attempts}")
        for name in ("max_delay", "backoff"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise errors.ConfigError(
                    name, f"must be a non-negative number of seconds, got {value!r}"
                )

    def delay(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None to give up."""
        if attempt >= self.max_attempts:
            return None
        delay = retry_after if retry_after is not None else self.backoff * 2 ** (attempt - 1)
        return delay if delay <= self.max_delay else None


DEFAULT_RETRIES = Retries()
NO_RETRIES = Retries(max_attempts=1)


@dataclass(frozen=True, slots=True)
class Job:
    """A job as the server last showed it. Times are aware UTC datetimes."""

    id: str
    status: JobStatus
    attempts: int = 0
    result: Any = None
    error: JobError | None = None
    position: int | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    duration_ms: int | None = None
    #: The graph's input: in :meth:`AsyncClient.list`'s jobs, and from ``get(include_input=True)``.
    input: Any = None

    @property
    def done(self) -> bool:
        """True once the job is terminal: it will not change any more."""
        return self.status.is_terminal

    @classmethod
    def from_json(cls, body: Any) -> Job:
        """Parse the server's job JSON (camelCase). Raises :class:`errors.UnexpectedResponse`."""
        try:
            error = body.get("error")
            return cls(
                id=str(body["jobId"]),
                status=JobStatus(body["status"]),
                attempts=int(body.get("attempts", 0)),
                result=body.get("result"),
                error=None if error is None else JobError(error["type"], error["message"]),
                position=body.get("position"),
                created_at=_datetime(body.get("createdAt")),
                started_at=_datetime(body.get("startedAt")),
                completed_at=_datetime(body.get("completedAt")),
                duration_ms=body.get("durationMs"),
                input=body.get("input"),
            )
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise errors.UnexpectedResponse(f"not a job: {body!r:.200} ({exc!r})") from None

    def outcome(self) -> Any:
        """The result of a ``completed`` job; for any other end, its ``errors.JobUnsuccessful``."""
        error_class = _JOB_ERRORS.get(self.status)
        if error_class is not None:
            raise error_class(self)
        if self.status is not JobStatus.COMPLETED:
            raise errors.ClientError(f"job {self.id} is still {self.status}")
        return self.result


_JOB_ERRORS: dict[JobStatus, type[errors.JobUnsuccessful]] = {
    JobStatus.FAILED: errors.JobFailed,
    JobStatus.TIMED_OUT: errors.JobTimedOut,
    JobStatus.CRASHED: errors.JobCrashed,
    JobStatus.CANCELLED: errors.JobCancelled,
}


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of ``list()``: the jobs, and the cursor of the next page (None at the end)."""

    jobs: tuple[Job, ...]
    next_cursor: str | None = None


def _datetime(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


# -- the protocol, shared by both clients (no I/O here) -----------------------------------------


_STATUS_ERRORS: dict[int, type[errors.ApiError]] = {
    400: errors.InvalidRequest,
    401: errors.Unauthorized,
    404: errors.NotFound,
    409: errors.Conflict,
    413: errors.PayloadTooLarge,
    429: errors.TooManyRequests,
    503: errors.Unavailable,
}


def _retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds: a number, or an HTTP date."""
    raw = response.headers.get("Retry-After")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _api_error(response: httpx.Response) -> errors.ApiError:
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        code = str(body.get("code", "http_error"))
        message = body["error"]
        detail = body.get("detail")
    else:
        code, message, detail = "http_error", response.text[:200] or response.reason_phrase, None
    error_class = _STATUS_ERRORS.get(
        status, errors.ServerError if status >= 500 else errors.ApiError
    )
    return error_class(status, code, message, detail, _retry_after(response))


def answer_json(response: httpx.Response) -> Any:
    """The body of a successful answer; an error answer raises its ``errors.ApiError``."""
    if response.is_success:
        try:
            return response.json()
        except ValueError:
            raise errors.UnexpectedResponse(
                f"expected JSON, got {response.headers.get('content-type')!r}: "
                f"{response.text[:200]!r}",
                response.status_code,
            ) from None
    raise _api_error(response)


def retry_delay(response: httpx.Response, attempt: int, retries: Retries) -> float | None:
    if response.status_code not in (429, 503):
        return None
    return retries.delay(attempt, _retry_after(response))


#: Jobs per ``POST /jobs/batch`` request (the server's limit).
MAX_BATCH = 1000


def batch_body(inputs: Sequence[Any], timeout: float | None) -> dict[str, Any]:
    items: list[dict[str, Any]] = [{"input": job_input} for job_input in inputs]
    if timeout is not None:
        for item in items:
            item["timeoutSeconds"] = timeout
    return {"jobs": items}


def batch_answer(body: Any) -> tuple[list[Job], int]:
    """``POST /jobs/batch``'s answer: the queued jobs, and how many the full queue refused."""
    try:
        return [Job.from_json(job) for job in body["jobs"]], int(body["rejected"])
    except (KeyError, TypeError, ValueError) as exc:
        raise errors.UnexpectedResponse(f"not a batch answer: {body!r:.200} ({exc!r})") from None


def submit_body(
    input: Any,
    messages: Sequence[Mapping[str, Any]] | None,
    data: Mapping[str, Any] | None,
    metadata: Mapping[str, Any] | None,
    timeout: float | None,
    *,
    stream_mode: str | Sequence[str] | None = None,
    max_attempts: int | None = None,
) -> dict[str, Any]:
    body: dict[str, Any]
    if messages is None:
        if data is not None or metadata is not None:
            raise TypeError("data and metadata go with messages (the seed form)")
        body = {"input": input}
    else:
        if input is not None:
            raise TypeError("give input or messages, not both")
        body = {"messages": [dict(m) for m in messages]}
        if data is not None:
            body["data"] = dict(data)
        if metadata is not None:
            body["metadata"] = dict(metadata)
    if timeout is not None:
        body["timeoutSeconds"] = timeout
    if max_attempts is not None:
        body["maxAttempts"] = max_attempts
    if stream_mode is not None:
        body["streamMode"] = stream_mode if isinstance(stream_mode, str) else list(stream_mode)
    return body


def idempotency_headers(key: str | None) -> dict[str, str]:
    return {} if key is None else {"Idempotency-Key": key}


def list_params(
    status: JobStatus | str | None, limit: int | None, cursor: str | None
) -> dict[str, str]:
    given = {"status": status, "limit": limit, "cursor": cursor}
    return {name: str(value) for name, value in given.items() if value is not None}


def job_page(body: Any) -> JobPage:
    if not isinstance(body, dict) or not isinstance(body.get("jobs"), list):
        raise errors.UnexpectedResponse(f"not a job list: {body!r:.200}")
    return JobPage(tuple(Job.from_json(j) for j in body["jobs"]), body.get("nextCursor"))


def deadline_after(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


class _LongPoll(TypedDict):
    params: Mapping[str, str] | None
    timeout: httpx.Timeout


class Settings:
    """What both clients share: the connection settings and the per-request timeouts."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        timeout: float | httpx.Timeout,
        retries: Retries,
        poll_wait: float,
    ) -> None:
        if not 0 < poll_wait <= 300:
            raise errors.ConfigError(
                "poll_wait", f"must be from 0 to 300 seconds, got {poll_wait!r}"
            )
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.retries = retries
        self.poll_wait = poll_wait
        self.headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if api_key is not None:
            self.headers["Authorization"] = f"Bearer {api_key}"

    def long_poll(self, wait: float) -> _LongPoll:
        """``?wait=`` and a read timeout stretched by it; a plain request when ``wait`` is 0."""
        wait = round(max(wait, 0.0), 3)
        if not wait:
            return {"params": None, "timeout": self.timeout}
        t = self.timeout
        read = None if t.read is None else t.read + wait
        return {
            "params": {"wait": f"{wait:g}"},
            "timeout": httpx.Timeout(connect=t.connect, read=read, write=t.write, pool=t.pool),
        }

    def poll_seconds(self, deadline: float | None) -> float:
        if deadline is None:
            return self.poll_wait
        return max(0.0, min(self.poll_wait, deadline - time.monotonic()))


# -- the clients -------------------------------------------------------------------------------
