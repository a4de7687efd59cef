"""The worker's end of the event channel: :func:`emit`, and the frames it sends the server.

Each worker process connects once, when it starts, to the server's event socket (a Unix
socket the engine's :class:`~graphnursery.eventhub.EventHub` listens on) and writes frames
on it, each a 4-byte big-endian length, then a kind byte and the frame's body:

- ``S`` [job id, attempt] (JSON): the events that follow are this job's, sent before its
  first event only, so a job that emits nothing sends nothing;
- ``E`` one event: a byte giving the name's length, the name, the event's JSON text;
- ``D`` [events sent, events dropped] (JSON): the job's run is over.

The socket blocks: while the server has not read what came before (its store is slow, say),
:func:`emit` waits, so a graph that emits faster than the server keeps slows down rather
than losing events or filling memory. Past the job's ``max_job_events`` its events are
dropped here, and counted.

No Trio, no Quart: this runs in the worker processes (``_worker``).
"""

from __future__ import annotations

import socket
import struct
import threading
from dataclasses import dataclass
from typing import Any

import orjson

from ._results import encode_result
from .events import check_event_name

_HEADER = struct.Struct(">IB")
#: The kind bytes of the frames.
START, EVENT, DONE = b"S", b"E", b"D"


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """What one job's run needs to know about its events (sent with the job)."""

    job_id: str
    attempt: int
    #: The event names to keep (the request's ``streamMode``); None: every one.
    modes: tuple[str, ...] | None = None
    max_events: int = 0  # events sent at most, the rest dropped and counted (0: any)


def frame(kind: bytes, body: bytes) -> bytes:
    return _HEADER.pack(len(body) + 1, kind[0]) + body


class _Channel:
    """This process's end of the event channel, and the events of the job it runs now."""

    def __init__(self) -> None:
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()  # a graph may emit from several threads
        self._spec: StreamSpec | None = None
        self._names: set[str] = set()  # names already checked
        self.sent = 0
        self.dropped = 0
        self._started = False
        #: Without a socket (the server's own process: ``InlineExecutor``), the events
        #: are kept here for the run's reply.
        self.kept: list[tuple[str, bytes]] = []

    def connect(self, address: str) -> None:
        """Send events to the server's socket at ``address`` ("": keep them here)."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if address:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._socket.connect(address)

    def begin(self, spec: StreamSpec | None) -> None:
        self._spec = spec
        self.sent = self.dropped = 0
        self._started = False
        self.kept = []

    def end(self) -> int:
        """The run is over: tell the server, if it sent anything; the count of events sent."""
        with self._lock:
            spec, self._spec = self._spec, None
            if spec is not None and self._started and self._socket is not None:
                self._socket.sendall(frame(DONE, orjson.dumps([self.sent, self.dropped])))
            return self.sent

    def wants(self, name: str) -> bool:
        spec = self._spec
        return spec is not None and (spec.modes is None or name in spec.modes)

    def send(self, name: str, data: bytes) -> bool:
        """Send one event of the running job (already named and encoded); False if it
        was dropped (over ``max_job_events``)."""
        with self._lock:
            spec = self._spec
            if spec is None:
                return False
            if spec.max_events and self.sent >= spec.max_events:
                self.dropped += 1
                return False
            self.sent += 1
            if self._socket is None:
                self.kept.append((name, data))
                return True
            encoded = name.encode()
            body = bytes((len(encoded),)) + encoded + data
            if not self._started:
                self._started = True
                start = orjson.dumps([spec.job_id, spec.attempt])
                self._socket.sendall(frame(START, start) + frame(EVENT, body))
            else:
                self._socket.sendall(frame(EVENT, body))
            return True

    def checked(self, name: str) -> str:
        if name not in self._names:
            check_event_name(name)
            if len(self._names) < 1024:
                self._names.add(name)
        return name


channel = _Channel()


def emit(data: Any, event: str = "custom") -> bool:
    """Send ``data`` (any JSON value: dicts, lists, strings, numbers, pydantic models,
    dataclasses) as one event of the job this process runs, to every stream of it.

    Returns at once while the server keeps up, and waits while it does not (never losing
    an event). Returns False when the event was not kept: past the job's
    ``max_job_events`` (it is counted, and the job's end says how many), not among the
    ``streamMode`` the job was submitted with, or called outside a job. Raises ValueError
    for a name that is not 1 to 64 of letters, digits and ``_.:|-``, or is one the job's
    own events use (``running``, ``completed``...), and ResultNotSerializable for data
    with no JSON form.
    """
    if not channel.wants(channel.checked(event)):
        return False
    return channel.send(event, encode_result(data))
