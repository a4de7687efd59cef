"""The floor under one request per job: hypercorn alone, with an ASGI app that does nothing.

``python -m benchmarks.http_floor --concurrency 64 --requests 20000 [--repeat 3]``

Starts hypercorn (Trio worker, as graphnursery runs) with :func:`app`, which reads the request
body and answers a fixed JSON body the size of a finished no-op job's answer with the same
headers graphnursery sends, then drives it with the harness's own raw client and closed loop
(``POST /jobs?wait=30``, as wait mode does). It reports requests/s and the server's CPU per
request: what HTTP costs before any job work, so what no server on hypercorn can beat with one
request per job. Results go to ``benchmarks/results/<time>-http-floor.json``.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import trio

from . import report
from .client import Connection
from .scenarios import _closed_loop, _own_cpu
from .server import cpu_seconds

# The answer to a finished no-op job (POST /jobs?wait=30 on examples/echo.py), byte for byte
# in size and shape.
BODY = (
    b'{"jobId":"3f1c0e0c6f9e4d4c8f5b2a7d9e1f3a5b","status":"completed","attempts":1,'
    b'"createdAt":"2026-11-23T04:00:00.000Z","startedAt":"2026-11-23T04:00:00.001Z",'
    b'"completedAt":"2026-11-23T04:00:00.001Z","durationMs":0,"result":{"echo":{}}}'
)
HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(BODY)).encode()),
    (b"x-request-id", b"0123456789abcdef0123456789abcdef"),
    (b"location", b"/jobs/3f1c0e0c6f9e4d4c8f5b2a7d9e1f3a5b"),
]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Read the body, answer BODY. Lifespan is acknowledged."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_hypercorn(port: int) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "hypercorn",
        "--worker-class",
        "trio",
        "--bind",
        f"127.0.0.1:{port}",
        "benchmarks.http_floor:app",
    ]
    root = Path(__file__).resolve().parent.parent
    process = subprocess.Popen(command, cwd=root, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("hypercorn did not start")


async def _measure(port: int, pid: int, concurrency: int, requests: int) -> dict[str, Any]:
    connections = [Connection("127.0.0.1", port) for _ in range(concurrency)]

    async def one(slot: int) -> None:
        response = await connections[slot].request("POST", "/jobs?wait=30", b'{"input":{}}')
        if response.status != 200:
            raise RuntimeError(f"unexpected status {response.status}")

    await _closed_loop(concurrency, concurrency, one, None)  # open the connections
    cpu_before, client_before = cpu_seconds(pid), _own_cpu()
    elapsed = await _closed_loop(concurrency, requests, one, None)
    server_cpu, client_cpu = cpu_seconds(pid) - cpu_before, _own_cpu() - client_before
    for conn in connections:
        await conn.aclose()
    return {
        "mode": "http-floor",
        "concurrency": concurrency,
        "requests": requests,
        "requests_per_s": round(requests / elapsed, 1),
        "server_cpu_ms_per_request": round(server_cpu * 1000 / requests, 3),
        "client_cpu_ms_per_request": round(client_cpu * 1000 / requests, 3),
        "loadavg_1m": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.http_floor", description=__doc__)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--results-dir", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    root = Path(__file__).resolve().parent.parent
    port = _free_port()
    server = _start_hypercorn(port)
    runs = []
    try:
        for _ in range(args.repeat):
            run = trio.run(_measure, port, server.pid, args.concurrency, args.requests)
            print(
                f"hypercorn alone, c={run['concurrency']}: {run['requests_per_s']} requests/s, "
                f"server {run['server_cpu_ms_per_request']} ms CPU per request "
                f"(client {run['client_cpu_ms_per_request']} ms)"
            )
            runs.append(run)
    finally:
        server.terminate()
        server.wait(10)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    document = {"settings": vars(args) | {"results_dir": str(args.results_dir)}, "runs": runs}
    document["machine"] = report.machine(root)
    path = report.write_results(args.results_dir, f"{stamp}-http-floor", document)
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
