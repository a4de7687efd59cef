"""The PostgreSQL store's retries: an operation that fails for a connection reason (the
server restarted, a connection was terminated or dropped, the pool found none) runs again,
with backoff, until it succeeds or the database has been unreachable for longer than the
``store_unavailable_exit`` setting; then it raises
:class:`~graphnursery.errors.StoreUnavailable`.

Meanwhile :attr:`Retrying.available` is False, for the server to report (``/health``) and to
refuse submits with; the first success sets it True again.

A try that failed may still have committed (the connection broke after ``COMMIT`` was sent,
before its answer came back). So an operation whose second run would not do what the
first did gives :meth:`Retrying.run` an ``again``: what to run on the tries after the first,
recognising its own earlier commit (a job already added, claimed, finished by this call).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg
import trio
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from ..errors import StoreUnavailable
from ._pg_schema import Connection, read_json_as_text

log = logging.getLogger("graphnursery.store.postgres")

T = TypeVar("T")

#: Seconds before the first retry; doubled after each failed try, up to RETRY_MAX.
RETRY_FIRST = 0.1
RETRY_MAX = 2.0
#: Longest a try waits for a pool connection (the pool reconnects meanwhile).
POOL_WAIT = 5.0


#: Seconds of failing operations before the store reports itself unavailable.
UNAVAILABLE_AFTER = 1.0


class Retrying:
    """Runs operations on a pool, retrying those that fail for a connection reason.

    ``where`` says which database (no password), for messages.
    """

    def __init__(self, conninfo: str, where: str, unavailable_exit: float) -> None:
        self.conninfo = conninfo
        self.where = where
        self.unavailable_exit = unavailable_exit
        #: When an operation first failed since the last success (Trio's clock); None: up.
        self._down_since: float | None = None
        #: The same moment on the monotonic clock, for :attr:`available`, which any thread
        #: may read (an engine in a thread of its own has a Trio clock of its own).
        self._down_since_monotonic: float | None = None
        self._warned = False  # that the database is unreachable: one retry failed too

    @property
    def available(self) -> bool:
        # A dead pooled connection (the database restarted, a failover) costs one retry of
        # ~0.1 s: not worth refusing work for. Unreachable means failing for a while.
        down_since = self._down_since_monotonic
        return down_since is None or time.monotonic() - down_since < UNAVAILABLE_AFTER

    async def run(
        self,
        pool: ConnectionPool[Connection],
        fn: Callable[[Connection], T],
        limiter: trio.CapacityLimiter,
        again: Callable[[Connection], T] | None = None,
    ) -> T:
        """``fn(connection)`` in one transaction, on a thread; retried, as ``again`` when
        given, while it fails for a connection reason (``psycopg.OperationalError``).

        Raises :class:`StoreUnavailable` once the database has been unreachable for
        ``unavailable_exit`` seconds; any other error at once. Cancellable between tries.
        """
        attempt, delay = fn, RETRY_FIRST
        first_failure: float | None = None  # this operation's, should others succeed meanwhile
        while True:
            try:
                value = await trio.to_thread.run_sync(
                    _in_transaction,
                    pool,
                    self.conninfo,
                    attempt,
                    self._pool_wait(),
                    limiter=limiter,
                )
            except PoolClosed:
                raise
            except psycopg.OperationalError as exc:
                if first_failure is None:
                    first_failure = trio.current_time()
                down_for = max(self._failed(exc), trio.current_time() - first_failure)
                if down_for >= self.unavailable_exit:
                    raise StoreUnavailable(self.where, down_for) from exc
                log.debug("a PostgreSQL operation failed (%s); retrying in %.1f s", exc, delay)
                await trio.sleep(min(delay, self.unavailable_exit - down_for))
                attempt, delay = again or fn, min(2 * delay, RETRY_MAX)
            else:
                self._succeeded()
                return value

    def _pool_wait(self) -> float:
        if self._down_since is None:
            return min(POOL_WAIT, self.unavailable_exit)
        left = self.unavailable_exit - (trio.current_time() - self._down_since)
        return max(0.1, min(POOL_WAIT, left))

    def _failed(self, exc: Exception) -> float:
        """Note a failed try; how long the database has been unreachable."""
        now = trio.current_time()
        if self._down_since is None:
            self._down_since, self._down_since_monotonic = now, time.monotonic()
        elif not self._warned:  # one dropped connection is not worth a warning; two are
            self._warned = True
            log.warning(
                "PostgreSQL at %s is unreachable (%s); retrying for up to %g s",
                self.where,
                str(exc).strip(),
                self.unavailable_exit,
            )
        return now - self._down_since

    def _succeeded(self) -> None:
        if self._warned:
            log.warning(
                "PostgreSQL at %s answers again, after %.1f s",
                self.where,
                trio.current_time() - (self._down_since or 0.0),
            )
        self._down_since = self._down_since_monotonic = None
        self._warned = False


def _in_transaction(
    pool: ConnectionPool[Connection], conninfo: str, fn: Callable[[Connection], T], wait: float
) -> T:
    """``fn(connection)`` in one transaction, committed unless it raised.

    On a pool connection; if none comes within ``wait`` seconds, on one of its own. The
    pool has none only when the database was away (the limiters never ask for more than it
    holds), and it reconnects on a backoff of its own (tens of seconds, after a long outage),
    so the try finds out whether the database answers now.
    """
    try:
        with pool.connection(timeout=wait) as connection:
            return fn(connection)
    except PoolTimeout:
        with psycopg.connect(conninfo, connect_timeout=int(POOL_WAIT)) as connection:
            read_json_as_text(connection)
            return fn(connection)
    except psycopg.OperationalError:
        # Its connection broke: the idle ones likely did too (a server restart, terminated
        # backends). Replace them now, so the retry does not find them one at a time.
        with contextlib.suppress(psycopg.Error):
            pool.check()
        raise
