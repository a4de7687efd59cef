"""Python client for a graphnursery server: :class:`Client` (blocking) and :class:`AsyncClient`.

``AsyncClient`` runs under Trio and under asyncio alike (httpx, through anyio)::

    from graphnursery import AsyncClient

    async with AsyncClient("http://127.0.0.1:8000") as client:
        result = await client.run({"question": "hi"})     # submit, then long-poll to the end
        job = await client.submit({"question": "hi"})      # -> Job, status "queued"
        job = await client.wait(job.id, timeout=60)        # -> Job, terminal

``Client`` has the same methods, blocking. Jobs come back as :class:`Job` value objects.

A job's events come as :class:`StreamEvent` values, from ``stream(job_id)`` or, submitting
the job too, ``stream_run(input, stream_mode=...)``; a dropped connection is resumed with
``Last-Event-ID``, so each event is seen once::

    async for event in client.stream_run({"question": "hi"}, stream_mode="custom"):
        print(event.id, event.event, event.data)   # the job, its events, then its end

Answers 429 (queue full) and 503 (draining) are retried after the server's ``Retry-After``,
up to :class:`Retries` ``max_attempts``; nothing else is retried. Every error either client
raises is a :class:`~graphnursery.errors.ClientError`: ``ApiError`` and its branch by
status (``InvalidRequest`` 400, ``NotFound`` 404, ``TooManyRequests`` 429, ...),
``TransportError``, ``UnexpectedResponse``, ``WaitTimeout``, and from ``run()`` the
``JobUnsuccessful`` branch (``JobFailed``, ``JobTimedOut``, ``JobCrashed``,
``JobCancelled``). The whole tree, with what each one means, is in :mod:`graphnursery.errors`.

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
from ._stream import StreamEvent
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
    "StreamEvent",
    "TooManyRequests",
    "TransportError",
    "Unauthorized",
    "Unavailable",
    "UnexpectedResponse",
    "WaitTimeout",
]
