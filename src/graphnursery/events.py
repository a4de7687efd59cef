"""A job's event log: what a graph emits while it runs, and its status changes, in order.

Every job has one ordered log, kept by the store beside the job and evicted with it. Ids
start at 1 and grow by one per event, across attempts (a retry's events follow the first
attempt's; each event carries its attempt). Besides what the graph emits or yields, the
log holds the job's status changes: ``running`` when an attempt starts, ``retrying`` when
one ended and the job waits for the next. The job's end is not an event of the log: a
stream reads it from the job itself (see ``http/sse.py``), so every way a job can end
(a result, a cancel on any replica, a crash found on restart) ends its streams too.

Events are appended only while the job is not terminal: once a reader has seen the job
end, the log it replayed is the whole log.

This module is imported by the worker processes too: it holds no Trio, no Quart.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: The status changes the engine writes to a job's log, and the names a stream gives the
#: job's description (``job``) and its end (the terminal statuses). A graph may not emit
#: events by these names.
RUNNING = "running"
RETRYING = "retrying"
#: The data of a ``running`` event (its attempt is the event's own).
RUNNING_DATA = b'{"status":"running"}'

RESERVED_NAMES = frozenset(
    {
        "job",
        RUNNING,
        RETRYING,
        "queued",
        "completed",
        "failed",
        "timed_out",
        "cancelled",
        "crashed",
        "error",
        "end",
        "metadata",
    }
)
#: LangGraph's stream modes a LangGraph graph is run with (each chunk one event).
LANGGRAPH_MODES = ("values", "updates", "messages", "custom", "debug")
#: What a LangGraph graph streams when the request names no modes.
LANGGRAPH_DEFAULT = ("updates", "custom")

#: What an event's name may be (its ``event:`` line holds it as it is).
NAME_PATTERN = r"^[A-Za-z0-9_.:|-]{1,64}$"
_NAME = re.compile(NAME_PATTERN)


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One event of a job's log; ``data`` is its JSON text."""

    id: int
    attempt: int
    event: str
    data: bytes


def check_event_name(name: Any, *, what: str = "event") -> str:
    """``name`` if a graph may emit events by it, else ValueError saying why: 1 to 64 of
    letters, digits and ``_ . : | -`` (an SSE event line holds it as it is), not one of
    the names the engine's own events use (a stream mode may name one: it keeps nothing)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"{what} name {name!r} must be 1 to 64 letters, digits or '_.:|-'")
    if name in RESERVED_NAMES:
        raise ValueError(f"{what} name {name!r} is reserved for the job's own events")
    return name


def parse_stream_mode(value: Any) -> tuple[str, ...] | None:
    """A request's ``streamMode`` (a name, or a list of names) as a tuple; None when absent.
    ``[]`` turns the graph's events off for the job. ValueError names what is wrong."""
    if value is None:
        return None
    names: Sequence[Any] = [value] if isinstance(value, str) else value
    if not isinstance(names, list):
        raise ValueError("streamMode must be a name or a list of names")
    modes: list[str] = []
    for name in names:
        check_event_name(name, what="stream mode")
        if name not in modes:
            modes.append(name)
    return tuple(modes)
