"""What the flow interpreter adds per node: a chain of no-op sync Python nodes run as a flow,
against calling the same functions in a row.

    python -m benchmarks.flow10 [--nodes 10] [--runs 2000] [--rounds 5]

Each round times ``--runs`` flow runs (``run_flow_sync`` on one event loop kept across runs,
as a worker process keeps one), then ``--runs`` direct chains (``x = f(x)`` ten times), in
alternating order round by round so a drift in the machine's load favours neither. The
overhead per node is (flow run - direct chain) / nodes; it includes ``run_until_complete``
and building the run record, shared by the nodes. Prints the median and the range across
rounds, and writes ``benchmarks/results/<time>-flow10.json``. The target is <= 1 ms/node.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from graphnursery.flows import Flow, parse_flow, run_flow_sync

from . import report
from .graphs.flow_noop import noop

ROOT = Path(__file__).resolve().parent.parent
NODE_TYPE = "benchmarks.graphs.flow_noop:noop"
TARGET_US = 1000.0


def chain(nodes: int) -> Flow:
    return parse_flow(
        {
            "name": f"chain{nodes}",
            "nodes": [{"id": f"n{i}", "type": NODE_TYPE} for i in range(nodes)],
            "edges": [{"from": f"n{i}", "to": f"n{i + 1}"} for i in range(nodes - 1)],
        }
    )


def time_flow(flow: Flow, runs: int, loop: asyncio.AbstractEventLoop) -> float:
    """Seconds per flow run."""
    began = time.perf_counter()
    for n in range(runs):
        run_flow_sync(flow, n, loop=loop)
    return (time.perf_counter() - began) / runs


def time_direct(functions: list[Callable[[Any], Any]], runs: int) -> float:
    """Seconds per direct chain."""
    began = time.perf_counter()
    for n in range(runs):
        x: Any = n
        for function in functions:
            x = function(x)
    return (time.perf_counter() - began) / runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.flow10", description=__doc__)
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--results-dir", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    machine = report.machine(ROOT)
    print(f"settings: nodes={args.nodes} runs={args.runs} rounds={args.rounds}")
    print(f"machine: {machine['cpu']}, {machine['cores']} cores, Python {machine['python']}")

    flow = chain(args.nodes)
    functions: list[Callable[[Any], Any]] = [noop] * args.nodes
    loop = asyncio.new_event_loop()
    try:
        assert run_flow_sync(flow, 7, loop=loop).output == 7
        time_flow(flow, args.runs // 10 + 1, loop)  # warm up
        rounds: list[dict[str, float]] = []
        for r in range(args.rounds):
            if r % 2:
                direct = time_direct(functions, args.runs)
                flowed = time_flow(flow, args.runs, loop)
            else:
                flowed = time_flow(flow, args.runs, loop)
                direct = time_direct(functions, args.runs)
            rounds.append(
                {
                    "flow_us_per_run": flowed * 1e6,
                    "direct_us_per_run": direct * 1e6,
                    "overhead_us_per_node": (flowed - direct) / args.nodes * 1e6,
                }
            )
    finally:
        loop.close()

    def summary(key: str) -> dict[str, float]:
        values = [r[key] for r in rounds]
        return {
            "median": round(statistics.median(values), 3),
            "min": round(min(values), 3),
            "max": round(max(values), 3),
        }

    run = {
        "nodes": args.nodes,
        "runs": args.runs,
        "rounds": [{k: round(v, 3) for k, v in r.items()} for r in rounds],
        **{key: summary(key) for key in rounds[0]},
    }
    per_node = run["overhead_us_per_node"]
    print(
        f"flow run {run['flow_us_per_run']['median']:.1f} µs, direct chain "
        f"{run['direct_us_per_run']['median']:.2f} µs (medians over {args.rounds} rounds)"
    )
    verdict = "met" if per_node["max"] <= TARGET_US else "MISSED"
    print(
        f"overhead per node: median {per_node['median']:.2f} µs, range "
        f"{per_node['min']:.2f}-{per_node['max']:.2f} µs (target <= {TARGET_US:.0f} µs: {verdict})"
    )
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    document = {
        "settings": vars(args) | {"results_dir": str(args.results_dir)},
        "machine": machine,
        "runs": [run],
    }
    print(f"results: {report.write_results(args.results_dir, f'{stamp}-flow10', document)}")
    return 0 if verdict == "met" else 1


if __name__ == "__main__":
    sys.exit(main())
