"""One exception tree for graphnursery.

    GraphNurseryError
    ├── ConfigError          a setting has an invalid value (names the setting)
    ├── GraphLoadError       the graph cannot be imported or is not callable
    ├── JobNotFound          no job with that id (never existed, or expired)
    ├── GraphNotFound        no graph or flow of that name is served here (HTTP 404)
    ├── GraphConflict        a stored flow would take a served graph's name (HTTP 409)
    ├── FlowInvalid          a flow definition does not validate (HTTP 400, ``problems``)
    ├── ScheduleInvalid      a schedule's field is invalid (HTTP 400, names the field)
    ├── ScheduleNotFound     no schedule with that id (HTTP 404)
    ├── InvalidTimeout       a job's timeout is not > 0 and <= max_job_timeout (HTTP 400)
    ├── QueueFull            the queue is at capacity; retry after ``retry_after`` seconds
    ├── QuotaExceeded        a workspace is over a limit (``limit``, ``retry_after``; quotas)
    ├── EngineClosed         the engine is not accepting jobs (stopped or stopping)
    ├── EngineFailed         the engine died while serving: the server stops (exit status 3)
    ├── JobConflict          cancel of a finished job, retry of an unfinished one (HTTP 409)
    ├── ThreadNotFound       no LangGraph thread (or run of it) by that id (HTTP 404)
    ├── ThreadConflict       a thread id taken, or a busy thread's run rejected (HTTP 409)
    ├── ThreadStateError     a thread's state could not be read or changed (HTTP 422)
    ├── AuthError            the caller is not let in (graphnursery.auth; ``reason``)
    ├── StoreError           the job store cannot be opened or used
    │   ├── StoreLocked      another server is using this SQLite database file
    │   └── StoreUnavailable the store's database stayed unreachable past store_unavailable_exit
    └── ClientError          raised by Client / AsyncClient (tree in graphnursery.client)
        ├── TransportError       the server could not be reached or the connection broke
        ├── UnexpectedResponse   the answer is not graphnursery's JSON
        ├── WaitTimeout          a job was not terminal when the caller stopped waiting
        ├── ApiError             the server answered an error (status, code, message, detail)
        │   ├── InvalidRequest   400
        │   ├── Unauthorized     401
        │   ├── NotFound         404
        │   ├── Conflict         409
        │   ├── PayloadTooLarge  413
        │   ├── TooManyRequests  429, the queue is full (``retry_after``)
        │   ├── Unavailable      503, draining or down (``retry_after``)
        │   └── ServerError      any other 5xx
        └── JobUnsuccessful      run(): the job ended but not ``completed`` (``job``)
            ├── JobFailed        the graph raised (``type``, ``message``)
            ├── JobTimedOut      it ran past its timeout and was killed
            ├── JobCrashed       its worker process died
            └── JobCancelled     it was cancelled (by a client, or by shutdown)

The HTTP layer maps the server-side errors to a status code in one place (``http/errors.py``);
the client maps status codes back to the ``ApiError`` branch in one place (``client/_protocol.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .client import Job

#: The limits of :class:`QuotaExceeded` (see :mod:`graphnursery.quotas`).
QuotaLimit = Literal["rate", "max_queued", "max_running"]


class GraphNurseryError(Exception):
    """Base class of every error graphnursery raises on purpose."""


class ConfigError(GraphNurseryError, ValueError):
    """A setting has an invalid value. The message names the setting."""

    def __init__(self, setting: str, message: str) -> None:
        self.setting = setting
        self.reason = message
        super().__init__(f"invalid setting {setting!r}: {message}")


class GraphLoadError(GraphNurseryError):
    """The graph could not be loaded in a worker process.

    ``error_type`` and ``message`` describe the original exception; ``traceback`` is its
    formatted traceback from the worker process; ``problems``, an invalid flow's (each node
    or edge at fault, as :class:`FlowInvalid` has them).
    """

    def __init__(
        self,
        spec: str,
        error_type: str,
        message: str,
        traceback: str = "",
        problems: list[dict[str, str]] | None = None,
    ) -> None:
        self.spec = spec
        self.error_type = error_type
        self.message = message
        self.traceback = traceback
        self.problems = problems  # a flow's that does not validate (see FlowInvalid)
        super().__init__(f"cannot load graph {spec!r}: {error_type}: {message}")


class JobNotFound(GraphNurseryError, LookupError):
    """No job with this id: it never existed, or its result expired."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id!r} not found")


