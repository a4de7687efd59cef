"""What each job route does: read its input, call the engine, shape the answer.

Free of any framework: a handler takes the request's parts as plain values and returns a
:data:`Reply` (status, JSON-able body, headers). The Quart routes (``routes.py``) and the
fast path (``fastpath.py``) are only transports around these, so the hot routes answer the
same either way. Errors are raised, typed (the engine's, or an ``HttpError``), and answered
by the pipeline from the one table in ``errors.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from .. import tracing
from ..config import Config
from ..engine_thread import AnyEngine
from ..jobs import Job
from ..logs import get_logger
from . import caller
from .errors import retry_after, timeout_refused
from .parsing import (
    Params,
    idempotency_key,
    parse_batch,
    parse_include,
    parse_list_query,
    parse_submit,
    parse_wait,
    query_error,
)
from .schemas import job_body

log = get_logger("graphnursery.http")

Reply = tuple[int, Any, dict[str, str]]


class JobHandlers:
    """The job routes, over the running engine (``engine()`` raises ``EngineClosed`` when
    there is none)."""

    def __init__(self, engine: Callable[[], AnyEngine], config: Config) -> None:
        self._engine = engine
        self._config = config

    async def execute(self, headers: Params, body: bytes) -> Reply:
        """``POST /execute``: the seed's submit, answered 200 with the seed's shape."""
        engine = self._engine()
        job = await self._submit(engine, headers, body)
        return (
            200,
            {"jobId": job.id, "status": job.status.value, "position": _position(engine, job)},
            {},
        )

    async def create(
        self, query: Params, headers: Params, body: bytes, graph: str | None = None
    ) -> Reply:
        """``POST /jobs[?wait=S]`` (and ``POST /graphs/{graph}/jobs``): 202, or 200 with the
        ended job if it ends within S s."""
        wait = parse_wait(query, self._config)
        engine = self._engine()
        job = await self._submit(engine, headers, body, graph)
        if wait:
            job = await engine.wait(job.id, wait, caller.visible())
        status = 200 if job.status.is_terminal else 202
        return status, job_body(job, engine.position(job.id)), {"Location": f"/jobs/{job.id}"}

    async def read(self, job_id: str, query: Params) -> Reply:
        """``GET /jobs/{id}[?wait=S][&include=input]``."""
        wait = parse_wait(query, self._config)
        with_input = parse_include(query)
        engine = self._engine()
        seen = caller.visible()
        job = await (engine.wait(job_id, wait, seen) if wait else engine.get(job_id, seen))
        return 200, job_body(job, engine.position(job_id), with_input=with_input), {}

    async def cancel(self, job_id: str) -> Reply:
        return 200, job_body(await self._engine().cancel(job_id, caller.visible())), {}

    async def retry(self, job_id: str) -> Reply:
        """``POST /jobs/{id}/retry``: a finished job's input, queued again as a new job."""
        engine = self._engine()
        job = await engine.resubmit(job_id, caller.visible())
        return 202, job_body(job, engine.position(job.id)), {"Location": f"/jobs/{job.id}"}

    async def list(self, query: Params) -> Reply:
        engine = self._engine()
        status, limit, cursor, graph = parse_list_query(query)
        try:
            jobs, next_cursor = await engine.list_jobs(
                status, limit, cursor, graph, caller.visible()
            )
        except ValueError as exc:
            raise query_error("cursor", str(exc)) from None
        page = [job_body(job, engine.position(job.id), with_input=True) for job in jobs]
        return 200, {"jobs": page, "nextCursor": next_cursor}, {}

    async def batch(self, query: Params, body: bytes) -> Reply:
        """``POST /jobs/batch[?wait=S]`` (what it answers: the route's doc, in ``routes.py``)."""
        wait = parse_wait(query, self._config)
        engine = self._engine()
        batch = parse_batch(body)
        # All or none: refuse the request before any of its jobs is queued.
        for index, item in enumerate(batch.jobs):
            if (
                item.timeoutSeconds is not None
                and item.timeoutSeconds > self._config.max_job_timeout
            ):
                raise timeout_refused(f"jobs.{index}.timeoutSeconds", self._config.max_job_timeout)
        accepted, rejected = await engine.submit_batch(
            [(item.input, item.timeoutSeconds, item.maxAttempts) for item in batch.jobs],
            workspace=caller.workspace(),
        )
        if not accepted and rejected is not None:
            raise rejected
        if wait:
            with trio.move_on_after(wait):
                for index, job in enumerate(accepted):
                    accepted[index] = await engine.wait(job.id, wait)
            accepted = [await engine.get(job.id) for job in accepted]
        status = 200 if all(job.status.is_terminal for job in accepted) else 202
        reply = {
            "jobs": [job_body(job, engine.position(job.id)) for job in accepted],
            "rejected": len(batch.jobs) - len(accepted),
        }
        return status, reply, {} if rejected is None else retry_after(rejected.retry_after)

    async def submit_to_stream(
        self, query: Params, headers: Params, body: bytes, graph: str | None = None
    ) -> Job:
        """``POST /jobs?stream=true`` (and ``/execute``, ``/graphs/{graph}/jobs``): the job,
        to stream it (a ``wait`` is checked, then moot: the stream follows the job to its
        end)."""
        parse_wait(query, self._config)
        return await self._submit(self._engine(), headers, body, graph)

    async def _submit(
        self, engine: AnyEngine, headers: Params, body: bytes, graph: str | None = None
    ) -> Job:
        submit = parse_submit(body)
        key = idempotency_key(headers)
        with tracing.remote_parent(headers):
            job = await engine.submit(
                submit.input,
                graph=graph,
                timeout=submit.timeout,
                idempotency_key=key,
                max_attempts=submit.max_attempts,
                stream_mode=submit.stream_mode,
                workspace=caller.workspace(),
            )
        log.debug("job submitted", job_id=job.id)
        return job


def _position(engine: AnyEngine, job: Job) -> int:
    return engine.position(job.id) or 0
