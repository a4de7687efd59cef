"""The server's end of the event channel: worker processes' events, into each job's log.

Each worker process connects once to the hub's Unix socket and writes frames on it (their
format: ``_emit``). One reader task per connection parses them; one writer task appends
them to the store, merging what queued meanwhile into one append per job, then wakes the
job's streams (``on_events``). The runners put the job's status changes (``running``,
``retrying``) on the same queue, so a job's log is in the order things happened to it.

Before a job's end is recorded, :meth:`EventHub.end_attempt` waits until the attempt's
events are in the log (the worker's ``D`` frame, sent before its reply, has been read, or
its connection ended), so a stream that sees the job end has seen all its events.

Backpressure: once ``MAX_BACKLOG`` events wait for the store, the readers stop reading, the
sockets fill, and the graphs' :func:`~graphnursery.emit` calls wait. Memory stays bounded
however slow the store is.
"""

from __future__ import annotations

import collections
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import orjson
import trio

from .events import RETRYING, RUNNING, RUNNING_DATA
from .jobs import Job, JobError
from .logs import get_logger
from .metrics import Metrics
from .store import Store

log = get_logger("graphnursery.events")

#: Events waiting for the store past which the readers stop reading their sockets.
MAX_BACKLOG = 8192
#: Most events one append to the store takes.
MAX_APPEND = 1024
#: Seconds a job's end waits for the last of its worker's events (a stuck channel must
#: not hold the job's result back for ever).
END_WAIT = 5.0
_READ_SIZE = 256 * 1024

Events = list[tuple[str, bytes]]


@dataclass(slots=True)
class _Append:
    job_id: str
    attempt: int
    events: Events
    dropped: int = 0
    limit: int = 0


@dataclass(slots=True)
class _Mark:
    """Set once everything queued before it for ``job_id`` is in the store."""

    job_id: str
    done: trio.Event = field(default_factory=trio.Event)


class EventHub:
    """Takes the workers' events and the runners' status changes into the jobs' logs."""

    def __init__(self, store: Store, metrics: Metrics, max_job_events: int) -> None:
        self.address = ""  # the socket the workers connect to, once running
        self._store = store
        self._metrics = metrics
        self._limit = max_job_events
        self._send, self._receive = trio.open_memory_channel[_Append | _Mark](float("inf"))
        self._backlog = 0  # events queued, not yet in the store
        self._room = trio.Event()
        self._room.set()
        #: Items queued and not yet written, per job: whether a job's end must wait.
        self._unwritten: collections.Counter[str] = collections.Counter()
        #: The attempts running now, each with the event its ``D`` frame (or the end of
        #: its worker's connection) sets.
        self._attempts: dict[tuple[str, int], trio.Event] = {}
        #: Jobs a connection streams now (an ``S`` frame seen, its ``D`` not yet).
        self._streaming: set[tuple[str, int]] = set()
        #: Called with a job's id once events were appended to its log.
        self.on_events: Callable[[str], None] = lambda job_id: None

    # -- what the runners call -------------------------------------------------------------

    def begin(self, job: Job) -> None:
        """An attempt starts: its ``running`` event goes in the log, before its own (unless
        the store's ``start`` wrote it)."""
        self._attempts[(job.id, job.attempts)] = trio.Event()
        if not self._store.logs_starts:
            self._queue(_Append(job.id, job.attempts, [(RUNNING, RUNNING_DATA)]))

    def retrying(self, job: Job, error: JobError, delay: float) -> None:
        """The attempt ended in a status that retries: the job waits ``delay`` s for the next."""
        data = {
            "status": "queued",
            "maxAttempts": job.max_attempts,
            "error": {"type": error.type, "message": error.message},
            "retryIn": round(delay, 3),
        }
        self._queue(_Append(job.id, job.attempts, [(RETRYING, orjson.dumps(data))]))

    def feed(self, job: Job, events: Sequence[tuple[str, bytes]]) -> None:
        """Events an in-process executor collected (worker processes send their own)."""
        if events:
            self._queue(_Append(job.id, job.attempts, list(events), limit=self._limit))

    async def end_attempt(self, job: Job, sent: int | None) -> None:
        """Return once the attempt's events are in the log: ``sent`` (the count its worker
        reports; None if the worker died and cannot say) have been read, and everything
        queued for the job before them written. Waits at most ``END_WAIT`` seconds."""
        key = (job.id, job.attempts)
        done = self._attempts.get(key)
        try:
            if done is not None and (sent or (sent is None and key in self._streaming)):
                with trio.move_on_after(END_WAIT) as waited:
                    await done.wait()
                if waited.cancelled_caught:
                    log.warning("gave up waiting for a job's last events", job_id=job.id)
            if self._unwritten[job.id]:
                mark = _Mark(job.id)
                self._queue(mark)
                with trio.move_on_after(END_WAIT):
                    await mark.done.wait()
        finally:
            self._attempts.pop(key, None)

    def abandon(self, job: Job) -> None:
        """The attempt was stopped (cancelled, or the engine stops): nobody waits for it."""
        self._attempts.pop((job.id, job.attempts), None)

    # -- inside the hub --------------------------------------------------------------------

    def _queue(self, item: _Append | _Mark) -> None:
        self._unwritten[item.job_id] += 1
        if isinstance(item, _Append):
            self._backlog += len(item.events)
            if self._backlog >= MAX_BACKLOG:
                self._room = trio.Event()
        self._send.send_nowait(item)

    async def _write(self) -> None:
        """Append what is queued, one store call per job and attempt, in queue order."""
        while True:
            batch = [await self._receive.receive()]
            while len(batch) < MAX_APPEND:
                try:
                    batch.append(self._receive.receive_nowait())
                except trio.WouldBlock:
                    break
            queued = 0
            by_job: dict[str, list[_Append | _Mark]] = {}
            for item in batch:
                items = by_job.setdefault(item.job_id, [])
                if isinstance(item, _Append):
                    queued += len(item.events)
                    last = items[-1] if items else None
                    if isinstance(last, _Append) and (last.attempt, last.limit) == (
                        item.attempt,
                        item.limit,
                    ):
                        last.events.extend(item.events)  # ``last`` is this batch's own copy
                        last.dropped += item.dropped
                        continue
                    item = _Append(
                        item.job_id, item.attempt, list(item.events), item.dropped, item.limit
                    )
                items.append(item)
            for job_id, items in by_job.items():
                for item in items:
                    if isinstance(item, _Mark):
                        item.done.set()
                    else:
                        await self._append(item)
                self.on_events(job_id)
            for item in batch:
                self._unwritten[item.job_id] -= 1
                if not self._unwritten[item.job_id]:
                    del self._unwritten[item.job_id]
            self._backlog -= queued
            if self._backlog < MAX_BACKLOG // 2:
                self._room.set()
            del batch, by_job

    async def _append(self, item: _Append) -> None:
        try:
            kept = await self._store.append_events(
                item.job_id, item.attempt, item.events, limit=item.limit, dropped=item.dropped
            )
        except Exception as exc:  # a store failure must not stop the hub (nor the server)
            log.warning(
                "could not keep a job's events",
                job_id=item.job_id,
                error=str(exc),
                events=len(item.events),
            )
            return
        if kept:
            self._metrics.events_emitted.inc(len(item.events))

    async def _serve(self, listener: trio.SocketListener) -> None:
        async with trio.open_nursery() as nursery:
            while True:
                connection = await listener.accept()
                nursery.start_soon(self._read, connection)

    async def _read(self, connection: trio.SocketStream) -> None:
        """One worker's frames, until its process ends."""
        reader = _Frames(self)
        try:
            async with connection:
                while data := await connection.receive_some(_READ_SIZE):
                    reader.feed(data)
                    if self._backlog >= MAX_BACKLOG:
                        await self._room.wait()
        except trio.BrokenResourceError:
            pass  # the worker was killed mid-write
        finally:
            reader.closed()

    # -- what a reader hands over ----------------------------------------------------------

    def _started(self, key: tuple[str, int]) -> None:
        self._streaming.add(key)

    def _events(self, key: tuple[str, int], events: Events, dropped: int = 0) -> None:
        if events or dropped:
            self._queue(_Append(key[0], key[1], events, dropped, self._limit))

    def _ended(self, key: tuple[str, int]) -> None:
        self._streaming.discard(key)
        done = self._attempts.get(key)
        if done is not None:
            done.set()