class GraphNotFound(GraphNurseryError, LookupError):
    """No graph (or flow) of this name is served here."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"graph {name!r} not found")


class GraphConflict(GraphNurseryError):
    """A name is taken: a stored flow cannot have a served graph's name."""

    def __init__(self, name: str, taken_by: str) -> None:
        self.name = name
        super().__init__(f"the name {name!r} is taken by {taken_by}")


class FlowInvalid(GraphNurseryError, ValueError):
    """A flow definition does not validate: ``problems`` lists every fault, each a dict
    naming where (``node``, ``edge`` or ``flow``) and the ``problem`` (HTTP 400
    ``invalid_flow``, the problems in ``detail``)."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        self.problems = problems
        first = problems[0] if problems else {"problem": "invalid"}
        where = ", ".join(f"{k} {v!r}" for k, v in first.items() if k != "problem")
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"invalid flow: {where + ': ' if where else ''}{first['problem']}{more}")


class ScheduleInvalid(GraphNurseryError, ValueError):
    """A schedule's field is invalid: ``field`` names it (HTTP 400 ``invalid_body``)."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class ScheduleNotFound(GraphNurseryError, LookupError):
    """No schedule with this id (HTTP 404 ``schedule_not_found``)."""

    def __init__(self, schedule_id: str) -> None:
        self.schedule_id = schedule_id
        super().__init__(f"schedule {schedule_id!r} not found")


class InvalidTimeout(GraphNurseryError, ValueError):
    """A job's timeout is not a number of seconds > 0 and <= ``maximum`` (``max_job_timeout``)."""

    def __init__(self, value: object, maximum: float) -> None:
        self.value = value
        self.maximum = maximum
        super().__init__(f"timeout must be > 0 and <= {maximum:g} s, got {value!r}")


class QueueFull(GraphNurseryError):
    """The job queue is at capacity."""

    def __init__(self, capacity: int, retry_after: float) -> None:
        self.capacity = capacity
        self.retry_after = retry_after
        super().__init__(f"queue is full ({capacity} jobs waiting)")


class QuotaExceeded(GraphNurseryError):
    """A workspace is over one of its limits (``limit``: ``"rate"``, ``"max_queued"`` or
    ``"max_running"``); the caller may retry after ``retry_after`` seconds."""

    def __init__(self, limit: QuotaLimit, workspace: str, retry_after: float) -> None:
        if limit not in ("rate", "max_queued", "max_running"):
            raise ValueError(f"not a workspace limit: {limit!r}")
        self.limit: QuotaLimit = limit
        self.workspace = workspace
        self.retry_after = retry_after
        super().__init__(
            f"workspace {workspace!r} is over its {limit} limit; retry after {retry_after:g} s"
        )


class EngineClosed(GraphNurseryError):
    """The engine is not running, so it accepts no jobs."""


class EngineFailed(GraphNurseryError):
    """The engine stopped while the server was serving (a store failing, say)."""


class JobConflict(GraphNurseryError):
    """The job's status forbids the action: cancelling a finished job, or re-running one
    that has not finished."""

    def __init__(self, job_id: str, status: str, action: str = "cancel") -> None:
        self.job_id = job_id
        self.status = status
        super().__init__(f"cannot {action} job {job_id!r}: it is {status}")


class ThreadNotFound(GraphNurseryError, LookupError):
    """No LangGraph thread (or run of it) by this id, in the caller's workspace."""


class ThreadConflict(GraphNurseryError):
    """A thread by this id exists already, or it is busy and the run's
    ``multitask_strategy`` is ``reject``."""


class ThreadStateError(GraphNurseryError):
    """A read or change of a thread's state failed in its worker (the graph's error)."""

    def __init__(self, error_type: str, message: str) -> None:
        self.error_type = error_type
        self.message = message
        super().__init__(f"{error_type}: {message}")


class AuthError(GraphNurseryError):
    """The caller is not let in (``graphnursery.auth``): ``reason``, one of ``REASONS``, is
    the check that failed; ``message`` says it, never quoting a key or a secret nor saying
    which key was tried. Only ``jwks_unavailable`` (the JWKS cannot be loaded) is the
    server's fault; the other reasons are the caller's."""

    REASONS = frozenset((
        "missing", "malformed", "expired", "not_yet_valid", "bad_signature", "wrong_issuer",
        "wrong_audience", "no_workspace", "unknown_key", "unknown_kid", "jwks_unavailable",
    ))  # fmt: skip

    def __init__(self, reason: str, message: str) -> None:
        assert reason in self.REASONS, reason
        self.reason = reason
        self.message = message
        super().__init__(message)


