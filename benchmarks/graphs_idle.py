"""``python -m benchmarks.graphs_idle``: what serving several graphs costs the server, idle.

Issue 17's target: a server with 5 graphs idles at <= 1.5x the RSS of one with one graph,
plus the workers' own. Each run starts a CLI server (memory store, 1 worker per graph,
the engine thread on, as by default), sends each graph one job so every code path has run
once, waits for it to settle, then reads the server process's RSS (VmRSS; its worker
processes excluded, they are counted apart) and the workers' total. One-graph and
five-graph servers alternate, ``--rounds`` times each (the machine is noisy).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from .report import machine, write_results
from .server import memory_kib, start_server, tree_memory_kib

ROOT = Path(__file__).resolve().parents[1]
ECHO = str(ROOT / "examples" / "echo.py") + ":graph"
#: Seconds the server is left idle before it is measured.
SETTLE = 2.0


def graphs_argument(count: int) -> str:
    return " ".join(f"g{i}={ECHO}" for i in range(count))


def measure(count: int) -> dict[str, Any]:
    server = start_server(graphs_argument(count), workers=1, queue_size=100)
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for i in range(count):
                answer = client.post(f"/graphs/g{i}/jobs", params={"wait": 30}, json={"input": i})
                answer.raise_for_status()
                assert answer.json()["status"] == "completed", answer.text
        time.sleep(SETTLE)
        return {
            "graphs": count,
            "server_rss_kib": memory_kib(server.pid, "VmRSS"),
            "workers_rss_kib": tree_memory_kib(server.pid, "VmRSS"),
        }
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.graphs_idle")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--graphs", type=int, default=5)
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    print(f"idle server RSS, 1 vs {args.graphs} graphs, {args.rounds} rounds, echo graph")
    runs: list[dict[str, Any]] = []
    for round_ in range(args.rounds):
        for count in (1, args.graphs):
            run = measure(count)
            run["round"] = round_
            runs.append(run)
            print(
                f"  round {round_}: {count} graph(s): server {run['server_rss_kib'] / 1024:.1f}"
                f" MiB, workers {run['workers_rss_kib'] / 1024:.1f} MiB",
                flush=True,
            )
    one = [r["server_rss_kib"] for r in runs if r["graphs"] == 1]
    many = [r["server_rss_kib"] for r in runs if r["graphs"] == args.graphs]
    ratios = [m / o for o, m in zip(one, many, strict=True)]
    summary = {
        "one_graph_server_mib": [round(v / 1024, 1) for v in one],
        "many_graphs_server_mib": [round(v / 1024, 1) for v in many],
        "ratio_per_round": [round(r, 3) for r in ratios],
        "ratio_median": round(statistics.median(ratios), 3),
    }
    print(
        f"server RSS ratio ({args.graphs} graphs / 1): {summary['ratio_per_round']}, "
        f"median {summary['ratio_median']} (target <= 1.5)"
    )
    document = {"scenario": "graphs-idle", "machine": machine(ROOT), "runs": runs, **summary}
    path = write_results(args.results, f"{int(time.time())}-graphs-idle", document)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
