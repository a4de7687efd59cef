"""Request bodies (validated with pydantic) and the JSON form of a job."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    StrictStr,
    StringConstraints,
    create_model,
)

from ..events import NAME_PATTERN
from ..jobs import Job, JobStatus
from .bodies import LARGE_RESULT, LargeResult

Timeout = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Attempts = Annotated[int, Field(ge=1, le=100)]


class Message(BaseModel):
    """One chat message, as the seed's server validates it. Extra keys pass through."""

    model_config = ConfigDict(extra="allow")

    role: Literal["user", "assistant", "system", "tool"]
    content: StrictStr


#: What every submit body may hold, said in its schema.
WIDE_INTEGERS = (
    "Integers anywhere in the body must fit 64 bits, signed or unsigned (a job keeps them"
    " exactly); a wider one is refused with 400 naming where it is: send it as a string."
)


EventName = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
StreamMode = Annotated[
    EventName | list[EventName],
    Field(
        description="the events the job's log keeps, by name (a LangGraph graph streams "
        "these modes: values, updates, messages, custom, debug); [] keeps none. Default: "
        "all a graph emits (LangGraph: updates and custom)"
    ),
]


class SeedSubmit(BaseModel):
    """The seed's body: ``{messages, data?, metadata?}``; the graph receives all three."""

    model_config = ConfigDict(json_schema_extra={"description": WIDE_INTEGERS})

    messages: Annotated[list[Message], Field(min_length=1)]
    data: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    timeoutSeconds: Timeout | None = None
    maxAttempts: Attempts | None = None
    streamMode: StreamMode | None = None


class GeneralSubmit(BaseModel):
    """The general body: ``{input}``, any JSON value handed to the graph as it is."""

    model_config = ConfigDict(json_schema_extra={"description": WIDE_INTEGERS})

    input: Any
    timeoutSeconds: Timeout | None = None
    maxAttempts: Attempts | None = None
    streamMode: StreamMode | None = None


def seed_input(body: dict[str, Any]) -> dict[str, Any]:
    """The graph input for a seed body: the caller's own messages, data and metadata."""
    return {
        "messages": body["messages"],
        "data": body.get("data") or {},
        "metadata": body.get("metadata") or {},
    }