# -- the client's branch ---------------------------------------------------------------------


class ClientError(GraphNurseryError):
    """Base class of every error :class:`~graphnursery.Client` and ``AsyncClient`` raise."""


class TransportError(ClientError):
    """The server could not be reached, or the connection broke (wraps the httpx error)."""


class UnexpectedResponse(ClientError):
    """The server's answer is not the JSON graphnursery sends (wrong URL, a proxy's page...)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class WaitTimeout(ClientError, TimeoutError):
    """The job was not terminal when the caller's ``timeout`` ran out. ``job`` is as last seen.

    The job itself goes on running on the server.
    """

    def __init__(self, job: Job, timeout: float) -> None:
        self.job = job
        self.timeout = timeout
        super().__init__(f"job {job.id} still {job.status} after waiting {timeout:g} s")


class ApiError(ClientError):
    """The server answered with an error status: ``{"error", "code", "detail"?}``.

    ``status`` is the HTTP status, ``code`` the machine code (``"invalid_body"``,
    ``"queue_full"``, ...), ``message`` the human one, ``detail`` the per-field list (400).
    ``retry_after`` is the server's ``Retry-After`` in seconds, when it sent one.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        detail: list[dict[str, Any]] | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail
        self.retry_after = retry_after
        super().__init__(f"{status} {code}: {message}")


class InvalidRequest(ApiError):
    """400: malformed JSON or a schema violation; ``detail`` names each bad field."""


class Unauthorized(ApiError):
    """401: the server wants an API key and this one is missing or wrong."""


class NotFound(ApiError):
    """404: no such job (never existed, or its result expired), or no such route."""


class Conflict(ApiError):
    """409: the job is already terminal (cancelling a finished job)."""


class PayloadTooLarge(ApiError):
    """413: the request body is larger than the server's ``max_body_bytes``."""


class TooManyRequests(ApiError):
    """429: the server's queue is full. Retried by the client, honouring ``retry_after``."""


class Unavailable(ApiError):
    """503: the server is draining or its engine is down. Retried like 429."""


class ServerError(ApiError):
    """Any other 5xx answer."""


class JobUnsuccessful(ClientError):
    """``run()``: the job ended, but not ``completed``. ``job`` is its final state."""

    def __init__(self, job: Job) -> None:
        self.job = job
        super().__init__(self.describe(job))

    @staticmethod
    def describe(job: Job) -> str:
        if job.error is not None:
            return f"job {job.id} {job.status}: {job.error.type}: {job.error.message}"
        return f"job {job.id} {job.status}"


class JobFailed(JobUnsuccessful):
    """The graph raised. ``type`` and ``message`` are the exception's type name and message."""

    def __init__(self, job: Job) -> None:
        self.type = job.error.type if job.error else ""
        self.message = job.error.message if job.error else ""
        super().__init__(job)


class JobTimedOut(JobUnsuccessful):
    """The job ran past its timeout; its worker process was killed."""


class JobCrashed(JobUnsuccessful):
    """The job's worker process died (segfault, ``os._exit``, OOM kill)."""


class JobCancelled(JobUnsuccessful):
    """The job was cancelled, by a client or by the server shutting down."""


class StoreError(GraphNurseryError):
    """The job store cannot be opened or used (bad schema version, missing driver, ...)."""


class StoreLocked(StoreError):
    """Another graphnursery server holds this SQLite database file."""

    def __init__(self, path: str, lock_path: str) -> None:
        self.path = path
        self.lock_path = lock_path
        super().__init__(
            f"the SQLite database {path!r} is in use by another graphnursery server "
            f"(it holds the lock {lock_path!r}); stop that server or pick another --store file"
        )


class StoreUnavailable(StoreError):
    """The store's database has been unreachable for ``seconds`` (longer than the
    ``store_unavailable_exit`` setting), while the store retried the operation."""

    def __init__(self, where: str, seconds: float) -> None:
        self.where = where
        self.seconds = seconds
        super().__init__(
            f"the database at {where} has been unreachable for {seconds:.0f} s; giving up"
        )


@contextmanager
def unwrap_single_error() -> Iterator[None]:
    """Let an error raised in the ``async with open_engine()`` body out as itself.

    The body runs inside the engine's nursery, which would wrap it in an ExceptionGroup.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
