"""Python client for a graphnursery server: :class:`Client` (blocking) and :class:`AsyncClient`.

``AsyncClient`` runs under Trio and under asyncio alike (httpx, through anyio)::

    from graphnursery import AsyncClient

    async with AsyncClient("http://127.0.0.1:8000") as client:
        result = await client.run({"question": "hi"})     # submit, then long-poll to the end
        job = await client.submit({"question": "hi"})      # -> Job, status "queued"
        job = await client.wait(job.id, timeout=60)        # -> Job, terminal

``Client`` has the same methods, blocking. Jobs come back as :class:`Job` value objects.

Answers 429 (queue full) and 503 (draining) are retried after the server's ``Retry-After``,
up to :class:`Retries` ``max_attempts``; nothing else is retried. Every error either client
raises is a :class:`~graphnursery.errors.ClientError`::

    GraphNurseryError
    └── ClientError
        ├── TransportError       the server could not be reached or the connection broke
        ├── UnexpectedResponse   the answer is not graphnursery's JSON
        ├── WaitTimeout          the job was not terminal when ``timeout`` ran out (``job``)
        ├── ApiError             the server answered an error (status, code, message, detail)
        │   ├── InvalidRequest   400, ``detail`` names each bad field
        │   ├── Unauthorized     401
        │   ├── NotFound         404
        │   ├── Conflict         409, e.g. cancelling a job that already ended
        │   ├── PayloadTooLarge  413
        │   ├── TooManyRequests  429, the queue is full (``retry_after``)
        │   ├── Unavailable      503, draining or down (``retry_after``)
        │   └── ServerError      any other 5xx
        └── JobUnsuccessful      run(): the job ended but not ``completed`` (``job``)
            ├── JobFailed        the graph raised (``type``, ``message``)
            ├── JobTimedOut      it ran past its timeout and was killed
            ├── JobCrashed       its worker process died
            └── JobCancelled     it was cancelled

The client does not cancel a job when the caller stops waiting for it: call ``cancel()``.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypedDict

import anyio
import httpx

from .errors import (
    ApiError,
    ClientError,
    ConfigError,
    Conflict,
    InvalidRequest,
    JobCancelled,
    JobCrashed,
    JobFailed,
    JobTimedOut,
    JobUnsuccessful,
    NotFound,
    PayloadTooLarge,
    ServerError,
    TooManyRequests,
    TransportError,
    Unauthorized,
    Unavailable,
    UnexpectedResponse,
    WaitTimeout,
)
from .jobs import JobError, JobStatus

__all__ = [
    "ApiError",
    "AsyncClient",
    "Client",
    "ClientError",
    "Conflict",
    "InvalidRequest",
    "Job",
    "JobCancelled",
    "JobCrashed",
    "JobFailed",
    "JobPage",
    "JobTimedOut",
    "JobUnsuccessful",
    "NotFound",
    "PayloadTooLarge",
    "Retries",
    "ServerError",
    "TooManyRequests",
    "TransportError",
    "Unauthorized",
    "Unavailable",
    "UnexpectedResponse",
    "WaitTimeout",
]

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
            raise ConfigError("max_attempts", f"must be an integer, got {self.max_attempts!r}")
        if self.max_attempts < 1:
            raise ConfigError("max_attempts", f"must be at least 1, got {self.max_attempts}")
        for name in ("max_delay", "backoff"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ConfigError(name, f"must be a non-negative number of seconds, got {value!r}")

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

    @property
    def done(self) -> bool:
        """True once the job is terminal: it will not change any more."""
        return self.status.is_terminal

    @classmethod
    def from_json(cls, body: Any) -> Job:
        """Parse the server's job JSON (camelCase). Raises :class:`UnexpectedResponse`."""
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
            )
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise UnexpectedResponse(f"not a job: {body!r:.200} ({exc!r})") from None

    def outcome(self) -> Any:
        """The result of a ``completed`` job; for any other end, its ``JobUnsuccessful``."""
        error_class = _JOB_ERRORS.get(self.status)
        if error_class is not None:
            raise error_class(self)
        if self.status is not JobStatus.COMPLETED:
            raise ClientError(f"job {self.id} is still {self.status}")
        return self.result