def iso(timestamp: float) -> str:
    return (
        datetime.fromtimestamp(timestamp, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def result_body(result_json: bytes) -> Any:
    """A job's result as the API shows it: the worker's JSON text passed on as it is (a
    large one in parts, see :mod:`.bodies`), decoded only where :func:`with_content` may
    apply."""
    if result_json[:1] == b"{" and b'"messages"' in result_json:
        return with_content(orjson.loads(result_json))
    if len(result_json) >= LARGE_RESULT:
        return LargeResult(result_json)
    return orjson.Fragment(result_json)


def with_content(result: Any) -> Any:
    """The seed's convenience: ``result.content`` is the last message's content."""
    if isinstance(result, dict) and "content" not in result:
        messages = result.get("messages")
        if isinstance(messages, list) and messages:
            last = messages[-1]
            if isinstance(last, dict) and "content" in last:
                return {**result, "content": last["content"]}
    return result


def job_body(job: Job, position: int | None = None, *, with_input: bool = False) -> dict[str, Any]:
    """A job as the API shows it (camelCase, as the seed); its input only when asked for."""
    body: dict[str, Any] = {
        "jobId": job.id,
        "status": job.status.value,
        "attempts": job.attempts,
        "createdAt": iso(job.created_at),
    }
    if with_input:
        body["input"] = job.input
    if position is not None:
        body["position"] = position
    if job.started_at is not None:
        body["startedAt"] = iso(job.started_at)
    if job.completed_at is not None:
        body["completedAt"] = iso(job.completed_at)
    duration = job.duration
    if duration is not None:
        body["durationMs"] = round(duration * 1000)
    if job.status is JobStatus.COMPLETED:
        body["result"] = result_body(job.result_json or b"null")
    if job.error is not None:
        body["error"] = {"type": job.error.type, "message": job.error.message}
    if job.max_attempts > 1:
        body["maxAttempts"] = job.max_attempts
    if job.errors:
        body["errors"] = [{"type": e.type, "message": e.message} for e in job.errors]
    if job.graph:
        body["graph"] = job.graph
    if job.version:
        body["version"] = job.version
    if job.schedule_id is not None:
        body["scheduleId"] = job.schedule_id
    body["workspace"] = job.workspace
    if job.record is not None:
        body["record"] = orjson.Fragment(job.record)
    return body


class BatchSubmit(BaseModel):
    """Many jobs in one request: each item is a general submit body."""

    jobs: Annotated[list[GeneralSubmit], Field(min_length=1, max_length=1000)]


class Submit(RootModel[GeneralSubmit | SeedSubmit]):
    """A submit body: the general form ``{input}`` or the seed's ``{messages}``."""


# -- what the API answers (for the OpenAPI document; job_body() builds the real thing) ----


class ErrorInfo(BaseModel):
    type: str
    message: str


class JobModel(BaseModel):
    """A job as ``GET /jobs/{id}`` answers it."""

    jobId: str
    status: Literal["queued", "running", "completed", "failed", "timed_out", "cancelled", "crashed"]
    attempts: int
    createdAt: str
    input: Any = Field(
        None, description="the graph's input: in GET /jobs, and in GET /jobs/{id}?include=input"
    )
    position: int | None = None
    startedAt: str | None = None
    completedAt: str | None = None
    durationMs: int | None = None
    result: Any = None
    error: ErrorInfo | None = None
    maxAttempts: int | None = None
    errors: list[ErrorInfo] | None = None
    graph: str | None = Field(None, description="the served graph (or flow) the job is for")
    version: str | None = Field(
        None, description="the graph's version: the live one at submit, then the one it ran on"
    )
    scheduleId: str | None = Field(None, description="the schedule that fired the job")
    workspace: str | None = Field(None, description="whose job it is (see Workspaces)")
    record: dict[str, Any] | None = Field(
        None,
        description="a flow job's run record: under 'nodes', each node's status, output, "
        "error, attempts, started_at and duration_ms",
    )


class SeedAccepted(BaseModel):
    """``POST /execute``'s answer, exactly as the seed's server gives it."""

    jobId: str
    status: Literal["queued"]
    position: int


class ErrorDetail(BaseModel):
    field: str
    message: str
    type: str
    node: str | None = Field(None, description="an invalid flow's node at fault")
    edge: str | None = Field(None, description="an invalid flow's edge at fault ('a->b')")


class ErrorModel(BaseModel):
    """Every error answer. ``error`` is a string, as the seed's clients expect."""

    error: str
    code: str
    detail: list[ErrorDetail] | None = None


class SeedStats(BaseModel):
    queued: int
    running: int
    completed: int
    failed: int
    total: int
    workers: int
    availableWorkers: int


class Health(BaseModel):
    status: Literal["ok", "draining", "unavailable", "store_unavailable"]
    timestamp: str
    uptime: float
    stats: SeedStats | None = None
    graphs: dict[str, SeedStats] | None = Field(None, description="each graph's stats")


class Ready(BaseModel):
    """``GET /ready``: ``ready`` as the seed's server says it (200), or why not (503)."""

    status: Literal["ready", "draining", "unavailable", "store_unavailable"]
    ready: bool


class Live(BaseModel):
    """``GET /live``: the process answers."""

    status: Literal["alive"]
    alive: bool


#: ``/stats``' ``byStatus``: a count for each status, named as the statuses are.
StatusCounts = create_model(
    "StatusCounts",
    __doc__="How many jobs are in each status.",
    **{status.value: (int, ...) for status in JobStatus},  # type: ignore[call-overload]
)


class GraphStats(SeedStats):
    byStatus: StatusCounts  # type: ignore[valid-type]  # made from JobStatus, above
    queueLength: int
    queueCapacity: int
    workerRestarts: int
    uptime: float


class WorkspaceStats(BaseModel):
    queued: int = Field(description="its jobs waiting on this server, over every graph")


class Stats(GraphStats):
    graphs: dict[str, GraphStats] = Field(description="each graph's own")
    workspaces: dict[str, WorkspaceStats] = Field(
        description="per workspace with jobs waiting: every one for an admin, else the caller's"
    )


class WaitQuery(BaseModel):
    wait: (
        Annotated[
            float,
            Field(
                ge=0,
                description="long-poll: answer when the job ends, or after this many seconds",
            ),
        ]
        | None
    ) = None


class SubmitQuery(WaitQuery):
    stream: (
        Annotated[
            bool,
            Field(
                description="answer with the job's event stream (text/event-stream, as GET "
                "/jobs/{id}/events), its reconnect URL in Location"
            ),
        ]
        | None
    ) = None


class EventsQuery(BaseModel):
    after: (
        Annotated[
            int,
            Field(
                ge=0,
                le=10**18 - 1,
                description="resume after this event id (as the Last-Event-ID header)",
            ),
        ]
        | None
    ) = None


class JobQuery(WaitQuery):
    include: Literal["input"] | None = Field(
        None, description="input: the job's input is in the answer too"
    )


class BatchAccepted(BaseModel):
    """``POST /jobs/batch``: the jobs accepted, in order, and how many the full queue refused."""

    jobs: list[JobModel]
    rejected: int


class JobPage(BaseModel):
    """A page of ``GET /jobs``; pass ``nextCursor`` back as ``cursor`` for the next one."""

    jobs: list[JobModel]
    nextCursor: str | None


class ListQuery(BaseModel):
    status: (
        Literal["queued", "running", "completed", "failed", "timed_out", "cancelled", "crashed"]
        | None
    ) = None
    limit: Annotated[int, Field(ge=1, le=1000)] | None = None
    cursor: str | None = None
    graph: str | None = Field(None, description="only this graph's (or flow's) jobs")
