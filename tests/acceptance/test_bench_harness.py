"""The benchmark harness against a real server: what its modes count."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import trio
from benchmarks.client import Connection, split_target
from benchmarks.scenarios import BATCH_SIZE, Tally, http_batch

from support import running_server


async def test_batch_mode_sends_rejected_jobs_again() -> None:
    # The server's queue holds fewer jobs than one batch: part of the batch is turned away
    # and must be sent again after Retry-After, counted as rejected, not as errors.
    async with running_server("examples/echo.py", queue_size=4) as client:
        host, port = split_target(str(client.base_url))
        conn = Connection(host, port)
        tally = Tally()
        await http_batch(conn, tally, time.perf_counter())
        await conn.aclose()
    assert tally.completed == BATCH_SIZE > 4
    assert tally.rejected > 0
    assert tally.errors == tally.lost == tally.failed == 0


async def _harness(tmp_path: Path, *options: str) -> dict[str, Any]:
    """``python -m benchmarks OPTIONS`` (it starts its own server); its results file."""
    results = tmp_path / "results"
    command = [sys.executable, "-m", "benchmarks", *options, "--no-chart"]
    done = await trio.run_process(
        [*command, "--results-dir", str(results)], capture_stdout=True, capture_stderr=True
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    [path] = results.glob("*.json")
    document: dict[str, Any] = json.loads(path.read_text())
    return document


async def test_a_tiny_stream_run_receives_every_event_and_measures_it(tmp_path: Path) -> None:
    options = ["--scenario", "stream", "--concurrency", "2", "--jobs", "2", "--events", "50"]
    document = await _harness(tmp_path, *options)
    assert document["settings"]["events_per_job"] == 50
    [run] = document["runs"]
    assert (run["scenario"], run["mode"], run["concurrency"], run["store"]) == (
        "stream",
        "stream",
        2,
        "memory",
    )
    assert run["completed"] == run["jobs"] == 2
    assert run["failed"] == run["lost"] == run["errors"] == 0
    assert run["events_received"] == run["events_expected"] == 2 * 50
    assert run["missing_events"] == run["misordered_events"] == run["dropped_events"] == 0
    assert run["events_per_s"] > 0
    assert 0 <= run["event_p50_ms"] <= run["event_p95_ms"] <= run["event_p99_ms"]
    assert run["emit_us_per_event"] > 0 and run["emit_us_p50"] > 0
    for figure in ("cpu_us_per_event", "main_cpu_us_per_event", "client_cpu_us_per_event"):
        assert run[figure] >= 0, figure
    assert run["peak_rss_mib"] > 0


async def test_a_tiny_idle_streams_run_opens_every_stream_and_ends_it(tmp_path: Path) -> None:
    document = await _harness(tmp_path, "--scenario", "idle-streams", "--streams", "20")
    [run] = document["runs"]
    assert (run["scenario"], run["streams"], run["concurrency"]) == ("idle-streams", 20, 20)
    assert run["streams_opened"] == run["streams_ended"] == run["completed"] == 20
    assert run["failed"] == run["lost"] == run["errors"] == 0
    assert run["rss_open_mib"] >= run["rss_before_mib"] > 0
    # The same difference, in MB for all and in KiB per stream.
    assert abs(run["rss_per_stream_kib"] * 20 * 1024 / 1e6 - run["rss_streams_mb"]) < 0.01
    # Each stream is a connection the server holds open (the probe stream's, closed just
    # before, may still be counted in the first figure).
    assert run["fds_open"] >= run["fds_before"] - 1 + 20
