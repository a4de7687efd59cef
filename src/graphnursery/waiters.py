"""Long-polls: who waits for a job to end, in one Trio loop.

Everyone waiting on a job shares one ``trio.Event``, registered before the job is first read
(so an end reported meanwhile is not missed) and set when the job ends. The engine keeps one
for its own loop; with the engine in a thread of its own, the HTTP loop keeps another,
woken through its token (``engine_thread``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

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
