"""The LangGraph Platform API's runs: stateless (``/runs``) and on threads
(``/threads/{thread_id}/runs``), each one a job of its assistant's graph (see
:mod:`graphnursery.threads` and, for what is not HTTP, :mod:`.run_handlers`).

- ``POST .../runs`` queues a run and answers it (``pending``); ``.../runs/wait`` answers
  its output once it ends (the state it ended in; ``{"__error__": {error, message}}`` if it
  failed), sending a newline every ``stream_heartbeat`` seconds (at most 5) meanwhile so
  that proxies keep the connection; ``.../runs/stream`` streams its events as LangGraph's
  SDK reads them (:class:`~.sse.LangGraphFraming`).
- ``GET .../runs/{run_id}`` is the run, ``.../join`` its output (as ``/wait``),
  ``.../stream`` its events again (``Last-Event-ID`` resumes after one: ids are sent for
  runs made with ``stream_resumable``), ``POST .../cancel`` stops it (``action=rollback``
  deletes it too; ``wait=1`` answers once it ended), ``DELETE`` deletes it.
"""

from __future__ import annotations

from collections.abc import Callable

from quart import Quart, Response, request
from quart_schema import document

from ..config import Config
from ..engine_thread import AnyEngine
from ..jobs import Job
from . import caller
from .assistants import AnyJson
from .errors import bad_field
from .handlers import Reply
from .openapi import answers, errors
from .pipeline import Pipeline
from .routes import json_response, stream_response
from .run_handlers import (
    RunCreate,
    RunHandlers,
    RunModel,
    Streamed,
    cancel_quietly,
    paths,
    run_body,
)
from .schemas import ErrorModel
from .sse import LangGraphFraming, Streams


def reply_response(reply: Reply) -> Response:
    """A :class:`RunHandlers` reply as Quart's answer (a :class:`Streamed` one in chunks)."""
    status, body, headers = reply
    if isinstance(body, Streamed):
        response = Response(body.chunks, status, headers, content_type="application/json")
        response.timeout = None  # as long as its run (Quart's limit is for answers)
        return response
    return json_response(body, status, headers)


