"""The stream scenarios (issue 16): jobs streamed end to end (here), and what idle streams
cost (``idle_streams.py``).

Both serve ``benchmarks/graphs/emitter.py`` and read the streams with a real SSE parser
(httpx + httpx-sse), as a client of the API would:

- :func:`run_stream`: C closed-loop clients, each ``POST /jobs?stream=true`` (or the
  LangGraph API's ``POST /runs/stream``) and reads the job's stream to its end; every graph
  event carries the time it was emitted, so the client measures emit-to-client latency per
  event;
- ``idle_streams.run_idle_streams``: one job held running on a gate file, N streams opened
  on it (``GET /jobs/{id}/events``), the server's RSS before and after; then the gate opens
  and every stream must get the job's end.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio
from httpx_sse import SSEError, aconnect_sse

from .client import dumps, loads
from .report import Progress, percentile
from .scenarios import TERMINAL, Measured, Tally, _closed_loop, _own_cpu, lg_run_body
from .server import cpu_seconds, memory_kib, own_cpu_seconds, tree_memory_kib

#: The name the emitter graph's events have (``emit``'s default; LangGraph's mode for them).
GRAPH_EVENT = "custom"


@dataclass
class StreamTally(Tally):
    """A stream run: the job outcomes (``Tally``) and what arrived on the streams."""

    events: int = 0  # graph events received
    expected: int = 0  # graph events the completed jobs emitted (their results say)
    misordered: int = 0  # graph events that were not the next one of their job
    dropped: int = 0  # the jobs' droppedEvents (past max_job_events)
    event_latencies: list[float] = field(default_factory=list)  # s, emitted to received
    first_event: list[float] = field(default_factory=list)  # s, submit to first graph event
    spans: list[float] = field(default_factory=list)  # s, first to last graph event of a job
    last_event: list[float] = field(default_factory=list)  # s, submit to last graph event
    emit_seconds: float = 0.0  # time the graphs spent in emit calls (their results)
    emit_calls: int = 0
    emit_p50s: list[float] = field(default_factory=list)  # µs, each job's median call
    emit_max_us: float = 0.0


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def _client(url: str, connections: int) -> httpx.AsyncClient:
    # No read timeout: a stream is quiet while its job is; the harness's deadline bounds it.
    return httpx.AsyncClient(
        base_url=url,
        timeout=httpx.Timeout(None, connect=60),
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
    )


async def _retry_after(response: httpx.Response) -> None:
    try:
        delay = float(response.headers.get("retry-after", "0.05"))
    except ValueError:
        delay = 0.05
    await trio.sleep(min(max(delay, 0.01), 1.0))


async def stream_job(
    client: httpx.AsyncClient,
    body: bytes,
    tally: StreamTally,
    deadline: float,
    langgraph: bool = False,
) -> str:
    """``POST /jobs?stream=true`` (``langgraph``: ``POST /runs/stream``), its stream read to
    the end; returns the job's terminal status, 'lost' (the stream ended without it, or
    ``deadline`` s passed) or 'error'."""
    if langgraph:
        path, read = "/runs/stream", _read_lg_stream
    else:
        path, read = "/jobs?stream=true", _read_stream
    submitted = time.perf_counter()
    headers = {"Content-Type": "application/json"}
    with trio.move_on_after(deadline):
        while True:
            try:
                async with aconnect_sse(
                    client, "POST", path, content=body, headers=headers
                ) as source:
                    response = source.response
                    tally.requests += 1
                    if response.status_code == 429:
                        tally.rejected += 1
                        await response.aread()
                        await _retry_after(response)
                        continue
                    if response.status_code != 200:
                        await response.aread()
                        return "error"
                    return await read(source, tally, submitted)
            except (httpx.HTTPError, SSEError):  # the server broke the stream off
                return "error"
    return "lost"


@dataclass
class _JobEvents:
    """One job's graph events as they arrive: their latency and order, the first and last."""

    tally: StreamTally
    submitted: float  # perf_counter
    received: int = 0
    first: float = 0.0
    last: float = 0.0

    def see(self, data: dict[str, Any], now: float) -> None:
        """An emitter event (``{"i", "t", "pad"}``) received at wall-clock time ``now``."""
        self.tally.event_latencies.append(now - data["t"])
        self.last = time.perf_counter()
        if not self.received:
            self.first = self.last
        if data["i"] != self.received:
            self.tally.misordered += 1
        self.received += 1

    def close(self) -> None:
        tally = self.tally
        tally.events += self.received
        if self.received:
            tally.first_event.append(self.first - self.submitted)
            tally.last_event.append(self.last - self.submitted)
            tally.spans.append(self.last - self.first)


async def _read_stream(source: Any, tally: StreamTally, submitted: float) -> str:
    """graphnursery's stream: the job, its events (``{attempt, data}``), its end."""
    job = _JobEvents(tally, submitted)
    end: dict[str, Any] | None = None
    async for sse in source.aiter_sse():
        now = time.time()
        if sse.event == GRAPH_EVENT:
            job.see(loads(sse.data)["data"], now)
        elif sse.event in TERMINAL:
            if end is not None:
                return "error"  # a second end
            end = loads(sse.data)
        elif end is not None:
            return "error"  # an event after the end
    job.close()
    if end is None:
        return "lost"
    tally.dropped += int(end.get("droppedEvents") or 0)
    result = end.get("result")
    if end["status"] == "completed" and isinstance(result, dict):
        tally.expected += int(result["events"])
        tally.emit_seconds += float(result["emit_seconds"])
        tally.emit_calls += int(result["events"])
        if result.get("emit_us_p50") is not None:
            tally.emit_p50s.append(float(result["emit_us_p50"]))
            tally.emit_max_us = max(tally.emit_max_us, float(result["emit_us_max"]))
    return str(end["status"])


