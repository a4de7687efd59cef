"""The SQLite store's writer: one thread owns the connection and commits in groups.

The Trio thread only queues operations and waits for their commit. The thread takes every
operation queued while it was busy (up to :data:`MAX_BATCH`) and runs them in one
transaction, so a burst of submits costs one fsync, not one each; an operation returns
only after its transaction committed.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import trio

from ..errors import StoreError

log = logging.getLogger("graphnursery.store.sqlite")

T = TypeVar("T")

#: Most operations one transaction takes; more wait for the next one.
MAX_BATCH = 1024


class _Operation:
    __slots__ = ("done", "error", "fn", "value")

    def __init__(self, fn: Callable[[sqlite3.Connection], Any]) -> None:
        self.fn = fn
        self.done = trio.Event()
        self.value: Any = None
        self.error: BaseException | None = None


def _deliver(batch: list[_Operation]) -> None:
    for operation in batch:
        operation.done.set()


class Writer:
    """The thread that owns the connection and commits operations in batches.

    ``on_rollback(connection)`` runs on the thread after a transaction failed to commit, so
    state kept beside the database (the store's counts) can be read back from it.
    """

    def __init__(
        self,
        connection: sqlite3.Connection,
        token: trio.lowlevel.TrioToken,
        on_rollback: Callable[[sqlite3.Connection], None],
    ) -> None:
        self._connection = connection
        self._token = token
        self._on_rollback = on_rollback
        # Unbounded, but never deep: each caller waits for its operation's commit, so it
        # holds at most one operation per waiting task.
        self._queue: queue.SimpleQueue[_Operation | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="graphnursery-sqlite", daemon=True)
        self.transactions = 0
        self._thread.start()

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` in the next transaction; returns after it committed.

        Not cancellable, like ``trio.to_thread.run_sync``: once queued, it runs.
        """
        operation = _Operation(fn)
        self._queue.put(operation)
        with trio.CancelScope(shield=True):
            await operation.done.wait()
        if operation.error is not None:
            raise operation.error
        return operation.value  # type: ignore[no-any-return]

    async def stop(self) -> None:
        """Commit what is queued, close the connection and end the thread."""
        self._queue.put(None)
        await trio.to_thread.run_sync(self._thread.join)

    def _loop(self) -> None:
        while (batch := self._next_batch()) is not None:
            self._run_batch(batch)
            del batch  # not kept while the thread waits: results in it may be large
        self._connection.close()

    def _next_batch(self) -> list[_Operation] | None:
        """The operations queued now (at least one; it waits for it), or None to stop.

        Stopping runs what was queued before the stop first."""
        first = self._queue.get()
        if first is None:
            return None
        batch = [first]
        while len(batch) < MAX_BATCH:
            try:
                operation = self._queue.get_nowait()
            except queue.Empty:
                break
            if operation is None:
                self._queue.put(None)  # stop once this batch is committed
                break
            batch.append(operation)
        return batch

    def _run_batch(self, batch: list[_Operation]) -> None:
        connection = self._connection
        try:
            connection.execute("BEGIN IMMEDIATE")
            for operation in batch:
                # A failing statement (say, a duplicate id) rolls back only itself, and each
                # operation writes with one statement: the others' work stays intact.
                try:
                    operation.value = operation.fn(connection)
                except Exception as exc:
                    operation.error = exc
            connection.execute("COMMIT")
            self.transactions += 1
        except Exception as exc:  # the commit itself failed (disk full, I/O error)
            log.exception("SQLite transaction failed")
            # SQLite may have rolled back on its own (an I/O error): then ROLLBACK fails,
            # and the counts must be read again all the same.
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
            with contextlib.suppress(sqlite3.Error):
                self._on_rollback(connection)
            error = StoreError(f"the SQLite transaction failed: {exc}")
            for operation in batch:
                operation.error = error
        with contextlib.suppress(trio.RunFinishedError):  # nobody is waiting any more
            self._token.run_sync_soon(_deliver, batch)


@contextlib.contextmanager
def all_or_nothing(connection: sqlite3.Connection) -> Iterator[None]:
    """An operation of several statements, in a savepoint: the writer runs a batch of
    operations in one transaction, and one that fails must leave none of its writes."""
    connection.execute("SAVEPOINT operation")
    try:
        yield
    except BaseException:
        with contextlib.suppress(sqlite3.Error):  # the transaction may be gone already
            connection.execute("ROLLBACK TO operation")
            connection.execute("RELEASE operation")
        raise
    connection.execute("RELEASE operation")
