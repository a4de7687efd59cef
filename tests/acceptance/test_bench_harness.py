"""The benchmark harness against a real server: what its modes count."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import trio
from benchmarks.client import Connection, split_target
from benchmarks.scenarios import BATCH_SIZE, Tally, http_batch, lg_run_body, lg_wait_job

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


async def test_lg_wait_counts_a_run_that_failed_as_failed() -> None:
    async with running_server("tests/graphs/toolbox.py") as client:
        host, port = split_target(str(client.base_url))
        conn = Connection(host, port)
        tally = Tally()
        for job_input in ({"n": 1}, {"raise": "no"}, {"n": 2}):
            outcome = await lg_wait_job(conn, lg_run_body("toolbox", job_input), tally)
            tally.record(outcome, time.perf_counter())
        await conn.aclose()
    assert (tally.completed, tally.failed, tally.requests) == (2, 1, 3)
    assert tally.errors == tally.lost == 0


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


async def test_tiny_lg_wait_runs_complete_one_request_each(tmp_path: Path) -> None:
    options = ["--scenario", "noop", "--mode", "lg-wait", "--concurrency", "1,2", "--jobs", "6"]
    document = await _harness(tmp_path, *options)
    runs = document["runs"]
    assert [(r["mode"], r["api"], r["concurrency"]) for r in runs] == [
        ("lg-wait", "langgraph", 1),
        ("lg-wait", "langgraph", 2),
    ]
    for run in runs:
        assert run["completed"] == run["jobs"] == 6
        assert run["failed"] == run["lost"] == run["errors"] == run["rejected"] == 0
        assert run["requests_per_job"] == 1.0
        assert 0 < run["p50_ms"] <= run["p95_ms"] <= run["p99_ms"]


async def test_tiny_lg_stream_runs_receive_every_event_beside_the_native_stream(
    tmp_path: Path,
) -> None:
    options = ["--scenario", "stream", "--mode", "stream,lg-stream", "--concurrency", "2"]
    document = await _harness(tmp_path, *options, "--jobs", "2", "--events", "50")
    native, langgraph = document["runs"]
    assert (native["mode"], native["api"]) == ("stream", "native")
    assert (langgraph["mode"], langgraph["api"]) == ("lg-stream", "langgraph")
    for run in (native, langgraph):
        assert run["completed"] == run["jobs"] == 2
        assert run["failed"] == run["lost"] == run["errors"] == 0
        assert run["events_received"] == run["events_expected"] == 2 * 50
        assert run["missing_events"] == run["misordered_events"] == 0
        assert 0 <= run["first_event_p50_ms"] <= run["last_event_p50_ms"]
    # LangGraph's stream holds no result: what emit cost the graph is not known.
    assert langgraph["emit_us_per_event"] is None and native["emit_us_per_event"] > 0