async def _read_lg_stream(source: Any, tally: StreamTally, submitted: float) -> str:
    """LangGraph's stream (``POST /runs/stream``): ``metadata`` first, each graph event as it
    was emitted under its mode's name, ``error`` if the run failed. A completed run's stream
    just ends, so one cut short counts as completed: its missing events tell."""
    job = _JobEvents(tally, submitted)
    outcome: str | None = None  # until the metadata event
    async for sse in source.aiter_sse():
        now = time.time()
        if outcome is None:
            if sse.event != "metadata":
                return "error"
            outcome = "completed"
        elif outcome != "completed":
            return "error"  # an event after the error
        elif sse.event == GRAPH_EVENT:
            job.see(loads(sse.data), now)
        elif sse.event == "error":
            outcome = "failed"
    job.close()
    return outcome or "lost"


async def run_stream(
    url: str,
    concurrency: int,
    jobs: int,
    events: int,
    event_bytes: int,
    server_pid: int | None,
    progress: Progress | None,
    job_deadline: float = 120.0,
    emit_rate: float = 0.0,
    assistant: str | None = None,
) -> Measured:
    """C clients, each streaming jobs of ``events`` events back to back (each job emitting
    ``emit_rate`` events/s at most; 0: as fast as it can); C warm-up jobs (one per
    connection) first, unmeasured. With ``assistant`` (the emitter graph's name) the runs
    go through the LangGraph API's ``POST /runs/stream`` (``stream_mode`` ``custom``): its
    stream holds no result, so the emit figures are None and each completed run is
    expected to have sent ``events`` events."""
    job_input: dict[str, Any] = {"events": events, "bytes": event_bytes}
    if emit_rate:
        job_input["rate"] = emit_rate
    langgraph = assistant is not None
    if assistant is None:
        body = dumps({"input": job_input})
    else:
        body = lg_run_body(assistant, job_input, stream_mode=[GRAPH_EVENT])
    tally = StreamTally()
    async with _client(url, concurrency) as client:

        async def one_job(slot: int) -> None:
            started = time.perf_counter()
            outcome = await stream_job(client, body, tally, job_deadline, langgraph)
            tally.record(outcome, started)

        await _closed_loop(concurrency, concurrency, one_job, None)
        tally = StreamTally()
        cpu_before = cpu_seconds(server_pid) if server_pid else None
        main_before = own_cpu_seconds(server_pid) if server_pid else None
        client_before = _own_cpu()
        elapsed = await _closed_loop(concurrency, jobs, one_job, progress)
        client_cpu = _own_cpu() - client_before
    if langgraph:
        tally.expected = tally.completed * events

    latencies = sorted(tally.event_latencies)
    received = max(tally.events, 1)
    measured = Measured(tally, elapsed)
    extra = measured.extra
    extra["events_per_job"] = events
    extra["event_bytes"] = event_bytes
    extra["emit_rate"] = emit_rate or None
    extra["events_received"] = tally.events
    extra["events_expected"] = tally.expected
    extra["missing_events"] = max(jobs * events - tally.events, 0)
    extra["misordered_events"] = tally.misordered
    extra["dropped_events"] = tally.dropped
    extra["events_per_s"] = round(tally.events / elapsed, 1) if elapsed else None
    for name, fraction in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99)):
        extra[f"event_{name}_ms"] = _ms(percentile(latencies, fraction))
    extra["event_max_ms"] = _ms(latencies[-1] if latencies else None)
    extra["first_event_p50_ms"] = _ms(percentile(sorted(tally.first_event), 0.50))
    extra["stream_span_p50_ms"] = _ms(percentile(sorted(tally.spans), 0.50))
    extra["last_event_p50_ms"] = _ms(percentile(sorted(tally.last_event), 0.50))
    extra["emit_us_per_event"] = (
        round(tally.emit_seconds * 1e6 / tally.emit_calls, 2) if tally.emit_calls else None
    )
    extra["emit_us_p50"] = round(statistics.median(tally.emit_p50s), 2) if tally.emit_p50s else None
    extra["emit_us_max"] = round(tally.emit_max_us, 1) if tally.emit_p50s else None
    extra["client_cpu_us_per_event"] = round(client_cpu * 1e6 / received, 2)
    extra["client_cpu_ms_per_job"] = round(client_cpu * 1000 / max(jobs, 1), 3)
    if server_pid:
        assert cpu_before is not None and main_before is not None
        measured.cpu_seconds = cpu_seconds(server_pid) - cpu_before
        main_cpu = own_cpu_seconds(server_pid) - main_before
        extra["cpu_us_per_event"] = round(measured.cpu_seconds * 1e6 / received, 2)
        extra["main_cpu_us_per_event"] = round(main_cpu * 1e6 / received, 2)
        measured.peak_rss_kib = memory_kib(server_pid, "VmHWM")
        measured.workers_peak_rss_kib = tree_memory_kib(server_pid, "VmHWM")
    return measured
