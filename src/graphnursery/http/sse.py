"""A job's event log as Server-Sent Events: ``GET /jobs/{id}/events``, and the streams of
``POST /jobs?stream=true``.

A stream is, in order:

- ``id: 0``, ``event: job``: the job as it stands (its body, as ``GET /jobs/{id}`` gives it)
  when the stream opened; not sent to a stream resumed with ``Last-Event-ID``;
- each event of the job's log (``events.py``), ``id`` its id, ``event`` its name, ``data``
  ``{"attempt": N, "data": <what was emitted>}``: the graph's events, and ``running`` /
  ``retrying`` as the job's attempts start and end;
- last, the job's end: ``event`` its terminal status, ``data`` the finished job's body with
  ``droppedEvents``, ``id`` one past the log's last. Then the stream ends.

``Last-Event-ID`` (or ``?after=ID``) resumes after that id: exactly the events that
followed it. A comment (``: heartbeat``) every ``stream_heartbeat`` seconds keeps an idle
stream open through proxies. The stream reads the store, so it shows the same log on every
replica, whoever runs the job; it is woken when the log grows or the job ends (on another
replica too, by the shared store's notices) and never polls.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import trio

from ..config import Config
from ..engine_thread import AnyEngine
from ..errors import EngineClosed, JobNotFound
from ..events import JobEvent
from ..jobs import Job, JobError, JobStatus
from ..metrics import Metrics
from . import bodies, caller
from .errors import bad_field
from .parsing import Params
from .schemas import job_body

#: Events read from the store at a time.
PAGE = 512
#: The longest event id a client may send back (ids are counts: 18 digits is plenty).
MAX_ID_DIGITS = 18

HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


def resume_after(headers: Params, query: Params) -> int | None:
    """The id a client resumes after (``Last-Event-ID``, else ``?after=``); None for a
    stream from the start. A value that is not an event id: 400 naming it."""
    raw = headers.get("Last-Event-ID")
    where, name = "header", "Last-Event-ID"
    if raw is None:
        raw, where, name = query.get("after"), "query", "after"
    if raw is None:
        return None
    raw = raw.strip()
    if not raw.isdigit() or len(raw) > MAX_ID_DIGITS:
        raise bad_field("invalid_event_id", name, f"{raw[:40]!r} is not an event id", where)
    return int(raw)


class Streams:
    """Opens the event streams of the running engine (``engine()``)."""

    resume_after = staticmethod(resume_after)

    def __init__(self, engine: Callable[[], AnyEngine], config: Config, metrics: Metrics) -> None:
        self._engine = engine
        self._heartbeat = config.stream_heartbeat
        self._metrics = metrics

    async def open(
        self, job_id: str, after: int | None, framing: Framing | None = None
    ) -> EventStream:
        """The stream of ``job_id`` from after ``after`` (None: from its start), checked."""
        stream = EventStream(self._engine(), self._metrics, self._heartbeat, job_id, framing)
        await stream.open(after)
        return stream

    def of_submitted(self, job: Job, framing: Framing | None = None) -> EventStream:
        """The stream of a job just submitted: its first event is the job as submitted
        (framed as ``framing`` says: graphnursery's by default)."""
        stream = EventStream(self._engine(), self._metrics, self._heartbeat, job.id, framing)
        stream.start_from(job)
        return stream


class Framing:
    """How a stream writes its job's start, its events and its end: graphnursery's own
    (the job, each event as ``{attempt, data}`` with its id, the end event with the job)."""

    #: Seconds between heartbeats at most, whatever ``stream_heartbeat`` says.
    longest_heartbeat = math.inf

    def first(self, job: Job) -> bytes:
        return _event(0, "job", bodies.encode(job_body(job)))

    def events(self, events: list[JobEvent]) -> bytes:
        return _events(events)

    def end(self, job: Job, event_id: int) -> bytes:
        return _end(job, event_id)


class LangGraphFraming(Framing):
    """LangGraph's, as its SDK reads a run's stream: ``metadata`` (``run_id``, ``attempt``)
    first, then each event's data as it is under its mode's name (``values``, ``updates``,
    ``messages``, ``custom``, ``mode|namespace`` for a subgraph's...), and ``error``
    (``{error, message}``) if the run did not complete. With ``resumable`` (a run made with
    ``stream_resumable``, and every stream joined later), each event has its id, for
    ``Last-Event-ID``."""

    longest_heartbeat = 5.0  # as LangGraph's server: its clients count on it

    def __init__(self, resumable: bool = False) -> None:
        self._ids = resumable

    def first(self, job: Job) -> bytes:
        data = orjson.dumps({"run_id": job.id, "attempt": max(job.attempts, 1)})
        return b"event: metadata\ndata: %s\n\n" % data

    def events(self, events: list[JobEvent]) -> bytes:
        if self._ids:
            return b"".join(
                b"id: %d\nevent: %s\ndata: %s\n\n" % (event.id, event.event.encode(), event.data)
                for event in events
                if event.event not in JOB_STATUS_EVENTS
            )
        return b"".join(
            b"event: %s\ndata: %s\n\n" % (event.event.encode(), event.data)
            for event in events
            if event.event not in JOB_STATUS_EVENTS
        )

    def end(self, job: Job, event_id: int) -> bytes:
        if job.status is JobStatus.COMPLETED:
            return b""
        error = job.error or JobError(job.status.value, f"the run ended {job.status.value}")
        data = orjson.dumps({"error": error.type, "message": error.message})
        return b"event: error\ndata: %s\n\n" % data


class EventStream:
    """One client's stream of one job. :meth:`open` checks the job and the id to resume
    after (raising before any byte is sent); :meth:`body` is the stream."""

    def __init__(
        self,
        engine: AnyEngine,
        metrics: Metrics,
        heartbeat: float,
        job_id: str,
        framing: Framing | None = None,
    ) -> None:
        self._engine = engine
        self._framing = framing or GRAPHNURSERY
        self._metrics = metrics
        self._heartbeat = min(heartbeat, self._framing.longest_heartbeat)
        self.job_id = job_id
        #: Whose jobs the caller may read (taken when the stream opens, in its request).
        self.workspace = caller.visible()
        self._job: Job | None = None
        self._after: int | None = None
        #: Called (shielded) when the client leaves before the job ended, if set.
        self.on_disconnect: Callable[[], Awaitable[None]] | None = None

    @property
    def location(self) -> str:
        return f"/jobs/{self.job_id}/events"

    async def open(self, after: int | None) -> None:
        """Raises JobNotFound for an unknown job, and a 400 for an id that is not one of
        the job's events (one past the last, for a job that ended: its end)."""
        job, _ = await self._engine.read_events(self.job_id, 0, 0, self.workspace)
        if after is not None and after > job.events + job.status.is_terminal:
            message = f"job {self.job_id} has no event {after} (its last is {job.events})"
            raise bad_field("invalid_event_id", "Last-Event-ID", message, "header")
        self._job, self._after = job, after

    def start_from(self, job: Job) -> None:
        self._job, self._after = job, None

    async def body(self) -> AsyncIterator[bytes]:
        assert self._job is not None, "open() first"
        self._metrics.streams_open.inc()
        try:
            with self._engine.following(self.job_id) as changed:
                after = self._after
                if after is None:
                    yield self._framing.first(self._job)
                    after = 0
                elif self._job.status.is_terminal and after > self._job.events:
                    return  # it saw the end already
                while True:
                    change = changed()
                    job, events = await self._engine.read_events(
                        self.job_id, after, PAGE, self.workspace
                    )
                    if events:
                        yield self._framing.events(events)
                        after = events[-1].id
                        if len(events) == PAGE:
                            continue
                    if job.status.is_terminal:
                        yield self._framing.end(job, after + 1)
                        return
                    with trio.move_on_after(self._heartbeat) as idle:
                        await change.wait()
                    if idle.cancelled_caught:
                        yield b": heartbeat\n\n"
        except (JobNotFound, EngineClosed):
            return  # evicted meanwhile, or the server stops: the client reconnects
        except BaseException:
            if self.on_disconnect is not None:  # the client left (the stream was cancelled)
                await self.on_disconnect()
            raise
        finally:
            self._metrics.streams_open.dec()


def _event(event_id: int, name: str, data: bodies.Parts) -> bytes:
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event_id, name.encode(), b"".join(data))


def _events(events: list[JobEvent]) -> bytes:
    return b"".join(
        b'id: %d\nevent: %s\ndata: {"attempt":%d,"data":%s}\n\n'
        % (event.id, event.event.encode(), event.attempt, event.data)
        for event in events
    )


def _end(job: Job, event_id: int) -> bytes:
    body: dict[str, Any] = {**job_body(job), "droppedEvents": job.events_dropped}
    return _event(event_id, job.status.value, bodies.encode(body))


GRAPHNURSERY = Framing()
#: The events a job's log has of its own (its status), not a graph's.
JOB_STATUS_EVENTS = frozenset({"running", *(status.value for status in JobStatus)})
