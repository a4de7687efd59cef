"""The Quart routes: each reads its request's parts and hands them to a handler.

What a job route does is in ``handlers.py`` (the fast path calls the same code); what it
documents is here, for the OpenAPI document. Probes and statistics are in ``probes.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from quart import Quart, Response, request
from quart_schema import document

from ..jobs import Job
from . import bodies
from .handlers import JobHandlers, Reply
from .openapi import SUBMIT_ERRORS, answers, event_stream, waiting_submit
from .parsing import parse_stream
from .pipeline import Pipeline
from .schemas import (
    BatchAccepted,
    BatchSubmit,
    EventsQuery,
    JobModel,
    JobPage,
    JobQuery,
    ListQuery,
    SeedAccepted,
    Submit,
    SubmitQuery,
)
from .sse import HEADERS, EventStream, Streams


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


def stream_response(stream: EventStream, headers: dict[str, str] | None = None) -> Response:
    response = Response(stream.body(), 200, {**HEADERS, **(headers or {})})
    response.timeout = None  # a stream lasts as long as its job (Quart's limit is for answers)
    return response


def submitted_stream(streams: Streams, job: Job) -> Response:
    """A submit's answer with ``?stream=true``: the new job's event stream."""
    stream = streams.of_submitted(job)
    return stream_response(
        stream, {"Location": stream.location, "Content-Location": f"/jobs/{job.id}"}
    )


async def submit_to_graph(
    handlers: JobHandlers, streams: Streams, body: bytes, graph: str
) -> Response:
    """``POST /graphs/{graph}/jobs`` and ``/flows/{flow}/jobs``: ``POST /jobs`` for it."""
    if parse_stream(request.args):
        job = await handlers.submit_to_stream(request.args, request.headers, body, graph)
        return submitted_stream(streams, job)
    return respond(await handlers.create(request.args, request.headers, body, graph))


def add_job_routes(app: Quart, handlers: JobHandlers, streams: Streams, pipeline: Pipeline) -> None:
    async def body() -> bytes:
        return await pipeline.read_body(request.body)

    async def submit_and_stream() -> Response:
        job = await handlers.submit_to_stream(request.args, request.headers, await body())
        return submitted_stream(streams, job)

    @app.post("/execute")
    @document(
        querystring=SubmitQuery, request=Submit, responses=answers(SeedAccepted, *SUBMIT_ERRORS)
    )
    async def execute() -> Response:
        if parse_stream(request.args):
            return await submit_and_stream()
        return respond(await handlers.execute(request.headers, await body()))

    @app.post("/jobs")
    @waiting_submit(Submit, JobModel)
    async def create_job() -> Response:
        if parse_stream(request.args):
            return await submit_and_stream()
        return respond(await handlers.create(request.args, request.headers, await body()))

    @app.get("/jobs/<job_id>/events")
    @event_stream(EventsQuery)
    async def job_events(job_id: str) -> Response:
        """The job's events as Server-Sent Events: the job as it stands, then each event of
        its log (what its graph emits, its attempts starting and ending), then its end.
        Resumes after ``Last-Event-ID`` (or ``?after=``)."""
        stream = await streams.open(job_id, streams.resume_after(request.headers, request.args))
        return stream_response(stream)

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
