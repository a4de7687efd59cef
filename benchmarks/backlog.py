"""The backlog scenario: every worker held on a gate job, N no-op jobs submitted, then
released and drained (server RSS idle / queued / drained, submit and drain rates)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import trio

from .client import Connection, dumps, split_target
from .report import Progress
from .scenarios import NATIVE_BODY, Measured, Tally, _closed_loop, _submit
from .server import cpu_seconds, memory_kib, tree_memory_kib


async def _stats(conn: Connection) -> dict[str, Any]:
    response = await conn.request("GET", "/stats")
    if response.status != 200:
        raise RuntimeError(f"GET /stats answered {response.status}: {response.body[:200]!r}")
    stats: dict[str, Any] = response.json()
    return stats


async def run_backlog(
    url: str,
    server_pid: int,
    workers: int,
    concurrency: int,
    jobs: int,
    gate: Path,
    progress: Progress,
    drain_timeout: float = 900.0,
) -> Measured:
    """Hold every worker on a gate job, submit ``jobs`` no-op jobs, then release and drain."""
    host, port = split_target(url)
    control = Connection(host, port)
    tally = Tally()
    gate_file = trio.Path(gate)
    await gate_file.unlink(missing_ok=True)
    body = dumps({"input": {"gate": str(gate)}, "timeoutSeconds": 3600})
    for _ in range(workers):
        await _submit(control, "/jobs", body, tally)
    while True:  # until every worker holds a gate job
        if (await _stats(control))["running"] >= workers:
            break
        await trio.sleep(0.05)
    baseline = (await _stats(control))["completed"]
    rss_idle = memory_kib(server_pid, "VmRSS")
    cpu_before = cpu_seconds(server_pid)

    connections = [Connection(host, port) for _ in range(concurrency)]
    accepted = 0

    async def submit_one(slot: int) -> None:
        nonlocal accepted
        response = await _submit(connections[slot], "/jobs", NATIVE_BODY, tally)
        if response.status == 202:
            accepted += 1
        else:
            tally.errors += 1

    submit_elapsed = await _closed_loop(concurrency, jobs, submit_one, progress)
    rss_queued = memory_kib(server_pid, "VmRSS")
    for conn in connections:
        await conn.aclose()

    await gate_file.touch()
    drain_started = time.perf_counter()
    target = baseline + workers + accepted
    completed = baseline
    with trio.move_on_after(drain_timeout):
        while completed < target:
            await trio.sleep(0.5)
            completed = (await _stats(control))["completed"]
    drain_elapsed = time.perf_counter() - drain_started
    await control.aclose()
    await gate_file.unlink(missing_ok=True)

    tally.completed = completed - baseline - workers
    tally.lost = max(accepted - tally.completed, 0)
    return Measured(
        tally,
        submit_elapsed + drain_elapsed,
        cpu_seconds(server_pid) - cpu_before,
        memory_kib(server_pid, "VmHWM"),
        tree_memory_kib(server_pid, "VmHWM"),
        extra={
            "accepted": accepted,
            "submit_seconds": round(submit_elapsed, 3),
            "submit_per_second": round(accepted / submit_elapsed, 1),
            "drain_seconds": round(drain_elapsed, 3),
            "drain_per_second": round(tally.completed / drain_elapsed, 1),
            "rss_idle_mib": round(rss_idle / 1024, 1),
            "rss_queued_mib": round(rss_queued / 1024, 1),
            "rss_drained_mib": round(memory_kib(server_pid, "VmRSS") / 1024, 1),
        },
    )
