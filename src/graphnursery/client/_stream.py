"""What both clients' event streams share: the event, and one stream across its connections.

A job's stream (``GET /jobs/{id}/events``, ``POST /jobs?stream=true``; the format is in
``graphnursery.http.sse``) is Server-Sent Events, parsed by httpx-sse. :class:`Follow` holds
what survives a dropped connection: where to reconnect, the last id seen (sent back as
``Last-Event-ID``), and how many connections in a row brought no event. The clients do the
I/O; no I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from httpx_sse import ServerSentEvent

from .. import errors
from ..jobs import JobStatus
from ._protocol import Job, Retries, _api_error, retry_delay

#: The names of the events that end a stream: the job's terminal statuses.
TERMINAL_EVENTS = frozenset(status.value for status in JobStatus if status.is_terminal)
#: The name of a fresh stream's first event (id 0): the job as it stood.
JOB_EVENT = "job"


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One event of a job's stream.

    ``id`` counts from 1 for the job's log (0 is the ``job`` event a fresh stream opens
    with); pass the last one seen as ``after`` to resume. ``event`` is the event's name:
    ``job`` first, then the log's (``running``, ``retrying``, or what the graph emitted:
    ``custom``, ``updates``, ...), last the job's terminal status (``completed``,
    ``failed``, ...). For a log event ``data`` is what the graph emitted and ``attempt``
    the attempt that emitted it; for the first and the last event ``data`` is the job's
    JSON (the last one's with ``droppedEvents``) and ``job`` the parsed :class:`Job`.
    """

    id: int
    event: str
    data: Any
    attempt: int | None = None
    job: Job | None = None

    @property
    def terminal(self) -> bool:
        """True for the job's end, the stream's last event."""
        return self.event in TERMINAL_EVENTS


def parse_event(sse: ServerSentEvent) -> StreamEvent:
    """A decoded SSE message as a :class:`StreamEvent`; raises ``UnexpectedResponse``."""
    try:
        event_id = int(sse.id)
        data = orjson.loads(sse.data)
        if sse.event == JOB_EVENT or sse.event in TERMINAL_EVENTS:
            return StreamEvent(event_id, sse.event, data, job=Job.from_json(data))
        return StreamEvent(event_id, sse.event, data["data"], attempt=int(data["attempt"]))
    except (KeyError, TypeError, ValueError) as exc:  # orjson.JSONDecodeError is a ValueError
        raise errors.UnexpectedResponse(f"not a job event: {sse!r:.200} ({exc!r})") from None


class Follow:
    """One stream across its connections.

    The first request is the one given (``GET /jobs/{id}/events``, or the streamed
    submit); once the server has answered it with a stream, every reconnect is a ``GET``
    of the stream's ``Location`` with ``Last-Event-ID``: the last id seen. ``attempt``
    counts as ``Retries.max_attempts`` does, with each event starting the count again: the
    connection that brought the last event is attempt 1, the reconnects since then 2, 3,
    ... (so ``max_attempts=1`` never reconnects). A connection that fails before the stream
    ever opened is not retried (a submit may or may not have been taken), except for 429
    and 503 answers, which are retried as every request is.
    """

    def __init__(
        self,
        retries: Retries,
        url: str,
        *,
        job_id: str | None = None,
        after: int | None = None,
        method: str = "GET",
        params: dict[str, str] | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._retries = retries
        self.method, self.url, self.params, self.json = method, url, params, json
        self._headers = headers or {}
        self.last_id = after
        self._after = after
        self.job_id = job_id
        self.attempt = 1
        self.opened = False
        self.received = 0  # events taken on the current connection

    def request(self) -> dict[str, Any]:
        """The keywords of ``httpx_sse.connect_sse`` for the next connection (a fresh dict:
        httpx-sse adds its headers to it)."""
        headers = dict(self._headers)
        if self.last_id is not None:
            headers["Last-Event-ID"] = str(self.last_id)
        self.received = 0
        return {
            "method": self.method,
            "url": self.url,
            "params": self.params,
            "json": self.json,
            "headers": headers,
        }

    def refused(self, response: httpx.Response) -> float:
        """An error answer (its body read): seconds to wait before asking again (429, 503,
        within the retries), else its ``errors.ApiError`` is raised."""
        delay = retry_delay(response, self.attempt, self._retries)
        if delay is None:
            raise _api_error(response)
        self.attempt += 1
        return delay

    def open(self, response: httpx.Response) -> None:
        """A successful answer: check it is a stream, and where to reconnect to."""
        content_type = response.headers.get("Content-Type", "").partition(";")[0].strip()
        if content_type != "text/event-stream":
            raise errors.UnexpectedResponse(
                f"expected an event stream, got {content_type!r}: {response.status_code}",
                response.status_code,
            )
        location = response.headers.get("Location")
        if self.method != "GET":
            if location is None:
                raise errors.UnexpectedResponse("a streamed submit without a Location")
            self.method, self.url, self.params, self.json = "GET", location, None, None
            self._headers = {}
        self.opened = True

    def take(self, sse: ServerSentEvent) -> StreamEvent | None:
        """The next event, or None for one already seen. A stream that skips ids is not
        the server's: ``UnexpectedResponse``."""
        event = parse_event(sse)
        expected = 0 if self.last_id is None else self.last_id + 1
        if event.id < expected:
            return None
        if event.id > expected:
            raise errors.UnexpectedResponse(
                f"event {event.id} came after {self.last_id}: the stream skipped events"
            )
        self.last_id = event.id
        self.attempt = 1
        self.received += 1
        return event

    def job_to_ask(self, cause: httpx.TransportError | None) -> str | None:
        """The job to ask whether it has ended, when a connection ended cleanly (no
        ``cause``) with no event, on a stream of :meth:`stream` resumed after the caller's
        ``after`` with no event since: it may have been resumed after the job's end (the
        server then sends nothing). None otherwise."""
        if cause is not None or self.received or self._after is None:
            return None
        return self.job_id if self.last_id == self._after else None

    def dropped(self, cause: httpx.TransportError | None) -> float:
        """The connection broke (``cause``), or ended before the job's end: seconds to wait
        before reconnecting, or ``errors.TransportError`` when the retries are spent or the
        stream never opened."""
        what = f"{self.method} {self.url}"
        reason = "the stream ended before the job did" if cause is None else repr(cause)
        if not self.opened:
            raise errors.TransportError(f"{what}: {reason}") from cause
        delay = self._retries.delay(self.attempt, None)
        if delay is None:
            raise errors.TransportError(
                f"{what}: {reason}; gave up after {self.attempt - 1} reconnects without an event"
            ) from cause
        self.attempt += 1
        return delay
