"""The asynchronous client (Trio or asyncio, through httpx and anyio)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import aclosing
from types import TracebackType
from typing import Any, Self

import anyio
import httpx
from httpx_sse import aconnect_sse

from ..errors import TooManyRequests, TransportError, WaitTimeout
from ..jobs import JobStatus
from ._protocol import (
    DEFAULT_RETRIES,
    DEFAULT_URL,
    MAX_BATCH,
    Job,
    JobPage,
    Retries,
    Settings,
    answer_json,
    batch_answer,
    batch_body,
    deadline_after,
    idempotency_headers,
    job_page,
    list_params,
    retry_delay,
    submit_body,
)
from ._stream import Follow, StreamEvent


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
        self._settings = Settings(base_url, api_key, timeout, retries, poll_wait)
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
            delay = retry_delay(response, attempt, self._settings.retries)
            if delay is None:
                return answer_json(response)
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
        max_attempts: int | None = None,
        stream_mode: str | Sequence[str] | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Queue a job and return it at once (``queued``).

        Give ``input`` (any JSON value), or the seed's chat form: ``messages`` with optional
        ``data`` and ``metadata``. ``timeout`` is the job's ``timeoutSeconds`` on the server,
        ``max_attempts`` its ``maxAttempts``; ``stream_mode`` names the events its log keeps
        (see :meth:`stream_run`). A repeat submit with the same ``idempotency_key`` returns
        the same job.
        """
        body = submit_body(
            input,
            messages,
            data,
            metadata,
            timeout,
            stream_mode=stream_mode,
            max_attempts=max_attempts,
        )
        return await self._submit(body, idempotency_key, 0.0)

    async def submit_many(
        self, inputs: Sequence[Any], *, timeout: float | None = None
    ) -> list[Job]:
        """Queue one job per input in as few requests as it takes (``POST /jobs/batch``, up to
        1,000 jobs a request): the way to submit many jobs fast.

        Returns the queued jobs in input order: all of them, or, when the queue stayed full
        through ``retries``, the first ones (the rest were not queued). Raises
        :class:`TooManyRequests` if none could be.
        """
        jobs: list[Job] = []
        attempt = 1
        while len(jobs) < len(inputs):
            chunk = inputs[len(jobs) : len(jobs) + MAX_BATCH]
            try:
                answer = await self._request("POST", "/jobs/batch", json=batch_body(chunk, timeout))
            except TooManyRequests:
                if jobs:
                    return jobs
                raise
            queued, rejected = batch_answer(answer)
            jobs += queued
            if not rejected:
                attempt = 1
                continue
            delay = self._settings.retries.delay(attempt, None)  # the queue was full
            if delay is None:
                return jobs
            await anyio.sleep(delay)
            attempt += 1
        return jobs

    async def _submit(self, body: dict[str, Any], idempotency_key: str | None, wait: float) -> Job:
        answer = await self._request(
            "POST",
            "/jobs",
            json=body,
            headers=idempotency_headers(idempotency_key),
            **self._settings.long_poll(wait),
        )
        return Job.from_json(answer)

    async def get(self, job_id: str, *, include_input: bool = False) -> Job:
        """The job as it stands (with its ``input`` if asked). Raises :class:`NotFound` if
        unknown or expired."""
        params = {"include": "input"} if include_input else None
        return Job.from_json(await self._request("GET", f"/jobs/{job_id}", params=params))

    async def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """The job once terminal, long-polling the server. Never raises for the job's outcome.

        Raises :class:`WaitTimeout` (a ``TimeoutError``) if it is not terminal after
        ``timeout`` seconds; the job goes on running.
        """
        return await self._wait(job_id, deadline_after(timeout), timeout)

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
        max_attempts: int | None = None,
        stream_mode: str | Sequence[str] | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """Submit a job, wait for it, and return its result.

        Raises :class:`JobFailed`, :class:`JobTimedOut`, :class:`JobCrashed` or
        :class:`JobCancelled` if it ends otherwise, and :class:`WaitTimeout` if it has not
        ended after ``wait_timeout`` seconds. ``timeout``, ``max_attempts`` and
        ``stream_mode`` are the job's own, as in ``submit``.
        """
        deadline = deadline_after(wait_timeout)
        body = submit_body(
            input,
            messages,
            data,
            metadata,
            timeout,
            stream_mode=stream_mode,
            max_attempts=max_attempts,
        )
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
        params = list_params(status, limit, cursor)
        return job_page(await self._request("GET", "/jobs", params=params))

    def stream(self, job_id: str, *, after: int | None = None) -> AsyncIterator[StreamEvent]:
        """The job's events as they happen (``GET /jobs/{id}/events``), up to and including
        its end (``event.terminal``): then the iteration stops.

        A fresh stream opens with the ``job`` event (id 0); ``after`` resumes after that
        event id instead: exactly the events that followed it. A connection that breaks or
        ends before the job's end is resumed with ``Last-Event-ID`` after the last event
        seen, so no event is seen twice or missed. ``retries`` governs the reconnects as it
        does requests, each event starting the count again: up to ``max_attempts - 1``
        reconnects without an event, ``backoff * 2**n`` apart (a 429 or 503 answer: its
        ``Retry-After``), then :class:`TransportError`. The read timeout must exceed the server's
        ``stream_heartbeat`` (5 s by default): a stream silent for longer is taken for
        broken. Raises :class:`NotFound` for an unknown job, :class:`InvalidRequest` for an
        ``after`` that is not one of its events. Stopping early (``break``) closes the
        connection once the iterator is closed (``contextlib.aclosing``); the job goes on.
        """
        url = f"/jobs/{job_id}/events"
        return self._follow(Follow(self._settings.retries, url, job_id=job_id, after=after))

    def stream_run(
        self,
        input: Any = None,
        *,
        stream_mode: str | Sequence[str] | None = None,
        timeout: float | None = None,
        max_attempts: int | None = None,
        idempotency_key: str | None = None,
    ) -> AsyncIterator[StreamEvent]:
        """Submit a job and stream its events (``POST /jobs?stream=true``), as :meth:`stream`.

        ``stream_mode`` names the events the job's log keeps: a name or a list of names
        (``["updates", "custom"]``; ``[]`` keeps none of the graph's); by default all the
        graph emits (a LangGraph graph: ``updates`` and ``custom``). The stream, once open,
        is resumed at its ``Location``; a submit whose connection fails before the server
        answered raises :class:`TransportError` at once (the job may or may not have been
        queued: give an ``idempotency_key`` to submit again safely).
        """
        body = submit_body(
            input, None, None, None, timeout, stream_mode=stream_mode, max_attempts=max_attempts
        )
        follow = Follow(
            self._settings.retries,
            "/jobs",
            method="POST",
            params={"stream": "true"},
            json=body,
            headers=idempotency_headers(idempotency_key),
        )
        return self._follow(follow)

    async def _follow(self, follow: Follow) -> AsyncIterator[StreamEvent]:
        while True:
            cause: httpx.TransportError | None = None
            wait: float | None = None
            try:
                async with aconnect_sse(self._http, **follow.request()) as source:
                    if not source.response.is_success:
                        await source.response.aread()
                        wait = follow.refused(source.response)
                    else:
                        follow.open(source.response)
                        async with aclosing(source.aiter_sse()) as messages:
                            async for message in messages:
                                event = follow.take(message)
                                if event is not None:
                                    yield event
                                    if event.terminal:
                                        return
            except httpx.TransportError as exc:
                cause = exc
            if wait is None:
                ask = follow.job_to_ask(cause)
                if ask is not None and (await self.get(ask)).done:
                    return  # resumed after its end: nothing follows
                wait = follow.dropped(cause)
            await anyio.sleep(wait)
