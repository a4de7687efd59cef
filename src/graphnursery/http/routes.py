"""The Quart routes: each reads its request's parts and hands them to a handler.

What a job route does is in ``handlers.py`` (the fast path calls the same code); what it
documents is here, for the OpenAPI document. Probes and statistics are in ``probes.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from quart import Quart, Response, request
from quart_schema import document

from . import bodies
from .handlers import JobHandlers, Reply
from .openapi import SUBMIT_ERRORS, answers, waiting_submit
from .pipeline import Pipeline
from .schemas import (
    BatchAccepted,
    BatchSubmit,
    JobModel,
    JobPage,
    JobQuery,
    ListQuery,
    SeedAccepted,
    Submit,
)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    parts = bodies.encode(body)
    if len(parts) == 1:
        return Response(parts[0], status=status, headers=headers, content_type="application/json")
    # A large result, written as it is in parts (see .bodies).
    length = {"Content-Length": str(bodies.size(parts))}
    return Response(
        _each(parts), status, {**(headers or {}), **length}, content_type="application/json"
    )


async def _each(parts: bodies.Parts) -> AsyncIterator[bytes | memoryview]:
    for part in parts:
        yield part


def respond(reply: Reply) -> Response:
    status, body, headers = reply
    return json_response(body, status, headers)


def add_job_routes(app: Quart, handlers: JobHandlers, pipeline: Pipeline) -> None:
    async def body() -> bytes:
        return await pipeline.read_body(request.body)

    @app.post("/execute")
    @document(request=Submit, responses=answers(SeedAccepted, *SUBMIT_ERRORS))
    async def execute() -> Response:
        return respond(await handlers.execute(request.headers, await body()))

    @app.post("/jobs")
    @waiting_submit(Submit, JobModel)
    async def create_job() -> Response:
        return respond(await handlers.create(request.args, request.headers, await body()))

    @app.get("/jobs/<job_id>")
    @document(querystring=JobQuery, responses=answers(JobModel, 400, 401, 404, 503))
    async def get_job(job_id: str) -> Response:
        return respond(await handlers.read(job_id, request.args))

    @app.post("/jobs/<job_id>/cancel")
    @document(responses=answers(JobModel, 401, 404, 409, 503))
    async def cancel_job(job_id: str) -> Response:
        return respond(await handlers.cancel(job_id))

    @app.post("/jobs/batch")
    @waiting_submit(BatchSubmit, BatchAccepted)
    async def create_jobs() -> Response:
        """Submit many jobs in one request (amortizes HTTP's cost over the batch).

        Accepted in order until the queue is full; the rest are counted in ``rejected``
        (429 if none was accepted). With ``?wait=S``, answers once every accepted job has
        ended (200) or after S seconds (202), with the jobs as they stand.
        """
        return respond(await handlers.batch(request.args, await body()))

    @app.post("/jobs/<job_id>/retry")
    @document(responses=answers(JobModel, 401, 404, 409, 429, 503, ok=(202,)))
    async def retry_job(job_id: str) -> Response:
        return respond(await handlers.retry(job_id))

    @app.get("/jobs")
    @document(querystring=ListQuery, responses=answers(JobPage, 400, 401, 503))
    async def list_jobs() -> Response:
        return respond(await handlers.list(request.args))
