"""The LangGraph Platform API's runs: stateless (``/runs``) and on threads
(``/threads/{thread_id}/runs``), each one a job of its assistant's graph (see
:mod:`graphnursery.threads`).

- ``POST .../runs`` queues a run and answers it (``pending``); ``.../runs/wait`` answers
  its output once it ends (the state it ended in; ``{"__error__": {error, message}}`` if it
  failed), sending a newline every ``stream_heartbeat`` seconds meanwhile so that proxies
  keep the connection; ``.../runs/stream`` streams its events as LangGraph's SDK reads
  them (:class:`~.sse.LangGraphFraming`).
- ``GET .../runs/{run_id}`` is the run, ``.../join`` its output (as ``/wait``),
  ``.../stream`` its events again (``Last-Event-ID`` resumes after one: ids are sent for
  runs made with ``stream_resumable``), ``POST .../cancel`` stops it (``action=rollback``
  deletes it too; ``wait=1`` answers once it ended), ``DELETE`` deletes it.

A run's status is LangGraph's: ``pending`` (queued), ``running``, ``success``,
``interrupted`` (it stopped at an interrupt, or was cancelled), ``error`` (failed or
crashed: the error says which), ``timeout``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
import trio
from pydantic import BaseModel, ConfigDict, Field
from quart import Quart, Response, request
from quart_schema import document

from ..config import Config
from ..engine_thread import AnyEngine
from ..errors import EngineClosed, JobNotFound
from ..events import parse_stream_mode
from ..jobs import Job, JobError, JobStatus
from ..store.threads import INTERRUPT
from ..threads import RunRequest
from . import caller
from .assistants import AnyJson, assistant_id, find_assistant, read_body
from .errors import bad_field
from .openapi import answers, errors
from .pipeline import Pipeline
from .routes import json_response, stream_response
from .schemas import ErrorModel
from .sse import LangGraphFraming, Streams

#: LangGraph's stream modes as graphnursery's events name them.
_MODE_NAMES = {"messages-tuple": "messages"}
#: Options of a run the worker reads (see ``graphnursery._threads``).
_WORKER_OPTIONS = (
    "config",
    "context",
    "command",
    "interrupt_before",
    "interrupt_after",
    "checkpoint",
    "checkpoint_id",
    "stream_subgraphs",
)


class Command(BaseModel):
    model_config = ConfigDict(extra="forbid")
    resume: Any = None
    update: Any = None
    goto: str | list[str] | None = None


class RunCreate(BaseModel):
    """A run of an assistant (LangGraph's ``RunCreateStateful``/``Stateless``): what is
    read of it (webhooks, durability and LangSmith options are accepted and ignored)."""

    model_config = ConfigDict(extra="ignore")

    assistant_id: str
    input: Any = None
    command: Command | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    stream_mode: str | list[str] = "values"
    stream_subgraphs: bool = False
    stream_resumable: bool = False
    interrupt_before: Literal["*"] | list[str] | None = None
    interrupt_after: Literal["*"] | list[str] | None = None
    checkpoint: dict[str, Any] | None = None
    checkpoint_id: str | None = None
    multitask_strategy: Literal["reject", "interrupt", "rollback", "enqueue"] = "enqueue"
    if_not_exists: Literal["create", "reject"] = "reject"
    on_disconnect: Literal["cancel", "continue"] = "continue"
    after_seconds: float | None = Field(None, ge=0)


class RunModel(BaseModel):
    run_id: str
    thread_id: str | None
    assistant_id: str
    created_at: str
    updated_at: str
    status: str
    metadata: dict[str, Any]
    multitask_strategy: str
    kwargs: dict[str, Any]


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def run_status(job: Job) -> str:
    """LangGraph's status of the run ``job`` is."""
    if job.status is JobStatus.COMPLETED:
        interrupted = job.result_json is not None and INTERRUPT.encode() in job.result_json
        return "interrupted" if interrupted and INTERRUPT in (job.result or {}) else "success"
    return _STATUSES[job.status]


_STATUSES = {
    JobStatus.QUEUED: "pending",
    JobStatus.RUNNING: "running",
    JobStatus.FAILED: "error",
    JobStatus.CRASHED: "error",
    JobStatus.TIMED_OUT: "timeout",
    JobStatus.CANCELLED: "interrupted",
}


def run_body(job: Job) -> dict[str, Any]:
    options = job.run_options or {}
    updated = job.completed_at or job.started_at or job.created_at
    kwargs = {key: options.get(key) for key in _WORKER_OPTIONS}
    return {
        "run_id": job.id,
        "thread_id": job.thread_id,
        "assistant_id": options.get("assistant_id", ""),
        "created_at": iso(job.created_at),
        "updated_at": iso(updated),
        "status": run_status(job),
        "metadata": options.get("metadata") or {},
        "multitask_strategy": options.get("multitask_strategy", "enqueue"),
        "kwargs": {**kwargs, "input": job.input, "stream_mode": list(job.stream_mode or ())},
    }


def output(job: Job) -> Any:
    """What ``/wait`` and ``/join`` answer for a run that ended: its output, or the error."""
    if job.status is JobStatus.COMPLETED:
        return orjson.Fragment(job.result_json or b"null")
    error = job.error or JobError(job.status.value, f"the run ended {job.status.value}")
    return {"__error__": {"error": error.type, "message": error.message}}


def paths(job: Job) -> dict[str, str]:
    """A run's ``Content-Location`` (the run) and ``Location`` (its stream, to join)."""
    base = f"/runs/{job.id}" if job.thread_id is None else f"/threads/{job.thread_id}/runs/{job.id}"
    return {"Content-Location": base, "Location": f"{base}/stream"}


def add_run_routes(
    app: Quart,
    engine: Callable[[], AnyEngine],
    pipeline: Pipeline,
    streams: Streams,
    config: Config,
) -> None:
    heartbeat = min(config.stream_heartbeat, 5.0)

    async def create(thread_id: str | None) -> tuple[Job, RunCreate]:
        body = await read_body(pipeline, RunCreate)
        served = engine()
        graph = find_assistant(served, body.assistant_id)
        wanted = [body.stream_mode] if isinstance(body.stream_mode, str) else body.stream_mode
        try:
            stream_mode = parse_stream_mode([_MODE_NAMES.get(mode, mode) for mode in wanted])
        except ValueError as exc:
            raise bad_field("invalid_body", "stream_mode", str(exc), "value_error") from None
        options = body.model_dump(include=set(_WORKER_OPTIONS), exclude_none=True)
        if body.metadata:
            options["metadata"] = body.metadata
        run = RunRequest(
            graph=graph.name,
            assistant_id=assistant_id(graph.name),  # the uuid, if the request named the graph
            input=body.input,
            options=options,
            stream_mode=stream_mode,
            multitask_strategy=body.multitask_strategy,
            if_not_exists=body.if_not_exists,
            workspace=caller.workspace(),
            after_seconds=body.after_seconds or 0.0,
        )
        job = await served.threads.create_run(thread_id, run)
        return job, body

    async def waited(job: Job, cancel_on_disconnect: bool) -> AsyncIterator[bytes]:
        """Newlines while the run goes on, then its output (JSON allows the whitespace)."""
        served, visible = engine(), caller.visible()
        finished = False
        try:
            while True:
                try:
                    now = await served.wait(job.id, heartbeat, visible)
                except (JobNotFound, EngineClosed) as exc:
                    gone = {"__error__": {"error": type(exc).__name__, "message": str(exc)}}
                    finished = True
                    yield orjson.dumps(gone)
                    return
                if now.status.is_terminal:
                    finished = True
                    yield orjson.dumps(output(now))
                    return
                yield b"\n"
        finally:
            if cancel_on_disconnect and not finished:
                await _cancel_quietly(served, job, visible)

    def wait_response(job: Job, cancel_on_disconnect: bool = False) -> Response:
        response = Response(
            waited(job, cancel_on_disconnect), 200, paths(job), content_type="application/json"
        )
        response.timeout = None
        return response

    def stream_of(job: Job, body: RunCreate) -> Response:
        framing = LangGraphFraming(resumable=body.stream_resumable)
        stream = streams.of_submitted(job, framing)
        if body.on_disconnect == "cancel":
            stream.on_disconnect = lambda: _cancel_quietly(engine(), job, caller.visible())
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
        job, body = await create(thread_id)
        return wait_response(job, body.on_disconnect == "cancel")

    @app.post("/runs/wait")
    @document(request=RunCreate, responses=answers(AnyJson, 400, 401, 404, 429, 503))
    async def wait_run() -> Response:
        """Run with no thread and answer its output once it ends."""
        job, body = await create(None)
        return wait_response(job, body.on_disconnect == "cancel")

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
        return wait_response(await engine().threads.run(thread_id, run_id, caller.visible()))

    @app.get("/threads/<thread_id>/runs/<run_id>/stream")
    @document(responses={200: (ErrorModel, None), **errors(400, 401, 404)})
    async def join_stream(thread_id: str, run_id: str) -> Response:
        """The run's events, again: after ``Last-Event-ID`` when one is sent."""
        job = await engine().threads.run(thread_id, run_id, caller.visible())
        after = streams.resume_after(request.headers, request.args)
        stream = await streams.open(job.id, after, LangGraphFraming(resumable=True))
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


async def _cancel_quietly(served: AnyEngine, job: Job, visible: str | None) -> None:
    """``on_disconnect: cancel``: the client left before the run ended."""
    # Ended meanwhile, or the engine stops: nothing to stop.
    with trio.CancelScope(shield=True), contextlib.suppress(Exception):
        await served.cancel(job.id, visible)


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not raw.strip().isdigit() or not low <= int(raw) <= high:
        raise bad_field("invalid_query", name, f"must be an integer from {low} to {high}", "query")
    return int(raw)
