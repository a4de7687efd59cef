"""Long-polls and streams: who waits for a job to end, or for its log to grow, in one
Trio loop.

Everyone waiting on a job shares one ``trio.Event``, registered before the job is first read
(so an end reported meanwhile is not missed) and set when the job ends. The engine keeps one
for its own loop; with the engine in a thread of its own, the HTTP loop keeps another,
woken through its token (``engine_thread``).
"""

from __future__ import annotations

import collections
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import trio

from .jobs import Job


class Waiters:
    """The jobs someone waits on, each with the event their end sets."""

    def __init__(self) -> None:
        self._events: dict[str, trio.Event] = {}

    def __contains__(self, job_id: str) -> bool:
        return job_id in self._events

    async def wait(self, job_id: str, timeout: float, read: Callable[[str], Awaitable[Job]]) -> Job:
        """The job (``read(job_id)``) once it is terminal, or as it stands after ``timeout``
        seconds."""
        event = self._events.get(job_id)
        if event is None:
            event = self._events[job_id] = trio.Event()
        try:
            job = await read(job_id)
            if not job.status.is_terminal:
                with trio.move_on_after(timeout):
                    await event.wait()
                job = await read(job_id)
        finally:
            # Done before the job ended (or it was already terminal): nobody needs the event.
            if not event.is_set() and self._events.get(job_id) is event:
                del self._events[job_id]
        return job

    def wake(self, job_id: str) -> None:
        """The job ended: its waiters read it again."""
        event = self._events.pop(job_id, None)
        if event is not None:
            event.set()

    def wake_all(self) -> None:
        """The engine stopped: every waiter reads its job again (and hears it is gone)."""
        events, self._events = self._events, {}
        for event in events.values():
            event.set()


class Watchers:
    """Who follows a job's event log (its streams), in one Trio loop: one ``trio.Event``
    per job, set and replaced each time the log grows or the job ends.

    A stream registers (:meth:`following`) before it first reads, and takes
    :meth:`changed` before each read, so a change made meanwhile is not missed.
    """

    def __init__(self) -> None:
        self._events: dict[str, trio.Event] = {}
        self._followers: collections.Counter[str] = collections.Counter()

    def __contains__(self, job_id: str) -> bool:
        return job_id in self._followers

    def __len__(self) -> int:
        return sum(self._followers.values())

    @contextmanager
    def following(self, job_id: str) -> Iterator[Callable[[], trio.Event]]:
        """While the block runs, ``changed()`` gives the event the job's next change sets."""
        self._followers[job_id] += 1

        def changed() -> trio.Event:
            event = self._events.get(job_id)
            if event is None:
                event = self._events[job_id] = trio.Event()
            return event

        try:
            yield changed
        finally:
            self._followers[job_id] -= 1
            if not self._followers[job_id]:
                del self._followers[job_id]
                self._events.pop(job_id, None)

    def wake(self, job_id: str) -> None:
        """The job's log grew, or the job ended: its streams read again."""
        event = self._events.pop(job_id, None)
        if event is not None:
            event.set()

    def wake_all(self) -> None:
        events, self._events = self._events, {}
        for event in events.values():
            event.set()


class Listeners:
    """Everyone in one Trio loop who hears of a job: its long-polls (woken when it ends)
    and its streams (woken when it ends or its log grows)."""

    def __init__(self) -> None:
        self.polls = Waiters()
        self.streams = Watchers()

    def __contains__(self, job_id: str) -> bool:
        return job_id in self.polls or job_id in self.streams

    def ended(self, job_id: str) -> None:
        self.polls.wake(job_id)
        self.streams.wake(job_id)

    def grew(self, job_id: str) -> None:
        self.streams.wake(job_id)

    def wake_all(self) -> None:
        self.polls.wake_all()
        self.streams.wake_all()
