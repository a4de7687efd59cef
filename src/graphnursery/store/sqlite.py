"""The SQLite store: durable jobs on one machine, with no server to run.

- One server per database file: :meth:`SQLiteStore.open` takes an exclusive ``flock`` on
  ``<file>.lock`` and on the database file itself, and raises
  :class:`~graphnursery.errors.StoreLocked` if another server holds either. Both are the
  real file's (symlinks resolved): a path through a symlink or a hard link is the same
  database. The locks go with the process, so a killed server never leaves them stale.
  (``flock`` and SQLite's own ``fcntl`` locks do not interact on Linux.)
- Every statement runs on one dedicated thread that owns the connection; the Trio thread
  only queues work and waits for its commit.
- Group commit (see :mod:`._sqlite_writer`): the thread takes every operation queued while
  it was busy and runs them in one transaction, so a burst of submits costs one fsync, not
  one each. An operation returns only after its transaction committed (``synchronous=FULL``
  in WAL mode): a submitted job is on disk before the server answers 202.
- On open, jobs a crash left ``running`` are queued again (they run again with one more
  attempt: at-least-once) if they have attempts left, else end ``crashed``: a job never
  runs more than ``max_attempts`` times, so one that stops the server cannot stop every
  restart too. :meth:`resume` hands the engine every queued job in creation order.
- The schema is versioned with ``PRAGMA user_version`` and migrated on open
  (:mod:`._sqlite_schema`).

Since only this process writes the file, per-status counts are kept in memory.
"""

from __future__ import annotations

import collections
import fcntl
import logging
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import trio

from ..errors import StoreError, StoreLocked
from ..events import RUNNING, RUNNING_DATA, JobEvent
from ..jobs import Job, JobError, JobStatus
from ._catalog_sql import CatalogTables
from ._events_sql import EventLog
from ._rows import (
    INTERRUPTED,
    JOB_COLUMNS,
    NO_ATTEMPTS_LEFT,
    TERMINAL_SQL,
    dump_error,
    graph_counts,
    graphs_filter,
    unstorable_key,
)
from ._sql import Dialect, SQLStore, Statements, one_job
from ._sqlite_schema import migrate
from ._sqlite_writer import Writer, all_or_nothing
from .base import Backlogged

log = logging.getLogger("graphnursery.store.sqlite")

T = TypeVar("T")

COLUMNS = ", ".join(JOB_COLUMNS)
STATEMENTS = Statements(Dialect(table="jobs", columns=COLUMNS, events_table="job_events"))
EVENTS = EventLog(STATEMENTS.dialect)
START_EVENT = "INSERT INTO job_events (job_id, seq, attempt, event, data) VALUES (?, ?, ?, ?, ?)"
NOT_TERMINAL = f"status NOT IN ({TERMINAL_SQL})"
FINISH = STATEMENTS.finish(NOT_TERMINAL)
#: Back to the queue, the lease cleared and an error (``:error``) appended to ``errors``.
REQUEUE = (
    "UPDATE jobs SET status = 'queued', lease_owner = NULL, lease_token = NULL,"
    f" lease_expires_at = NULL, errors = {STATEMENTS.dialect.append_error('error')}"
)
#: Ended ``crashed``, with the error (``:error``) at ``:now``: a job left running with no
#: attempts left.
CRASH = (
    "UPDATE jobs SET status = 'crashed', completed_at = :now, error = :error,"
    " lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL,"
    f" errors = {STATEMENTS.dialect.append_error('error')}"
)


