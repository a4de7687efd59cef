"""What the SQL stores share: the job row's columns, JSON encoding, list cursors."""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from ..jobs import TERMINAL_STATUSES, Job, JobError, JobStatus

log = logging.getLogger("graphnursery.store")

#: The columns a job is read from, in this order (see :func:`row_to_job`).
JOB_COLUMNS = (
    "id",
    "status",
    "input",
    "timeout",
    "attempts",
    "created_at",
    "started_at",
    "completed_at",
    "result",
    "error",
    "max_attempts",
    "errors",
    "stream_mode",
    "events",
    "events_dropped",
    "graph",
    "version",
    "schedule_id",
    "record",
    "workspace",
    "thread_id",
    "run_options",
)

TERMINAL_SQL = ", ".join(f"'{status.value}'" for status in sorted(TERMINAL_STATUSES))

#: Why a job went back to the queue, recorded in its per-attempt ``errors`` list.
INTERRUPTED = JobError(
    "Interrupted", "the server stopped while the job ran; it was queued to run again"
)
LEASE_EXPIRED = JobError(
    "LeaseExpired", "the replica running the job stopped renewing its lease; it ran again"
)
#: Why a job found running when a durable store opened ended ``crashed`` instead.
NO_ATTEMPTS_LEFT = JobError(
    "Interrupted", "the server stopped while the job ran, and the job has no attempts left"
)
#: Why a job whose lease expired ended ``crashed`` rather than run again (PostgreSQL).
LEASE_EXPIRED_NO_ATTEMPTS_LEFT = JobError(
    "LeaseExpired",
    "the replica running the job stopped renewing its lease, and the job has no attempts left",
)


def dump_json(value: Any) -> str:
    """JSON text for a column. Raises TypeError for what JSON cannot hold."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError as exc:
        raise TypeError(f"a durable store keeps only JSON values: {exc}") from None


def clean_text(text: str) -> str:
    """``text`` as every store keeps it: NUL (PostgreSQL's jsonb refuses ``\\u0000``) and lone
    surrogates (no UTF-8 form) written as Python escapes, ``\\x00`` and ``\\ud800``."""
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode()
    return text.replace("\x00", "\\x00") if "\x00" in text else text


def clean_error(error: JobError) -> JobError:
    """The error with its type and message as every store keeps them (:func:`clean_text`)."""
    cleaned = JobError(clean_text(error.type), clean_text(error.message))
    return error if cleaned == error else cleaned


def dump_error(error: JobError | None) -> str | None:
    if error is None:
        return None
    error = clean_error(error)
    return dump_json({"type": error.type, "message": error.message})


def load_json(text: str | bytes | None) -> Any:
    return None if text is None else orjson.loads(text)


def row_to_job(row: Sequence[Any]) -> Job:
    job_id, status, job_input, timeout, attempts, created, started, completed = row[:8]
    result, error, max_attempts, errors, stream_mode, events, events_dropped = row[8:15]
    graph, version, schedule_id, record, workspace, thread_id, run_options = row[15:22]
    error_value = load_json(error)
    modes = load_json(stream_mode)
    return Job(
        id=job_id,
        input=load_json(job_input),
        status=JobStatus(status),
        created_at=created,
        timeout=timeout,
        attempts=attempts,
        started_at=started,
        completed_at=completed,
        result_json=result.encode() if isinstance(result, str) else result,
        error=None
        if error_value is None
        else JobError(error_value["type"], error_value["message"]),
        max_attempts=max_attempts,
        errors=tuple(JobError(e["type"], e["message"]) for e in load_json(errors) or ()),
        stream_mode=None if modes is None else tuple(modes),
        events=events,
        events_dropped=events_dropped,
        graph=graph,
        version=version,
        schedule_id=schedule_id,
        record=record.encode() if isinstance(record, str) else record,
        workspace=workspace,
        thread_id=thread_id,
        run_options=load_json(run_options),
    )


def job_params(job: Job) -> dict[str, Any]:
    """A new job's column values, named for ``INSERT ... VALUES (:id, ...)``."""
    return {
        "id": job.id,
        "status": job.status.value,
        "input": dump_json(job.input),
        "timeout": job.timeout,
        "attempts": job.attempts,
        "created_at": job.created_at,
        "max_attempts": job.max_attempts,
        "stream_mode": None if job.stream_mode is None else dump_json(list(job.stream_mode)),
        "graph": job.graph,
        "version": job.version,
        "schedule_id": job.schedule_id,
        "workspace": job.workspace,
        "thread_id": job.thread_id,
        "run_options": None if job.run_options is None else dump_json(job.run_options),
    }


def graph_counts(
    counts: Mapping[tuple[str, JobStatus], int], graphs: Sequence[str] | None
) -> dict[JobStatus, int]:
    """Per-status counts from counts per (graph, status): of ``graphs``, or of all."""
    found = {status: 0 for status in JobStatus}
    for (graph, status), count in counts.items():
        if graphs is None or graph in graphs:
            found[status] += count
    return found


def graphs_filter(graphs: Sequence[str] | None, mark: str) -> tuple[str, list[str]]:
    """`` AND graph IN (...)`` and its parameters, for jobs of ``graphs`` (all if None)."""
    if graphs is None:
        return "", []
    return f" AND graph IN ({', '.join(mark for _ in graphs)})", list(graphs)


def encode_cursor(job: Job) -> str:
    """An opaque list cursor: the position after ``job`` in (created_at, id) order."""
    return base64.urlsafe_b64encode(orjson.dumps([job.created_at, job.id])).decode()


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        created_at, job_id = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
        if unstorable_key(job_id):
            raise ValueError("no job id holds a NUL")
        return float(created_at), str(job_id)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"invalid cursor {cursor!r}") from exc


def unstorable_key(text: object) -> bool:
    """Whether a job id or idempotency key holds a NUL: no store keeps one (PostgreSQL
    refuses NUL in text), so such a job is not found, rather than the lookup failing."""
    return isinstance(text, str) and "\x00" in text


def list_query(
    table: str,
    columns: str,
    status: JobStatus | None,
    limit: int,
    cursor: str | None,
    placeholder: str,
    graph: str | None = None,
    workspace: str | None = None,
) -> tuple[str, list[Any]]:
    """The SELECT of one list page, one row more than ``limit`` (to know if more follow).

    ``placeholder`` is the driver's parameter mark (``?`` for SQLite, ``%s`` for psycopg).
    """
    where: list[str] = []
    params: list[Any] = []
    if status is not None:
        where.append(f"status = {placeholder}")
        params.append(status.value)
    if graph is not None:
        where.append(f"graph = {placeholder}")
        params.append(graph)
    if workspace is not None:
        where.append(f"workspace = {placeholder}")
        params.append(workspace)
    if cursor is not None:
        created_at, after_id = decode_cursor(cursor)
        where.append(f"(created_at, id) > ({placeholder}, {placeholder})")
        params += [created_at, after_id]
    sql = f"SELECT {columns} FROM {table}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY created_at, id LIMIT {placeholder}"
    params.append(limit + 1)
    return sql, params


def split_page(jobs: list[Job], limit: int) -> tuple[list[Job], str | None]:
    """A page of at most ``limit`` jobs and the cursor of the next one, if any."""
    if len(jobs) > limit:
        return jobs[:limit], encode_cursor(jobs[limit - 1])
    return jobs, None