_JOB_ERRORS: dict[JobStatus, type[JobUnsuccessful]] = {
    JobStatus.FAILED: JobFailed,
    JobStatus.TIMED_OUT: JobTimedOut,
    JobStatus.CRASHED: JobCrashed,
    JobStatus.CANCELLED: JobCancelled,
}


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of ``list()``: the jobs, and the cursor of the next page (None at the end)."""

    jobs: tuple[Job, ...]
    next_cursor: str | None = None


def _datetime(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


# -- the protocol, shared by both clients (no I/O here) -----------------------------------------


_STATUS_ERRORS: dict[int, type[ApiError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    429: TooManyRequests,
    503: Unavailable,
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


def _api_error(response: httpx.Response) -> ApiError:
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
    error_class = _STATUS_ERRORS.get(status, ServerError if status >= 500 else ApiError)
    return error_class(status, code, message, detail, _retry_after(response))


def _json(response: httpx.Response) -> Any:
    """The body of a successful answer; an error answer raises its ``ApiError``."""
    if response.is_success:
        try:
            return response.json()
        except ValueError:
            raise UnexpectedResponse(
                f"expected JSON, got {response.headers.get('content-type')!r}: "
                f"{response.text[:200]!r}",
                response.status_code,
            ) from None
    raise _api_error(response)


def _retry_delay(response: httpx.Response, attempt: int, retries: Retries) -> float | None:
    if response.status_code not in (429, 503):
        return None
    return retries.delay(attempt, _retry_after(response))


def _submit_body(
    input: Any,
    messages: Sequence[Mapping[str, Any]] | None,
    data: Mapping[str, Any] | None,
    metadata: Mapping[str, Any] | None,
    timeout: float | None,
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
    return body


def _idempotency(key: str | None) -> dict[str, str]:
    return {} if key is None else {"Idempotency-Key": key}


def _list_params(
    status: JobStatus | str | None, limit: int | None, cursor: str | None
) -> dict[str, str]:
    params: dict[str, str] = {}
    if status is not None:
        params["status"] = str(status)
    if limit is not None:
        params["limit"] = str(limit)
    if cursor is not None:
        params["cursor"] = cursor
    return params


def _page(body: Any) -> JobPage:
    if not isinstance(body, dict) or not isinstance(body.get("jobs"), list):
        raise UnexpectedResponse(f"not a job list: {body!r:.200}")
    return JobPage(tuple(Job.from_json(j) for j in body["jobs"]), body.get("nextCursor"))


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


class _LongPoll(TypedDict):
    params: Mapping[str, str] | None
    timeout: httpx.Timeout


class _Settings:
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
            raise ConfigError("poll_wait", f"must be from 0 to 300 seconds, got {poll_wait!r}")
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


class AsyncClient:
    """Asynchronous client; works under Trio and asyncio. Use as ``async with``.

    ``base_url`` is the server (``http://host:port``); ``api_key`` is sent as
    ``Authorization: Bearer``; ``timeout`` is httpx's per-request timeout (a long-poll's read
    timeout is stretched by its wait); ``retries`` governs 429/503; ``poll_wait`` is the
    longest single long-poll (at most the server's ``max_wait``). ``transport`` replaces
    httpx's (tests, ``httpx.ASGITransport``).
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        timeout: float | httpx.Timeout = 10.0,
        retries: Retries = DEFAULT_RETRIES,
        poll_wait: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = _Settings(base_url, api_key, timeout, retries, poll_wait)
        self._http = httpx.AsyncClient(
            base_url=self._settings.base_url,
            headers=self._settings.headers,
            timeout=self._settings.timeout,
            transport=transport,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> Any:
        attempt = 1
        while True:
            try:
                response = await self._http.request(
                    method,
                    path,
                    json=json,
                    params=params,
                    headers=headers,
                    timeout=timeout or self._settings.timeout,
                )
            except httpx.TransportError as exc:
                raise TransportError(f"{method} {path}: {exc!r}") from exc
            delay = _retry_delay(response, attempt, self._settings.retries)
            if delay is None:
                return _json(response)
            await anyio.sleep(delay)
            attempt += 1

    async def submit(
        self,
        input: Any = None,
        *,
        messages: Sequence[Mapping[str, Any]] | None = None,
        data: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Queue a job and return it at once (``queued``).

        Give ``input`` (any JSON value), or the seed's chat form: ``messages`` with optional
        ``data`` and ``metadata``. ``timeout`` is the job's ``timeoutSeconds`` on the server.
        A repeat submit with the same ``idempotency_key`` returns the same job.
        """
        body = _submit_body(input, messages, data, metadata, timeout)
        return await self._submit(body, idempotency_key, 0.0)

    async def _submit(self, body: dict[str, Any], idempotency_key: str | None, wait: float) -> Job:
        answer = await self._request(
            "POST",
            "/jobs",
            json=body,
            headers=_idempotency(idempotency_key),
            **self._settings.long_poll(wait),
        )
        return Job.from_json(answer)

    async def get(self, job_id: str) -> Job:
        """The job as it stands. Raises :class:`NotFound` if unknown or expired."""
        return Job.from_json(await self._request("GET", f"/jobs/{job_id}"))

    async def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """The job once terminal, long-polling the server. Never raises for the job's outcome.

        Raises :class:`WaitTimeout` (a ``TimeoutError``) if it is not terminal after
        ``timeout`` seconds; the job goes on running.
        """
        return await self._wait(job_id, _deadline(timeout), timeout)

    async def _wait(
        self, job_id: str, deadline: float | None, timeout: float | None, job: Job | None = None
    ) -> Job:
        while job is None or not job.done:
            if job is not None and deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(job, timeout or 0.0)
            seconds = self._settings.poll_seconds(deadline)
            answer = await self._request(
                "GET", f"/jobs/{job_id}", **self._settings.long_poll(seconds)
            )
            job = Job.from_json(answer)
        return job

    async def run(
        self,
        input: Any = None,
        *,
        messages: Sequence[Mapping[str, Any]] | None = None,
        data: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        wait_timeout: float | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """Submit a job, wait for it, and return its result.

        Raises :class:`JobFailed`, :class:`JobTimedOut`, :class:`JobCrashed` or
        :class:`JobCancelled` if it ends otherwise, and :class:`WaitTimeout` if it has not
        ended after ``wait_timeout`` seconds. ``timeout`` is the job's own, as in ``submit``.
        """
        deadline = _deadline(wait_timeout)
        body = _submit_body(input, messages, data, metadata, timeout)
        # The submit itself long-polls, so a short job answers in one round trip.
        job = await self._submit(body, idempotency_key, self._settings.poll_seconds(deadline))
        return (await self._wait(job.id, deadline, wait_timeout, job)).outcome()

    async def cancel(self, job_id: str) -> Job:
        """Cancel a queued or running job. Raises :class:`Conflict` if it already ended."""
        return Job.from_json(await self._request("POST", f"/jobs/{job_id}/cancel"))

    async def list(
        self,
        status: JobStatus | str | None = None,
        *,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> JobPage:
        """One page of jobs, optionally of one status; pass ``next_cursor`` for the next."""
        params = _list_params(status, limit, cursor)
        return _page(await self._request("GET", "/jobs", params=params))


class Client:
    """Blocking client, with the methods of :class:`AsyncClient`. Use as ``with``."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        timeout: float | httpx.Timeout = 10.0,
        retries: Retries = DEFAULT_RETRIES,
        poll_wait: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._settings = _Settings(base_url, api_key, timeout, retries, poll_wait)
        self._http = httpx.Client(
            base_url=self._settings.base_url,
            headers=self._settings.headers,
            timeout=self._settings.timeout,
            transport=transport,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> Any:
        attempt = 1
        while True:
            try:
                response = self._http.request(
                    method,
                    path,
                    json=json,
                    params=params,
                    headers=headers,
                    timeout=timeout or self._settings.timeout,
                )
            except httpx.TransportError as exc:
                raise TransportError(f"{method} {path}: {exc!r}") from exc
            delay = _retry_delay(response, attempt, self._settings.retries)
            if delay is None:
                return _json(response)
            time.sleep(delay)
            attempt += 1

    def submit(
        self,
        input: Any = None,
        *,
        messages: Sequence[Mapping[str, Any]] | None = None,
        data: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Queue a job and return it at once; see :meth:`AsyncClient.submit`."""
        body = _submit_body(input, messages, data, metadata, timeout)
        return self._submit(body, idempotency_key, 0.0)

    def _submit(self, body: dict[str, Any], idempotency_key: str | None, wait: float) -> Job:
        answer = self._request(
            "POST",
            "/jobs",
            json=body,
            headers=_idempotency(idempotency_key),
            **self._settings.long_poll(wait),
        )
        return Job.from_json(answer)

    def get(self, job_id: str) -> Job:
        """The job as it stands. Raises :class:`NotFound` if unknown or expired."""
        return Job.from_json(self._request("GET", f"/jobs/{job_id}"))

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """The job once terminal; see :meth:`AsyncClient.wait`."""
        return self._wait(job_id, _deadline(timeout), timeout)

    def _wait(
        self, job_id: str, deadline: float | None, timeout: float | None, job: Job | None = None
    ) -> Job:
        while job is None or not job.done:
            if job is not None and deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(job, timeout or 0.0)
            seconds = self._settings.poll_seconds(deadline)
            job = Job.from_json(
                self._request("GET", f"/jobs/{job_id}", **self._settings.long_poll(seconds))
            )
        return job

    def run(
        self,
        input: Any = None,
        *,
        messages: Sequence[Mapping[str, Any]] | None = None,
        data: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        wait_timeout: float | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """Submit, wait, return the result or raise; see :meth:`AsyncClient.run`."""
        deadline = _deadline(wait_timeout)
        body = _submit_body(input, messages, data, metadata, timeout)
        job = self._submit(body, idempotency_key, self._settings.poll_seconds(deadline))
        return self._wait(job.id, deadline, wait_timeout, job).outcome()

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued or running job. Raises :class:`Conflict` if it already ended."""
        return Job.from_json(self._request("POST", f"/jobs/{job_id}/cancel"))

    def list(
        self,
        status: JobStatus | str | None = None,
        *,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> JobPage:
        """One page of jobs, optionally of one status; pass ``next_cursor`` for the next."""
        return _page(self._request("GET", "/jobs", params=_list_params(status, limit, cursor)))