def add_run_routes(
    app: Quart,
    engine: Callable[[], AnyEngine],
    pipeline: Pipeline,
    streams: Streams,
    config: Config,
    runs: RunHandlers,
) -> None:
    async def create(thread_id: str | None) -> tuple[Job, RunCreate]:
        return await runs.create(thread_id, await pipeline.read_body(request.body))

    def stream_of(job: Job, body: RunCreate) -> Response:
        framing = LangGraphFraming(resumable=body.stream_resumable)
        stream = streams.of_submitted(job, framing)
        if body.on_disconnect == "cancel":
            stream.on_disconnect = lambda: cancel_quietly(engine(), job, caller.visible())
        return stream_response(stream, paths(job))

    # -- creating runs -------------------------------------------------------------------

    @app.post("/threads/<thread_id>/runs")
    @document(request=RunCreate, responses=answers(RunModel, 400, 401, 404, 409, 429))
    async def create_thread_run(thread_id: str) -> Response:
        """Queue a run on the thread; answers the run."""
        job, _ = await create(thread_id)
        return json_response(run_body(job), headers=paths(job))

    @app.post("/runs")
    @document(request=RunCreate, responses=answers(RunModel, 400, 401, 404, 429))
    async def create_stateless_run() -> Response:
        """Queue a run with no thread; answers the run."""
        job, _ = await create(None)
        return json_response(run_body(job), headers=paths(job))

    @app.post("/threads/<thread_id>/runs/wait")
    @document(request=RunCreate, responses=answers(AnyJson, 400, 401, 404, 409, 429))
    async def wait_thread_run(thread_id: str) -> Response:
        """Run on the thread and answer its output once it ends."""
        return reply_response(await runs.wait(thread_id, await pipeline.read_body(request.body)))

    @app.post("/runs/wait")
    @document(request=RunCreate, responses=answers(AnyJson, 400, 401, 404, 429, 503))
    async def wait_run() -> Response:
        """Run with no thread and answer its output once it ends."""
        return reply_response(await runs.wait(None, await pipeline.read_body(request.body)))

    @app.post("/threads/<thread_id>/runs/stream")
    @document(request=RunCreate, responses={200: (ErrorModel, None), **errors(400, 404, 409)})
    async def stream_thread_run(thread_id: str) -> Response:
        """Run on the thread, streaming its events."""
        job, body = await create(thread_id)
        return stream_of(job, body)

    @app.post("/runs/stream")
    @document(request=RunCreate, responses={200: (ErrorModel, None), **errors(400, 401, 404)})
    async def stream_run() -> Response:
        """Run with no thread, streaming its events."""
        job, body = await create(None)
        return stream_of(job, body)

    # -- a thread's runs -------------------------------------------------------------------

    @app.get("/threads/<thread_id>/runs")
    @document(responses=answers(AnyJson, 401, 404))
    async def list_runs(thread_id: str) -> Response:
        """The thread's runs, newest first (``limit``, ``offset``, ``status``)."""
        limit = _int_arg("limit", 10, 1, 1000)
        offset = _int_arg("offset", 0, 0, 10**9)
        status = request.args.get("status")
        jobs = await engine().threads.runs(thread_id, caller.visible(), limit, offset)
        runs = [run_body(job) for job in jobs]
        return json_response([run for run in runs if status in (None, run["status"])])

    @app.get("/threads/<thread_id>/runs/<run_id>")
    @document(responses=answers(RunModel, 401, 404))
    async def get_run(thread_id: str, run_id: str) -> Response:
        """One run of the thread."""
        job = await engine().threads.run(thread_id, run_id, caller.visible())
        return json_response(run_body(job), headers=paths(job))

    @app.get("/threads/<thread_id>/runs/<run_id>/join")
    @document(responses=answers(AnyJson, 401, 404))
    async def join_run(thread_id: str, run_id: str) -> Response:
        """The run's output, once it ends."""
        job = await engine().threads.run(thread_id, run_id, caller.visible())
        return reply_response(await runs.wait_reply(job))

    @app.get("/threads/<thread_id>/runs/<run_id>/stream")
    @document(responses={200: (ErrorModel, None), **errors(400, 401, 404)})
    async def join_stream(thread_id: str, run_id: str) -> Response:
        """The run's events, again: after ``Last-Event-ID`` when one is sent."""
        job = await engine().threads.run(thread_id, run_id, caller.visible())
        after = streams.resume_after(request.headers, request.args)
        resumable = bool((job.run_options or {}).get("stream_resumable"))
        stream = await streams.open(job.id, after, LangGraphFraming(resumable=resumable))
        return stream_response(stream, paths(job))

    @app.post("/threads/<thread_id>/runs/<run_id>/cancel")
    @document(responses=answers(RunModel, 401, 404))
    async def cancel_run(thread_id: str, run_id: str) -> Response:
        """Stop the run (``action``: ``interrupt``, or ``rollback`` to delete it too;
        ``wait=1``: answer once it ended)."""
        action = request.args.get("action", "interrupt")
        if action not in ("interrupt", "rollback"):
            raise bad_field("invalid_query", "action", "must be interrupt or rollback", "query")
        served, visible = engine(), caller.visible()
        job = await served.threads.cancel_run(thread_id, run_id, visible, action)
        if request.args.get("wait") in ("1", "true") and action == "interrupt":
            job = await served.wait(job.id, config.max_job_timeout, visible)
        return json_response(run_body(job))

    @app.delete("/threads/<thread_id>/runs/<run_id>")
    @document(responses=answers(AnyJson, 401, 404, ok=(204,)))
    async def delete_run(thread_id: str, run_id: str) -> Response:
        """Delete the run (stopping it first if it runs)."""
        await engine().threads.delete_run(thread_id, run_id, caller.visible())
        return Response(b"", 204, content_type="application/json")


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not raw.strip().isdigit() or not low <= int(raw) <= high:
        raise bad_field("invalid_query", name, f"must be an integer from {low} to {high}", "query")
    return int(raw)
