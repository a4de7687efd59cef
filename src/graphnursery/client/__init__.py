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

from ..errors import (
    ApiError,
    ClientError,
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
from ._async import AsyncClient
from ._protocol import DEFAULT_RETRIES, DEFAULT_URL, NO_RETRIES, Job, JobPage, Retries
from ._sync import Client

__all__ = [
    "DEFAULT_RETRIES",
    "DEFAULT_URL",
    "NO_RETRIES",
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
