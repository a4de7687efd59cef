"""The idle-streams scenario (issue 16): what open streams cost the server.

One job held running on a gate file, N streams opened on it (``GET /jobs/{id}/events``),
the server's RSS and open files before and after; then the gate opens and every stream
must get the job's end.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

import httpx
import trio
from httpx_sse import SSEError, aconnect_sse

from .client import Connection, dumps, loads, split_target
from .report import Progress
from .scenarios import TERMINAL, Measured, Tally, _own_cpu, _submit
from .server import cpu_seconds, memory_kib, open_fds, tree_memory_kib
from .streams import GRAPH_EVENT, _client

#: Streams being opened at once in the idle-streams scenario (hypercorn's listen backlog
#: is 100: a burst of 1,000 connects would wait for SYN retries instead).
OPENING = 64
#: Streams per httpx client in the idle-streams scenario: httpcore's pool scans its
#: connections on every request and response close, so at their end 1,000 streams in one
#: pool cost the harness ~6 ms of CPU each here, in pools of this size ~0.7 ms.
POOL = 50


async def _probe(client: httpx.AsyncClient, path: str) -> str | None:
    """Read ``path``'s stream to its first graph event, then close it; None if it did,
    else what went wrong."""
    try:
        async with aconnect_sse(client, "GET", path) as source:
            if source.response.status_code != 200:
                body = (await source.response.aread())[:300].decode(errors="replace")
                return f"GET {path} answered {source.response.status_code}: {body}"
            async for sse in source.aiter_sse():
                if sse.event == GRAPH_EVENT:
                    return None
            return f"GET {path}: the stream ended before the job's first event"
    except (httpx.HTTPError, SSEError) as error:
        return f"GET {path}: {error!r}"


async def run_idle_streams(
    url: str,
    server_pid: int,
    streams: int,
    gate: Path,
    progress: Progress,
    job_deadline: float = 120.0,
) -> Measured:
    """Hold one job running, open ``streams`` streams on it, read the server's RSS before
    and after; release the job and count the streams that got its end."""
    host, port = split_target(url)
    tally = Tally()
    gate_file = trio.Path(gate)
    await gate_file.unlink(missing_ok=True)
    control = Connection(host, port)
    body = dumps({"input": {"events": 1, "gate": str(gate)}, "timeoutSeconds": 3600})
    response = await _submit(control, "/jobs", body, tally)
    await control.aclose()
    if response.status != 202:
        raise RuntimeError(f"POST /jobs answered {response.status}: {response.body[:200]!r}")
    events_path = f"/jobs/{response.json()['jobId']}/events"

    opened = failed = 0
    statuses: list[str] = []
    all_open = trio.Event()
    limiter = trio.CapacityLimiter(OPENING)

    def settled() -> None:
        if opened + failed == streams:
            all_open.set()

    async def follow(client: httpx.AsyncClient) -> None:
        """One stream: open (its first graph event read), then read to the job's end."""
        nonlocal opened, failed
        await limiter.acquire()
        opening = True
        try:
            async with aconnect_sse(client, "GET", events_path) as source:
                if source.response.status_code != 200:
                    tally.errors += 1
                    return
                async for sse in source.aiter_sse():
                    if opening and sse.event == GRAPH_EVENT:
                        opening = False
                        limiter.release()
                        opened += 1
                        progress.advance()
                        settled()
                    elif sse.event in TERMINAL:
                        statuses.append(str(loads(sse.data)["status"]))
        except (httpx.HTTPError, SSEError):
            tally.errors += 1
        finally:
            if opening:
                limiter.release()
                failed += 1
                settled()

    clients = [_client(url, POOL) for _ in range(-(-streams // POOL))]
    try:
        async with contextlib.AsyncExitStack() as stack:
            for pool in clients:
                await stack.enter_async_context(pool)
            # One stream first, closed again: the job runs, its event is in the log, and the
            # server has run a stream's code once (imports and caches are in the baseline).
            refused = await _probe(clients[0], events_path)
            if refused:
                print(f"idle-streams: {refused}", file=sys.stderr)
                tally.errors = streams
                return Measured(tally, 0.0, extra={"streams": streams, "refused": refused})
            rss_before = memory_kib(server_pid, "VmRSS")
            fds_before = open_fds(server_pid)
            cpu_before = cpu_seconds(server_pid)
            client_before = _own_cpu()
            began = progress.started = time.perf_counter()
            with trio.move_on_after(job_deadline) as overall:
                async with trio.open_nursery() as nursery:
                    for n in range(streams):
                        nursery.start_soon(follow, clients[n // POOL])
                    await all_open.wait()
                    open_elapsed = time.perf_counter() - began
                    rss_open = memory_kib(server_pid, "VmRSS")
                    fds_open = open_fds(server_pid)
                    cpu_open = cpu_seconds(server_pid)
                    client_open = _own_cpu()
                    await gate_file.touch()
                    released = time.perf_counter()
            ended = time.perf_counter()
            cpu_ended, client_ended = cpu_seconds(server_pid), _own_cpu()
    finally:
        # Never leave the job holding a worker, whatever failed (the caller removes the file).
        await gate_file.touch()
    if overall.cancelled_caught and not all_open.is_set():
        raise RuntimeError(f"{opened} of {streams} streams opened in {job_deadline} s")

    tally.completed = statuses.count("completed")
    tally.failed = len(statuses) - tally.completed
    tally.lost = streams - len(statuses) - tally.errors
    delta = rss_open - rss_before

    def per_stream(seconds: float) -> float:
        return round(seconds * 1000 / streams, 3)

    return Measured(
        tally,
        ended - began,
        None,
        memory_kib(server_pid, "VmHWM"),
        tree_memory_kib(server_pid, "VmHWM"),
        extra={
            "streams": streams,
            "streams_opened": opened,
            "streams_ended": len(statuses),
            "open_seconds": round(open_elapsed, 3),
            "end_seconds": round(ended - released, 3),
            "rss_before_mib": round(rss_before / 1024, 1),
            "rss_open_mib": round(rss_open / 1024, 1),
            "rss_streams_mb": round(delta * 1024 / 1e6, 2),
            "rss_per_stream_kib": round(delta / streams, 1),
            "fds_before": fds_before,
            "fds_open": fds_open,
            # Opening and ending the streams: the server (its workers too) and this client.
            "cpu_ms_per_stream_open": per_stream(cpu_open - cpu_before),
            "cpu_ms_per_stream_end": per_stream(cpu_ended - cpu_open),
            "client_cpu_ms_per_stream_open": per_stream(client_open - client_before),
            "client_cpu_ms_per_stream_end": per_stream(client_ended - client_open),
        },
    )
