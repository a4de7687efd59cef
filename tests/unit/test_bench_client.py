"""The benchmark harness's raw HTTP/1.1 client and its figures (no server processes)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio
from benchmarks.client import Connection, HttpError
from benchmarks.report import Progress, figures, write_results
from benchmarks.scenarios import Measured, Tally
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


async def test_rejects_chunked_and_garbage() -> None:
    answers = iter(
        [
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
            b"SSH-2.0-OpenSSH\r\n\r\n",
        ]
    )

    async def handler(stream: trio.SocketStream) -> None:
        await _read_request(stream, bytearray())
        await stream.send_all(next(answers))
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        port = await _serve(nursery, handler)
        for _ in range(2):
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