class SQLiteStore(SQLStore[sqlite3.Connection]):
    """Jobs in one SQLite database file, for one server process at a time."""

    sql = STATEMENTS
    tables = CatalogTables("flows", "flow_versions", "schedules")
    event_log = EVENTS
    duplicate_id = sqlite3.IntegrityError

    def __init__(self, path: str) -> None:
        self.path = path
        #: The database file, symlinks resolved: the one file every alias of it names.
        self.real_path = os.path.realpath(path)
        self.lock_path = self.real_path + ".lock"
        self._lock_fds: list[int] = []
        self._writer: Writer | None = None
        self._counts: collections.Counter[tuple[str, JobStatus]] = collections.Counter()
        self._resume_until = 0  # the largest seq of a job queued when the store opened
        self.recovered = 0  # running jobs requeued on open
        self.crashed = 0  # running jobs ended crashed on open (no attempts left)
        # Reads of one job: on a read-only connection of the calling thread (WAL lets it
        # read what was committed while the writer writes), not through the writer.
        self._readers = threading.local()
        self._reader_connections: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()

    # -- opening and closing ------------------------------------------------------------------

    @property
    def checkpoints(self) -> str:
        return f"sqlite:{self.real_path}-threads"

    async def open(self) -> None:
        connection = await trio.to_thread.run_sync(self._open_sync)
        self._writer = Writer(connection, trio.lowlevel.current_trio_token(), self._recount)

    def _open_sync(self) -> sqlite3.Connection:
        os.makedirs(os.path.dirname(self.real_path), exist_ok=True)
        try:
            # The lock file first: what servers of earlier versions lock.
            self._lock(self.lock_path)
            self._lock(self.real_path)  # held by inode: a hard link to it finds it held
        except BaseException:
            self._unlock()
            raise
        try:
            connection = sqlite3.connect(
                self.real_path, isolation_level=None, check_same_thread=False
            )
            try:
                self._prepare(connection)
            except BaseException:
                connection.close()
                raise
        except BaseException:
            self._unlock()
            raise
        return connection

    def _prepare(self, connection: sqlite3.Connection) -> None:
        try:
            mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path!r} is not a usable SQLite database: {exc}") from None
        if mode != "wal":
            raise StoreError(f"cannot put {self.path!r} in WAL mode (got {mode!r})")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("PRAGMA busy_timeout=5000")
        connection.execute("PRAGMA foreign_keys=ON")  # a job's events go with it
        migrate(connection, self.path)
        connection.execute("BEGIN IMMEDIATE")
        crashed = connection.execute(
            f"{CRASH} WHERE status = 'running' AND attempts >= max_attempts",
            {"error": dump_error(NO_ATTEMPTS_LEFT), "now": time.time()},
        ).rowcount
        requeued = connection.execute(
            f"{REQUEUE} WHERE status = 'running'", {"error": dump_error(INTERRUPTED)}
        ).rowcount
        (self._resume_until,) = connection.execute(
            "SELECT coalesce(max(seq), 0) FROM jobs WHERE status = 'queued'"
        ).fetchone()
        self._recount(connection)
        connection.execute("COMMIT")
        self.recovered, self.crashed = requeued, crashed
        if crashed:
            log.warning(
                "%s: %d jobs were running when the last server stopped, with no attempts "
                "left; they ended crashed",
                self.path,
                crashed,
            )
        if requeued:
            log.warning(
                "%s: %d jobs were running when the last server stopped; requeued",
                self.path,
                requeued,
            )

    def _recount(self, connection: sqlite3.Connection) -> None:
        """Per-status counts from the table (on open, and after a failed transaction)."""
        counts: collections.Counter[tuple[str, JobStatus]] = collections.Counter()
        query = "SELECT graph, status, count(*) FROM jobs GROUP BY graph, status"
        for graph, status, count in connection.execute(query):
            counts[graph, JobStatus(status)] = count
        self._counts = counts

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            await writer.stop()
        with self._readers_lock:
            readers, self._reader_connections = self._reader_connections, []
            self._readers = threading.local()
        for reader in readers:
            reader.close()
        self._unlock()

    reads_anywhere = True  # get() reads on the calling thread's own connection
    logs_starts = True  # in start()'s own transaction

    async def get(self, job_id: str, workspace: str | None = None) -> Job | None:
        """The job as last committed, read on this thread's read-only connection: a
        primary-key lookup, cheaper done here than handed to the writer thread and back."""
        if unstorable_key(job_id):
            return None
        try:
            return one_job(self._reader(), *self.sql.lookup(job_id, workspace))
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read job {job_id} from {self.path}: {exc}") from None

    def _reader(self) -> sqlite3.Connection:
        reader: sqlite3.Connection | None = getattr(self._readers, "connection", None)
        if reader is None:
            if self._writer is None:
                raise StoreError(f"the SQLite store at {self.path} is closed")
            uri = f"file:{urllib.parse.quote(self.real_path)}?mode=ro"
            reader = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            reader.execute("PRAGMA busy_timeout=5000")
            self._readers.connection = reader
            with self._readers_lock:
                self._reader_connections.append(reader)
        return reader

    def _lock(self, path: str) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreLocked(self.real_path, path) from None
        self._lock_fds.append(fd)

    def _unlock(self) -> None:
        # After the connection closed: closing a descriptor of the database file would
        # drop SQLite's own fcntl locks on it.
        fds, self._lock_fds = self._lock_fds, []
        for fd in fds:
            os.close(fd)  # closing the descriptor releases the flock

    async def _run(
        self,
        fn: Callable[[sqlite3.Connection], T],
        *,
        engine: bool = False,
        again: Callable[[sqlite3.Connection], T] | None = None,
    ) -> T:
        # ``engine`` makes no difference: every operation goes through the one writer, and
        # one that fails is not retried (so ``again`` is never run).
        if self._writer is None:
            raise StoreError(f"the SQLite store {self.path!r} is not open")
        return await self._writer.call(fn)

    @property
    def transactions(self) -> int:
        """Transactions committed since open (each holds a batch of operations)."""
        return 0 if self._writer is None else self._writer.transactions

    # -- the store interface (add, get, list... are SQLStore's) -------------------------------

    def _move(self, graph: str, before: str | JobStatus, after: JobStatus) -> None:
        self._counts[graph, JobStatus(before)] -= 1
        self._counts[graph, after] += 1

    def _added(self, connection: sqlite3.Connection, job: Job) -> None:
        self._counts[job.graph, job.status] += 1

    def _deleted(self, rows: Sequence[tuple[str, str]]) -> None:
        for graph, status in rows:
            self._counts[graph, JobStatus(status)] -= 1

    async def start(self, job_id: str, started_at: float, version: str = "") -> Job | None:
        def start(connection: sqlite3.Connection) -> Job | None:
            job = one_job(
                connection,
                f"UPDATE jobs SET status = 'running', started_at = ?, attempts = attempts + 1,"
                " run_after = NULL, events = events + 1,"
                " version = coalesce(nullif(?, ''), version)"
                f" WHERE id = ? AND status = 'queued' RETURNING {COLUMNS}",
                (started_at, version, job_id),
            )
            if job is None:
                return None
            # The attempt's running event, the job's next id (its row is this writer's).
            connection.execute(
                START_EVENT, (job_id, job.events, job.attempts, RUNNING, RUNNING_DATA)
            )
            self._move(job.graph, JobStatus.QUEUED, JobStatus.RUNNING)
            return job

        return await self._run(start)

    async def _finish(self, params: dict[str, Any]) -> Job | None:
        def finish(connection: sqlite3.Connection) -> Job | None:
            before = connection.execute(
                f"SELECT graph, status FROM jobs WHERE id = :id AND {NOT_TERMINAL}", params
            ).fetchone()
            if before is None:
                return None
            job = one_job(connection, FINISH, params)
            self._move(before[0], before[1], JobStatus(params["status"]))
            self._thread_run_ended(connection, job, params["raw_result"], params["completed_at"])
            return job

        return await self._run(finish)

    async def append_events(
        self,
        job_id: str,
        attempt: int,
        events: Sequence[tuple[str, bytes]],
        *,
        limit: int = 0,
        dropped: int = 0,
    ) -> bool:
        if unstorable_key(job_id):
            return False

        def append(connection: sqlite3.Connection) -> bool:
            with all_or_nothing(connection):
                return (
                    EVENTS.append(connection, job_id, attempt, events, limit, dropped) is not None
                )

        return await self._run(append)

    async def read_events(
        self, job_id: str, after: int, limit: int
    ) -> tuple[Job, list[JobEvent]] | None:
        """Read on this thread's read-only connection (as :meth:`get`), in one read
        transaction: one snapshot of the file (WAL), the job and its events as committed."""
        if unstorable_key(job_id):
            return None
        try:
            reader = self._reader()
            reader.execute("BEGIN")
            try:
                return EVENTS.read(reader, job_id, after, limit)
            finally:
                reader.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read job {job_id}'s events from {self.path}: {exc}") from None

    async def counts(self, graphs: Sequence[str] | None = None) -> Mapping[JobStatus, int]:
        await trio.lowlevel.checkpoint()
        return graph_counts(self._counts, graphs)

    # -- durable ----------------------------------------------------------------------------

    async def release(self, job_id: str, error: JobError = INTERRUPTED, delay: float = 0.0) -> None:
        params = {
            "id": job_id,
            "error": dump_error(error),
            # When the backoff ends, by the wall clock: it must survive a restart.
            "run_after": time.time() + delay if delay > 0 else None,
        }

        def release(connection: sqlite3.Connection) -> None:
            changed = connection.execute(
                f"{REQUEUE}, run_after = :run_after WHERE id = :id AND status = 'running'"
                " RETURNING graph",
                params,
            ).fetchone()
            if changed is not None:
                self._move(changed[0], JobStatus.RUNNING, JobStatus.QUEUED)

        await self._run(release)

    async def resume(
        self, cursor: Any, limit: int, graphs: Sequence[str] | None = None
    ) -> tuple[list[Backlogged], Any]:
        after = 0 if cursor is None else int(cursor)
        of_graphs, names = graphs_filter(graphs, "?")

        def page(connection: sqlite3.Connection) -> list[tuple[int, str, float | None, str]]:
            return connection.execute(
                "SELECT seq, id, run_after, workspace FROM jobs WHERE status = 'queued' AND seq > ?"
                f" AND seq <= ?{of_graphs} ORDER BY seq LIMIT ?",
                (after, self._resume_until, *names, limit),
            ).fetchall()

        rows = await self._run(page)
        if not rows:
            return [], None
        now = time.time()
        backlog = [
            Backlogged(job_id, max(0.0, (run_after or now) - now), workspace)
            for _, job_id, run_after, workspace in rows
        ]
        return backlog, rows[-1][0]


__all__ = ["SQLiteStore"]
