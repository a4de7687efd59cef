"""Benchmark graph for the stream scenarios: emits events and times its own ``emit`` calls.

Input (every key optional):

- ``events``: how many events to emit (default 1,000);
- ``bytes``: the size of each event's JSON text, roughly (default 100): ``{"i": N, "t": T,
  "pad": "xx..."}``, ``t`` the wall-clock time (``time.time()``) it was emitted, so a client
  on the same machine can tell how long it took to reach it;
- ``rate``: events per second at most (default 0: as fast as ``emit`` returns); the graph
  sleeps whenever it is more than ``PACE`` s ahead of that pace, so events go in small
  bursts;
- ``gate``: a path; after its events the graph holds until that file exists (at most an
  hour), so the harness can keep its job running while it opens streams on it.

Its result says what ``emit`` cost in this worker: the time spent inside the calls
(``perf_counter`` around each one, so building the event is not counted), as a mean and a
median per event and the slowest call, in µs. A call waits when the server does not keep
up (the event socket is full), so the mean holds those waits and the median does not.
"""

import json
import os
import statistics
import time

from graphnursery import emit

DEFAULT_EVENTS = 1000
DEFAULT_BYTES = 100
LIMIT_SECONDS = 3600.0
GATE_POLL = 0.02
#: How far ahead of its ``rate`` the graph may get before it sleeps (seconds).
PACE = 0.001


def _pad(size: int) -> str:
    # The JSON of an event without padding, at a typical index and time.
    bare = len(json.dumps({"i": 999, "t": time.time(), "pad": ""}, separators=(",", ":")))
    return "x" * max(size - bare, 0)


def graph(input: dict[str, object]) -> dict[str, object]:
    settings = input if isinstance(input, dict) else {}
    count = int(settings.get("events", DEFAULT_EVENTS))  # type: ignore[call-overload]
    pad = _pad(int(settings.get("bytes", DEFAULT_BYTES)))  # type: ignore[call-overload]
    rate = float(settings.get("rate", 0))  # type: ignore[arg-type]
    clock = time.perf_counter
    calls: list[float] = []
    began = clock()
    for i in range(count):
        if rate:
            ahead = began + i / rate - clock()
            if ahead > PACE:
                time.sleep(ahead)
        data = {"i": i, "t": time.time(), "pad": pad}
        started = clock()
        emit(data)
        calls.append(clock() - started)
    gate = settings.get("gate")
    if gate:
        deadline = time.monotonic() + LIMIT_SECONDS
        while not os.path.exists(str(gate)) and time.monotonic() < deadline:
            time.sleep(GATE_POLL)
    spent = sum(calls)
    return {
        "events": count,
        "emit_seconds": spent,
        "emit_us_mean": spent * 1e6 / count if count else None,
        "emit_us_p50": statistics.median(calls) * 1e6 if calls else None,
        "emit_us_max": max(calls) * 1e6 if calls else None,
    }
