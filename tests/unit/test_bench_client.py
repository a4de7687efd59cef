"""The benchmark harness's raw HTTP/1.1 client and its figures (no server processes)."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio
from benchmarks.__main__ import (
    Compared,
    build_parser,
    compared_servers,
    graphnursery_servers,
    main,
    run_plan,
)
from benchmarks.client import Connection, HttpError
from benchmarks.report import Progress, comparison, comparison_table, figures, write_results
from benchmarks.scenarios import POLL_INTERVAL, Measured, Tally, http_job
from benchmarks.worker_gaps import gaps_ms

Handler = Callable[[trio.SocketStream], Awaitable[None]]


async def _serve(nursery: trio.Nursery, handler: Handler) -> int:
    listeners = await nursery.start(trio.serve_tcp, handler, 0)
    port: int = listeners[0].socket.getsockname()[1]
    return port


async def _read_request(stream: trio.SocketStream, buffer: bytearray) -> bytes:
    while b"\r\n\r\n" not in buffer:
        chunk = await stream.receive_some(4096)
        if not chunk:
            raise trio.EndOfChannel
        buffer += chunk
    end = buffer.index(b"\r\n\r\n") + 4
    head = bytes(buffer[:end])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    while len(buffer) < end + length:
        chunk = await stream.receive_some(4096)
        if not chunk:  # closed mid-body: fail, rather than read the closed stream forever
            raise trio.EndOfChannel
        buffer += chunk
    request = bytes(buffer[: end + length])
    del buffer[: end + length]
    return request


async def test_keep_alive_split_writes_and_pipelined_bytes() -> None:
    seen: list[bytes] = []

    async def handler(stream: trio.SocketStream) -> None:
        buffer = bytearray()
        for n in range(3):
            seen.append(await _read_request(stream, buffer))
            body = json.dumps({"n": n}).encode()
            answer = b"HTTP/1.1 202 Accepted\r\nContent-Length: %d\r\nX-A: b\r\n\r\n" % len(body)
            # Headers and body in separate, byte-by-byte-ish writes.
            for piece in (answer[:7], answer[7:], body[:3], body[3:]):
                await stream.send_all(piece)
                await trio.sleep(0.001)

    async with trio.open_nursery() as nursery:
        port = await _serve(nursery, handler)
        conn = Connection("127.0.0.1", port)
        for n in range(3):
            response = await conn.request("POST", "/jobs?wait=1", b'{"input":{}}')
            assert response.status == 202
            assert response.headers["x-a"] == "b"
            assert response.json() == {"n": n}
        assert conn.connects == 1
        await conn.aclose()
        nursery.cancel_scope.cancel()
    assert seen[0].startswith(b"POST /jobs?wait=1 HTTP/1.1\r\nHost: 127.0.0.1:")
    assert seen[0].endswith(b'Content-Length: 12\r\n\r\n{"input":{}}')


async def test_reconnects_after_connection_close() -> None:
    async def handler(stream: trio.SocketStream) -> None:
        await _read_request(stream, bytearray())
        await stream.send_all(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"
        )
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        port = await _serve(nursery, handler)
        conn = Connection("127.0.0.1", port)
        for _ in range(3):
            assert (await conn.request("GET", "/jobs/x")).status == 200
        assert conn.connects == 3
        await conn.aclose()
        nursery.cancel_scope.cancel()


async def test_reads_chunked_bodies_split_anywhere_and_keeps_the_connection() -> None:
    # A streamed answer (the LangGraph API's /runs/wait: newlines while the run goes on, then
    # its output), written a few bytes at a time, then a second answer on the same connection.
    answer = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"1\r\n\n\r\n"
        b'c;ext=1\r\n{"echo": 12}\r\n'
        b"0\r\nX-Trailer: t\r\n\r\n"
    )

    async def handler(stream: trio.SocketStream) -> None:
        buffer = bytearray()
        for _ in range(2):
            await _read_request(stream, buffer)
            for at in range(0, len(answer), 5):
                await stream.send_all(answer[at : at + 5])
                await trio.sleep(0.001)
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        port = await _serve(nursery, handler)
        conn = Connection("127.0.0.1", port)
        for _ in range(2):
            response = await conn.request("POST", "/runs/wait", b"{}")
            assert response.status == 200 and response.json() == {"echo": 12}
        assert conn.connects == 1
        await conn.aclose()
        nursery.cancel_scope.cancel()


async def test_rejects_bad_chunks_and_garbage() -> None:
    answers = iter(
        [
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{}\r\n0\r\n\r\n",
            b"SSH-2.0-OpenSSH\r\n\r\n",
        ]
    )

    async def handler(stream: trio.SocketStream) -> None:
        await _read_request(stream, bytearray())
        await stream.send_all(next(answers))
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        port = await _serve(nursery, handler)
        for _ in range(3):
            conn = Connection("127.0.0.1", port)
            with pytest.raises(HttpError):
                await conn.request("GET", "/")
            await conn.aclose()
        nursery.cancel_scope.cancel()


def test_figures_and_results_file(tmp_path: Path) -> None:
    tally = Tally(latencies=[i / 1000 for i in range(1, 101)], completed=100, rejected=2)
    run = figures(Measured(tally, elapsed=2.0, cpu_seconds=0.1, peak_rss_kib=2048), jobs=100)
    assert run["jobs_per_s"] == 50.0
    assert (run["p50_ms"], run["p95_ms"], run["p99_ms"]) == (50.0, 95.0, 99.0)
    assert run["cpu_ms_per_job"] == 1.0
    assert run["peak_rss_mib"] == 2.0
    assert (run["rejected"], run["lost"]) == (2, 0)
    path = write_results(tmp_path, "x", {"runs": [run]})
    assert json.loads(path.read_text())["runs"][0]["completed"] == 100
    with pytest.raises(RuntimeError):
        write_results(tmp_path, "empty", {"runs": []})


def test_progress_writes_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    progress = Progress("noop", 3)
    for _ in range(3):
        progress.advance()
    progress.close()
    err = capsys.readouterr().err
    assert "3/3" in err and err.endswith("\n")


def test_worker_gaps_are_per_process_from_one_job_end_to_the_next_start() -> None:
    results = [
        {"pid": 1, "started": 10.0, "ended": 10.1},
        {"pid": 2, "started": 10.0, "ended": 10.1},
        {"pid": 1, "started": 10.102, "ended": 10.202},
        {"pid": 2, "started": 10.105, "ended": 10.205},
        {"pid": 1, "started": 10.203, "ended": 10.303},
    ]
    assert [round(gap, 3) for gap in gaps_ms(results)] == [1.0, 2.0, 5.0]


async def test_seed_poll_mode_polls_every_20_ms_and_counts_requests() -> None:
    # A seed-API server: POST /execute answers 200 {jobId}; GET /jobs/{id} is "running" three
    # times, then "completed".
    seen: list[tuple[float, bytes]] = []

    async def handler(stream: trio.SocketStream) -> None:
        buffer = bytearray()
        for n in range(5):
            request = await _read_request(stream, buffer)
            seen.append((trio.current_time(), request.split(b"\r\n", 1)[0]))
            status = "queued" if n == 0 else "running" if n < 4 else "completed"
            body = json.dumps({"jobId": "j1", "status": status}).encode()
            await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
            await stream.send_all(body)

    async with trio.open_nursery() as nursery:
        port = await _serve(nursery, handler)
        conn, tally = Connection("127.0.0.1", port), Tally()
        outcome = await http_job(conn, "poll", "seed", tally, time.monotonic() + 10)
        await conn.aclose()
        nursery.cancel_scope.cancel()
    assert POLL_INTERVAL == 0.02
    assert outcome == "completed"
    assert [line for _, line in seen] == [b"POST /execute HTTP/1.1"] + [
        b"GET /jobs/j1 HTTP/1.1"
    ] * 4
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(seen)]
    assert min(gaps) >= POLL_INTERVAL * 0.95, gaps
    assert (tally.requests, tally.polls) == (5, 4)
    tally.completed = 1
    run = figures(Measured(tally, elapsed=1.0), jobs=1)
    assert (run["requests_per_job"], run["polls_per_job"]) == (5.0, 4.0)


def test_compare_options_labels_pids_and_alternating_plan() -> None:
    args = build_parser().parse_args(
        [
            "--api", "seed", "--mode", "poll,engine", "--concurrency", "16", "--repeat", "3",
            "--store", "memory,default",
            "--compare", "ts=http://127.0.0.1:3000,http://127.0.0.1:3001",
            "--compare", "py=http://127.0.0.1:3002",
            "--compare-pid", "py=7,42",
        ]
    )  # fmt: skip
    servers = compared_servers(args.compare, args.compare_pid)
    assert servers == [
        Compared("ts", "http://127.0.0.1:3000", 42),
        Compared("compare2", "http://127.0.0.1:3001", None),
        Compared("py", "http://127.0.0.1:3002", 7),
    ]
    ours = graphnursery_servers(args.store, None)
    assert ours == [("graphnursery[memory]", "memory"), ("graphnursery[default]", "default")]
    assert graphnursery_servers(["memory"], None) == [("graphnursery", "memory")]
    plan = run_plan(args.mode, args.concurrency, args.repeat, ours, servers[:1])
    order = [(mode, r, label) for mode, _, r, label, _, _ in plan]
    gm, gd = "graphnursery[memory]", "graphnursery[default]"
    assert order == [
        ("poll", 0, gm), ("poll", 0, gd), ("poll", 0, "ts"),
        ("poll", 1, "ts"), ("poll", 1, gd), ("poll", 1, gm),
        ("poll", 2, gm), ("poll", 2, gd), ("poll", 2, "ts"),
        ("engine", 0, "graphnursery"), ("engine", 1, "graphnursery"),
        ("engine", 2, "graphnursery"),
    ]  # fmt: skip
    assert [other for *_, other in plan].count(servers[0]) == 3

    with pytest.raises(ValueError, match="more pids"):
        compared_servers(args.compare[:1], [[(None, 1), (None, 2), (None, 3)]])
    with pytest.raises(ValueError, match="labelled 'nope'"):
        compared_servers(args.compare, [[("nope", 1)]])
    for bad in ("ts=ftp://x:1", "graphnursery=http://127.0.0.1:1", ""):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["--compare", bad])
    # The compared servers speak the seed API only: poll mode, --api seed.
    assert main(["--mode", "poll", "--compare", "http://127.0.0.1:1"]) == 2
    assert main(["--api", "seed", "--mode", "engine", "--compare", "http://127.0.0.1:1"]) == 2


def test_comparison_is_median_over_median_per_mode_and_concurrency() -> None:
    def run(server: str, c: int, rate: float, cpu: float | None) -> dict[str, object]:
        return {"server": server, "mode": "poll", "concurrency": c, "jobs_per_s": rate,
                "p50_ms": 1000 / rate, "p95_ms": None, "cpu_ms_per_job": cpu,
                "requests_per_job": 2.0}  # fmt: skip

    runs = [
        run("graphnursery", 16, 100.0, 2.0),
        run("ts", 16, 50.0, 4.0),
        run("graphnursery", 16, 300.0, 1.0),
        run("ts", 16, 80.0, None),
        run("graphnursery", 16, 200.0, 3.0),
        run("ts", 16, 20.0, 8.0),
        run("graphnursery", 64, 10.0, 1.0),  # nothing to compare with at c=64
        {"server": None, "mode": "direct", "concurrency": 16, "jobs_per_s": 1.0},
    ]
    (row,) = comparison(runs)
    assert (row["server"], row["compare"], row["concurrency"]) == ("graphnursery", "ts", 16)
    assert (row["runs"], row["compare_runs"]) == (3, 3)
    assert (row["jobs_per_s"], row["compare_jobs_per_s"], row["jobs_per_s_ratio"]) == (
        200.0,
        50.0,
        4.0,
    )
    assert (row["compare_cpu_ms_per_job"], row["cpu_ms_per_job_ratio"]) == (6.0, 0.333)
    assert row["p95_ms_ratio"] is None
    assert row["requests_per_job_ratio"] == 1.0
    text = comparison_table([row])
    assert "poll c=16  graphnursery / ts:" in text and "jobs/s 200.0 / 50.0 = 4.0" in text


def test_stream_scenarios_alternate_stores_and_refuse_the_seed_api() -> None:
    ours = graphnursery_servers(["memory", "default"], None)
    for scenario in ("stream", "idle-streams"):
        plan = run_plan([scenario], [8], 2, ours, [])
        assert [(label, store) for _, _, _, label, store, _ in plan] == [
            ("graphnursery[memory]", "memory"),
            ("graphnursery[default]", "default"),
            ("graphnursery[default]", "default"),
            ("graphnursery[memory]", "memory"),
        ]
        assert main(["--scenario", scenario, "--api", "seed", "--mode", "poll"]) == 2
    # The stream modes stream the emitter graph: only the stream scenario serves it.
    assert main(["--scenario", "noop", "--mode", "wait,lg-stream"]) == 2
