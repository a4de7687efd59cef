"""A LangGraph thread's runs take turns: one at a time in this server, in the order they
reached a worker (``multitask_strategy: enqueue`` queues a run behind the thread's)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio


class ThreadTurns:
    """A lock per busy thread, gone once no run of it holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[trio.Lock, int]] = {}

    @asynccontextmanager
    async def turn(self, thread_id: str | None) -> AsyncIterator[None]:
        """Held while a run of ``thread_id`` runs (None: a job of no thread, at once)."""
        if thread_id is None:
            yield
            return
        lock, users = self._locks.get(thread_id, (None, 0))
        lock = lock or trio.Lock()  # FIFO: the thread's runs go in the order they came
        self._locks[thread_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[thread_id]
            if users == 1:
                del self._locks[thread_id]
            else:
                self._locks[thread_id] = (lock, users - 1)
