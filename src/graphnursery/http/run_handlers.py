"""The LangGraph API's runs, without a transport: what a request asks (:class:`RunCreate`),
how a run is answered (:func:`run_body`, its LangGraph status, its output), and creating
one and waiting for it (:class:`RunHandlers`), which the Quart routes (``runs.py``) and the
fast path below Quart (``fastpath.py``, for ``/runs/wait``) both call.

A run's status is LangGraph's: ``pending`` (queued), ``running``, ``success``,
``interrupted`` (it stopped at an interrupt, or was cancelled), ``error`` (failed or
crashed: the error says which), ``timeout``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Callable
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
import trio
from pydantic import BaseModel, ConfigDict, Field

from ..config import Config
from ..engine_thread import AnyEngine
from ..errors import EngineClosed, JobNotFound
from ..events import parse_stream_mode
from ..jobs import Job, JobError, JobStatus
from ..store.threads import INTERRUPT
from ..threads import RunRequest
from . import caller
from .assistants import assistant_id, find_assistant, parse_body
from .errors import bad_field
from .handlers import Reply

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
        # A quick look first: most results hold no interrupt, and decoding costs.
        if job.result_json is not None and INTERRUPT.encode() in job.result_json:
            result = job.result
            if isinstance(result, dict) and INTERRUPT in result:
                return "interrupted"
        return "success"
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
    """A run's ``Content-Location`` (the run) and ``Location`` (its stream, to join: a
    thread's run only; a stateless one has nothing to rejoin, and a client that saw a
    ``Location`` would try)."""
    if job.thread_id is None:
        return {"Content-Location": f"/runs/{job.id}"}
    base = f"/threads/{job.thread_id}/runs/{job.id}"
    return {"Content-Location": base, "Location": f"{base}/stream"}


class Streamed:
    """A reply's body written as it comes (chunked), not whole: ``/wait``'s newlines while
    its run goes on, then the output."""

    __slots__ = ("chunks",)

    def __init__(self, chunks: AsyncGenerator[bytes, None]) -> None:
        self.chunks = chunks


class RunHandlers:
    """Creating runs and waiting for them, for any transport."""

    def __init__(self, engine: Callable[[], AnyEngine], config: Config) -> None:
        self._engine = engine
        #: Seconds between a waiting answer's newlines (at most 5, as LangGraph's).
        self.heartbeat = min(config.stream_heartbeat, 5.0)

    async def create(self, thread_id: str | None, raw: bytes) -> tuple[Job, RunCreate]:
        """Queue the run the body asks for (on ``thread_id``, or stateless with None)."""
        body = parse_body(raw, RunCreate)
        served = self._engine()
        graph = find_assistant(served, body.assistant_id)
        wanted = [body.stream_mode] if isinstance(body.stream_mode, str) else body.stream_mode
        try:
            stream_mode = parse_stream_mode([_MODE_NAMES.get(mode, mode) for mode in wanted])
        except ValueError as exc:
            raise bad_field("invalid_body", "stream_mode", str(exc), "value_error") from None
        options = body.model_dump(include=set(_WORKER_OPTIONS), exclude_none=True)
        if body.metadata:
            options["metadata"] = body.metadata
        if body.stream_resumable:
            options["stream_resumable"] = True  # its streams, joined later too, have ids
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

    async def wait(self, thread_id: str | None, raw: bytes) -> Reply:
        """``POST .../runs/wait``: queue the run, answer its output once it ends."""
        job, body = await self.create(thread_id, raw)
        return await self.wait_reply(job, body.on_disconnect == "cancel")

    async def wait_reply(self, job: Job, cancel_on_disconnect: bool = False) -> Reply:
        """The run's output: whole if it ends within a heartbeat's time (most do), else
        :class:`Streamed`, its newlines first."""
        served, visible = self._engine(), caller.visible()
        try:
            now = await served.wait(job.id, self.heartbeat, visible)
        except trio.Cancelled:  # the client left
            if cancel_on_disconnect:
                await cancel_quietly(served, job, visible)
            raise
        if now.status.is_terminal:
            return 200, output(now), paths(job)
        return 200, Streamed(self._waited(now, served, visible, cancel_on_disconnect)), paths(job)

    async def _waited(
        self, job: Job, served: AnyEngine, visible: str | None, cancel_on_disconnect: bool
    ) -> AsyncGenerator[bytes, None]:
        """Newlines while the run goes on, then its output (JSON allows the whitespace)."""
        finished = False
        try:
            yield b"\n"
            while True:
                try:
                    now = await served.wait(job.id, self.heartbeat, visible)
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
                await cancel_quietly(served, job, visible)


async def cancel_quietly(served: AnyEngine, job: Job, visible: str | None) -> None:
    """``on_disconnect: cancel``: the client left before the run ended."""
    # Ended meanwhile, or the engine stops: nothing to stop.
    with trio.CancelScope(shield=True), contextlib.suppress(Exception):
        await served.cancel(job.id, visible)
