"""The job record: the single description of a job's state, kept by a store."""

from __future__ import annotations

import dataclasses
import enum
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

#: The integers a job's input and result may hold: 64 bits, signed or not (what the stores'
#: JSON encoder keeps exactly).
JSON_INTEGERS = (-(2**63), 2**64 - 1)


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    CRASHED = "crashed"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {
        JobStatus.COMPLETED,
        JobStatus.FAILED,
        JobStatus.TIMED_OUT,
        JobStatus.CANCELLED,
        JobStatus.CRASHED,
    }
)


#: The workspace of a caller with a bare API key, and of jobs from before workspaces.
DEFAULT_WORKSPACE = "default"


def scoped_key(workspace: str, idempotency_key: str) -> str:
    """An idempotency key as a store keeps it: the same key in two workspaces is two keys.
    The default workspace's keys are kept as they are (as before workspaces); others are
    prefixed with the workspace and a unit separator, which no header value holds."""
    if workspace == DEFAULT_WORKSPACE:
        return idempotency_key
    return f"{workspace}\x1f{idempotency_key}"


@dataclass(frozen=True, slots=True)
class JobError:
    """Why a job did not complete: an exception type name and its message."""

    type: str
    message: str


@dataclass(frozen=True, slots=True)
class Job:
    """One job as it stands. Immutable: a store replaces the record on every transition.

    Times are seconds since the epoch, taken from the engine's clock. The result is kept
    as the JSON text the worker encoded (``result_json``): stores write it and the HTTP
    layer answers with it as it is; :attr:`result` decodes it.
    """

    id: str
    input: Any
    status: JobStatus
    created_at: float
    timeout: float
    attempts: int = 0
    started_at: float | None = None
    completed_at: float | None = None
    result_json: bytes | None = None
    error: JobError | None = None
    max_attempts: int = 1
    errors: tuple[JobError, ...] = ()  # each failed attempt's error, in order (last = error)
    #: The event names the request asked to stream (``streamMode``); None: the graph's
    #: default (everything a plain graph emits; LangGraph's ``updates`` and ``custom``).
    stream_mode: tuple[str, ...] | None = None
    events: int = 0  # the id of the last event in the job's log (0: none yet)
    events_dropped: int = 0  # events the graph emitted past ``max_job_events``, not kept
    #: The served graph (or flow) the job is for, by name ("" in a store written before
    #: graphs had names: the default graph's).
    graph: str = ""
    #: The workspace the job belongs to: only its callers (and admins) see it.
    workspace: str = DEFAULT_WORKSPACE
    #: The graph's version: the live one at submit, then the one the job ran on.
    version: str = ""
    #: The schedule that fired the job, if one did.
    schedule_id: str | None = None
    #: A flow job's run record, as JSON text: each node's status, output, error, start
    #: and duration (None for other graphs).
    record: bytes | None = None
    #: The LangGraph thread the job is a run of (None: not a thread's run).
    thread_id: str | None = None
    #: A LangGraph run's options (its assistant, config, command, metadata...: see
    #: :mod:`graphnursery.threads`); None for other jobs.
    run_options: dict[str, Any] | None = None

    @property
    def result(self) -> Any:
        """The result as Python data (decoded at each access), None until completed."""
        return None if self.result_json is None else orjson.loads(self.result_json)

    @property
    def duration(self) -> float | None:
        """Seconds from start to completion, once both are known."""
        if self.started_at is None or self.completed_at is None:
            return None
        return self.completed_at - self.started_at

    @property
    def run_record(self) -> Any:
        """The flow run record as Python data, None for other graphs."""
        return None if self.record is None else orjson.loads(self.record)

    def replace(self, **changes: Any) -> Job:
        return dataclasses.replace(self, **changes)


def new_job_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt at a job ended, as the executor saw it."""

    status: JobStatus
    result: bytes | None = None  # the result's JSON text, as the worker encoded it
    error: JobError | None = None
    logs: tuple[tuple[int, str, str], ...] = ()  # the graph's log records: level, logger, message
    traceback: str = ""  # the graph's traceback, for the server log only
    #: Events the worker sent over the event channel during this attempt (0: none, so none
    #: is in flight); None when the worker died mid-job and cannot say.
    events_sent: int | None = 0
    #: Events an in-process executor collected, as (name, JSON text): worker processes
    #: send theirs over the event channel instead.
    events: tuple[tuple[str, bytes], ...] = ()
    #: A flow's run record, as JSON text (see :attr:`Job.record`).
    record: bytes | None = None
