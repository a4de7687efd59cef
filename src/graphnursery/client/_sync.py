"""The blocking client: :class:`AsyncClient`'s methods over a blocking httpx client."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import httpx
from httpx_sse import connect_sse

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
        self._settings = Settings(base_url, api_key, timeout, retries, poll_wait)
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
            delay = retry_delay(response, attempt, self._settings.retries)
            if delay is None:
                return answer_json(response)
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
        max_attempts: int | None = None,
        stream_mode: str | Sequence[str] | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Queue a job and return it at once; see :meth:`AsyncClient.submit`."""
        body = submit_body(
            input,
            messages,
            data,
            metadata,
            timeout,
            stream_mode=stream_mode,
            max_attempts=max_attempts,
        )
        return self._submit(body, idempotency_key, 0.0)

    def submit_many(self, inputs: Sequence[Any], *, timeout: float | None = None) -> list[Job]:
        """Queue one job per input in few requests; see :meth:`AsyncClient.submit_many`."""
        jobs: list[Job] = []
        attempt = 1
        while len(jobs) < len(inputs):
            chunk = inputs[len(jobs) : len(jobs) + MAX_BATCH]
            try:
                answer = self._request("POST", "/jobs/batch", json=batch_body(chunk, timeout))
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
            time.sleep(delay)
            attempt += 1
        return jobs

    def _submit(self, body: dict[str, Any], idempotency_key: str | None, wait: float) -> Job:
        answer = self._request(
            "POST",
            "/jobs",
            json=body,
            headers=idempotency_headers(idempotency_key),
            **self._settings.long_poll(wait),
        )
        return Job.from_json(answer)

    def get(self, job_id: str, *, include_input: bool = False) -> Job:
        """The job as it stands; see :meth:`AsyncClient.get`."""
        params = {"include": "input"} if include_input else None
        return Job.from_json(self._request("GET", f"/jobs/{job_id}", params=params))

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """The job once terminal; see :meth:`AsyncClient.wait`."""
        return self._wait(job_id, deadline_after(timeout), timeout)

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
        max_attempts: int | None = None,
        stream_mode: str | Sequence[str] | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """Submit, wait, return the result or raise; see :meth:`AsyncClient.run`."""
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
        return job_page(self._request("GET", "/jobs", params=list_params(status, limit, cursor)))

    def stream(self, job_id: str, *, after: int | None = None) -> Iterator[StreamEvent]:
        """The job's events up to and including its end, resumed across dropped
        connections; see :meth:`AsyncClient.stream`."""
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
    ) -> Iterator[StreamEvent]:
        """Submit a job and stream its events; see :meth:`AsyncClient.stream_run`."""
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

    def _follow(self, follow: Follow) -> Iterator[StreamEvent]:
        while True:
            cause: httpx.TransportError | None = None
            wait: float | None = None
            try:
                with connect_sse(self._http, **follow.request()) as source:
                    if not source.response.is_success:
                        source.response.read()
                        wait = follow.refused(source.response)
                    else:
                        follow.open(source.response)
                        for message in source.iter_sse():
                            event = follow.take(message)
                            if event is not None:
                                yield event
                                if event.terminal:
                                    return
            except httpx.TransportError as exc:
                cause = exc
            if wait is None:
                ask = follow.job_to_ask(cause)
                if ask is not None and self.get(ask).done:
                    return  # resumed after its end: nothing follows
                wait = follow.dropped(cause)
            time.sleep(wait)