class _Frames:
    """Parses one connection's frames (see ``_emit``) and hands them to the hub."""

    __slots__ = ("_buffer", "_events", "_hub", "_key")

    def __init__(self, hub: EventHub) -> None:
        self._hub = hub
        self._buffer = bytearray()
        self._key: tuple[str, int] | None = None
        self._events: Events = []

    def feed(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        view = memoryview(buffer)
        offset, size = 0, len(buffer)
        try:
            while size - offset >= 5:
                length = int.from_bytes(view[offset : offset + 4])
                end = offset + 4 + length
                if end > size:
                    break
                kind = view[offset + 4]
                if kind == 0x45:  # E
                    name_end = offset + 6 + view[offset + 5]
                    self._events.append(
                        (bytes(view[offset + 6 : name_end]).decode(), bytes(view[name_end:end]))
                    )
                elif kind == 0x53:  # S
                    self._flush()
                    job_id, attempt = orjson.loads(view[offset + 5 : end])
                    self._key = (job_id, attempt)
                    self._hub._started(self._key)
                elif kind == 0x44:  # D
                    _, dropped = orjson.loads(view[offset + 5 : end])
                    self._flush(dropped)
                    if self._key is not None:
                        self._hub._ended(self._key)
                    self._key = None
                offset = end
        finally:
            view.release()
        del buffer[:offset]
        self._flush()

    def _flush(self, dropped: int = 0) -> None:
        if self._key is not None:
            self._hub._events(self._key, self._events, dropped)
        self._events = []

    def closed(self) -> None:
        """The worker's connection ended (its process exited or was killed)."""
        self._flush()
        if self._key is not None:
            self._hub._ended(self._key)
            self._key = None


@asynccontextmanager
async def open_event_hub(
    store: Store, metrics: Metrics, max_job_events: int
) -> AsyncIterator[EventHub]:
    """An event hub listening on a fresh Unix socket (``hub.address``) while the block runs.

    Its socket is in a directory of its own, removed on exit."""
    hub = EventHub(store, metrics, max_job_events)
    directory = tempfile.mkdtemp(prefix="graphnursery-events-")
    hub.address = os.path.join(directory, "s")
    try:
        listener = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
        await listener.bind(hub.address)
        listener.listen(256)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(hub._serve, trio.SocketListener(listener))
            nursery.start_soon(hub._write)
            try:
                yield hub
            finally:
                nursery.cancel_scope.cancel()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
