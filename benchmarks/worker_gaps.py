"""How long a worker process sits idle between two jobs, under load.

``python -m benchmarks.worker_gaps --mode wait --concurrency 16 --jobs 400``

Serves ``benchmarks/graphs/stamp.py`` (a 100 ms sleep that returns its pid and wall-clock start
and end), drives it with the harness's closed loop, then reads every job back from
``GET /jobs`` and prints, per worker process, the time from one job's end to the next one's
start: the part of a worker's cycle the server adds (dispatch, recording the result, the pipe
round trip). With workers always fed, jobs/s = workers / (job time + gap). Results go to
``benchmarks/results/<time>-worker-gaps.json``.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import trio

from . import report
from .client import Connection, split_target
from .scenarios import ROOT, Tally, _closed_loop, http_job
from .server import start_server

GRAPH = ROOT / "benchmarks" / "graphs" / "stamp.py"


async def _drive(url: str, mode: str, concurrency: int, jobs: int) -> float:
    host, port = split_target(url)
    connections = [Connection(host, port) for _ in range(concurrency)]
    tally = Tally()

    async def one(slot: int) -> None:
        outcome = await http_job(connections[slot], mode, "native", tally, time.monotonic() + 120)
        if outcome != "completed":
            raise RuntimeError(f"a job ended {outcome}")

    elapsed = await _closed_loop(concurrency, jobs, one, None)
    for conn in connections:
        await conn.aclose()
    return jobs / elapsed


async def _results(url: str) -> list[dict[str, Any]]:
    host, port = split_target(url)
    conn = Connection(host, port)
    found: list[dict[str, Any]] = []
    cursor = ""
    while True:
        path = "/jobs?status=completed&limit=1000" + (f"&cursor={cursor}" if cursor else "")
        page = (await conn.request("GET", path)).json()
        found += [job["result"] for job in page["jobs"]]
        cursor = page["nextCursor"]
        if not cursor:
            break
    await conn.aclose()
    return found


def gaps_ms(results: list[dict[str, Any]]) -> list[float]:
    """Idle time between consecutive jobs of each worker process, in ms."""
    by_worker: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for result in results:
        by_worker[int(result["pid"])].append((result["started"], result["ended"]))
    gaps: list[float] = []
    for runs in by_worker.values():
        runs.sort()
        gaps += [(nxt[0] - prev[1]) * 1000 for prev, nxt in itertools.pairwise(runs)]
    return sorted(gaps)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.worker_gaps", description=__doc__)
    parser.add_argument("--mode", choices=("wait", "poll"), default="wait")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--jobs", type=int, default=400)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--results-dir", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    server = start_server(str(GRAPH), args.workers, max(1000, args.concurrency))
    try:
        rate = trio.run(_drive, server.url, args.mode, args.concurrency, args.jobs)
        gaps = gaps_ms(trio.run(_results, server.url))
    finally:
        server.stop()
    run = {
        "mode": args.mode,
        "concurrency": args.concurrency,
        "jobs": args.jobs,
        "workers": args.workers,
        "jobs_per_s": round(rate, 2),
        "gap_ms_p50": round(statistics.median(gaps), 3),
        "gap_ms_p90": round(gaps[int(len(gaps) * 0.9)], 3),
        "gap_ms_mean": round(statistics.fmean(gaps), 3),
        "gaps": len(gaps),
    }
    print(
        f"{args.mode} c={args.concurrency}: {run['jobs_per_s']} jobs/s; idle gap between a "
        f"worker's jobs p50 {run['gap_ms_p50']} ms, p90 {run['gap_ms_p90']} ms, "
        f"mean {run['gap_ms_mean']} ms ({run['gaps']} gaps)"
    )
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    document = {
        "settings": vars(args) | {"results_dir": str(args.results_dir)},
        "machine": report.machine(ROOT),
        "runs": [run],
    }
    print(f"results: {report.write_results(args.results_dir, f'{stamp}-worker-gaps', document)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
