"""The queue between submit and the runners: a bounded Trio memory channel of job ids.

It also knows each queued job's position without scanning (a job's sequence number minus
how many jobs have left the queue so far), and holds the retries that wait out their backoff
before they get back on the channel: those are queued jobs too, so they count in its length.
"""

from __future__ import annotations

import trio


class JobQueue:
    """Job ids waiting for a runner, at most ``capacity`` on the channel."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._send, self._receive = trio.open_memory_channel[str](capacity)
        self._seq: dict[str, int] = {}
        self._entered = 0
        self._left = 0
        self._held: set[str] = set()

    def __len__(self) -> int:
        """Jobs waiting: on the channel, or held while a retry waits out its backoff."""
        return int(self._send.statistics().current_buffer_used) + len(self._held)

    def position(self, job_id: str) -> int | None:
        """How many queued jobs are ahead of this one; None if it is not on the channel."""
        seq = self._seq.get(job_id)
        return None if seq is None else max(seq - self._left, 0)

    def put_nowait(self, job_id: str) -> None:
        """Queue a job; raises ``trio.WouldBlock`` when the channel is full."""
        self._send.send_nowait(job_id)
        self._entered_one(job_id)

    async def put(self, job_id: str) -> None:
        """Queue a job, waiting while the channel is full."""
        await self._send.send(job_id)
        self._entered_one(job_id)

    def _entered_one(self, job_id: str) -> None:
        self._seq[job_id] = self._entered
        self._entered += 1

    async def take(self) -> str | None:
        """The next job id for a runner; None once the queue is closed and empty.

        With a job waiting, it returns without a scheduler pass: a worker that just finished
        gets its next job before anything the last result woke up runs.
        """
        try:
            job_id = self._receive.receive_nowait()
        except trio.WouldBlock:
            try:
                job_id = await self._receive.receive()
            except trio.EndOfChannel:
                return None
        except trio.EndOfChannel:
            return None
        self._left_one(job_id)
        return job_id

    def take_all_nowait(self) -> list[str]:
        """Empty the channel at once (stopping): the ids that were on it, in order."""
        taken: list[str] = []
        while True:
            try:
                job_id = self._receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                return taken
            self._left_one(job_id)
            taken.append(job_id)

    def _left_one(self, job_id: str) -> None:
        self._left += 1
        self._seq.pop(job_id, None)

    # -- retries waiting out their backoff ----------------------------------------------

    def hold(self, job_id: str) -> None:
        """Count a retry waiting out its backoff as queued (see :meth:`put_held`)."""
        self._held.add(job_id)

    async def put_held(self, job_id: str) -> None:
        """Queue a held retry once its backoff is over, waiting while the channel is full
        (a retry is never dropped). Nothing if it is no longer held (stopping took it)."""
        if job_id not in self._held:
            return
        await self._send.send(job_id)
        self._held.discard(job_id)
        self._entered_one(job_id)

    def take_held(self) -> set[str]:
        """Every held retry (stopping): they are no longer queued."""
        held, self._held = self._held, set()
        return held
