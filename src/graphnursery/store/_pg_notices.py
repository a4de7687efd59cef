"""The PostgreSQL store's notices: what replicas tell each other through ``NOTIFY``.

A notice's payload is ``<kind>:<job id>``, the kind one letter (:class:`Notice`); replicas
running older code send and read the same payloads. Each replica ``LISTEN``s on a thread
of its own, which hands every notice to the Trio thread and reconnects when its
connection breaks.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import trio
from psycopg import sql

from ._pg_leases import Leases
from .base import StoreEvents

log = logging.getLogger("graphnursery.store.postgres")

#: How long the LISTEN thread waits for notices before it checks whether to stop.
POLL_SECONDS = 0.2
#: How long it waits before it connects again after losing its connection: doubled after
#: each failed connect, up to RECONNECT_MAX (a restarted server is heard again at once, a
#: server away for long is not hammered). Notices sent meanwhile are missed, so once it
#: listens again the engine hears that work may be waiting.
RECONNECT_FIRST = 0.1
RECONNECT_MAX = 2.0


class Notice(enum.StrEnum):
    """What happened to a job, as the ``kind`` of a ``NOTIFY`` payload."""

    NEW = "n"  # queued (submitted, or given back): a replica with free workers claims it
    DONE = "d"  # terminal: long-polls on it wake
    CANCELLED = "c"  # cancelled: the replica running it stops it
    EVENTS = "v"  # events appended to its log: its streams wake

    def payload(self, job_id: str) -> str:
        return f"{self.value}:{job_id}"


def notify(connection: psycopg.Connection[Any], channel: str, notice: Notice, job_id: str) -> None:
    """Tell every replica listening on ``channel``; sent when the transaction commits."""
    connection.execute("SELECT pg_notify(%s, %s)", (channel, notice.payload(job_id)))


@asynccontextmanager
async def listening(
    conninfo: str, channel: str, leases: Leases, events: StoreEvents
) -> AsyncIterator[None]:
    """Hear other replicas' notices, on a thread, for as long as the block runs.

    Enters once ``LISTEN`` is on (from then on ``events`` hears what other replicas do);
    on exit, stops the thread and waits for it.
    """
    listener = _Listener(conninfo, channel, leases, events)
    ready = trio.Event()
    stop = threading.Event()
    thread = threading.Thread(
        target=listener.run,
        args=(trio.lowlevel.current_trio_token(), stop, ready),
        name="graphnursery-listen",
        daemon=True,
    )
    thread.start()
    try:
        await ready.wait()
        yield
    finally:
        stop.set()
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(thread.join)


class _Listener:
    def __init__(self, conninfo: str, channel: str, leases: Leases, events: StoreEvents) -> None:
        self._conninfo = conninfo
        self._channel = channel
        self._leases = leases
        self._events = events

    def run(self, token: trio.lowlevel.TrioToken, stop: threading.Event, ready: trio.Event) -> None:
        """The LISTEN thread: hands each notice to the Trio thread; reconnects on errors."""
        first, delay = True, RECONNECT_FIRST
        while not stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as connection:
                    connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                    token.run_sync_soon(self._listening, ready, first)
                    first, delay = False, RECONNECT_FIRST
                    while not stop.is_set():
                        for notice in connection.notifies(timeout=POLL_SECONDS):
                            token.run_sync_soon(self._dispatch, notice.payload)
            except psycopg.Error as exc:
                log.warning(
                    "lost the PostgreSQL LISTEN connection (%s); reconnecting in %.1f s",
                    str(exc).strip(),
                    delay,
                )
                stop.wait(delay)
                delay = min(2 * delay, RECONNECT_MAX)
            except trio.RunFinishedError:
                return

    def _listening(self, ready: trio.Event, first: bool) -> None:
        ready.set()
        if not first:
            self._events.work_available()  # notices may have been missed while reconnecting

    def _dispatch(self, payload: str) -> None:
        kind, _, job_id = payload.partition(":")
        try:
            notice = Notice(kind)
        except ValueError:  # a kind this replica does not know (a newer one sent it)
            return
        if notice is Notice.NEW:
            self._events.work_available()
        elif notice is Notice.DONE:
            self._events.job_done(job_id)
        elif notice is Notice.EVENTS:
            self._events.job_events(job_id)
        elif notice is Notice.CANCELLED:
            # Whatever this replica holds of it is void: a claim not yet started is dropped
            # (start() then finds the job terminal), a running one is stopped by the engine.
            self._leases.forget(job_id)
            self._events.job_cancelled(job_id)
