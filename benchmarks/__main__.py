"""``python -m benchmarks``: run scenarios, print figures, write JSON and a chart."""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

from . import report, scenarios
from .report import Progress
from .server import Server, start_server

HTTP_MODES = ("poll", "wait", "batch")
MODES = (*HTTP_MODES, "engine", "direct")


def _list(kind: type, choices: Sequence[Any] | None = None) -> Any:
    def parse(raw: str) -> list[Any]:
        try:
            values = [kind(part.strip()) for part in raw.split(",") if part.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"not a comma list of {kind.__name__}: {raw}"
            ) from None
        bad = [v for v in values if choices is not None and v not in choices]
        if not values or bad:
            raise argparse.ArgumentTypeError(f"expected a comma list of {choices}, got {raw!r}")
        return values

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--scenario", choices=sorted(scenarios.GRAPHS), default="noop")
    p.add_argument(
        "--mode", type=_list(str, MODES), default=["wait"], help="comma list of " + "|".join(MODES)
    )
    p.add_argument("--concurrency", type=_list(int), default=[1, 16, 64])
    p.add_argument("--jobs", type=int, help="jobs per run (default 1000; backlog 100000)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--queue-size", type=int, help="default 1000; backlog: --jobs")
    p.add_argument("--target", help="drive this server instead of starting one")
    p.add_argument("--server-pid", type=int, help="with --target: its pid, for CPU and RSS")
    p.add_argument("--api", choices=("native", "seed"), default="native")
    p.add_argument("--results-dir", type=Path, default=Path(__file__).parent / "results")
    p.add_argument("--no-chart", action="store_true")
    p.add_argument(
        "--repeat", type=int, default=1, help="run each mode x concurrency R times (noisy machines)"
    )
    p.add_argument("--job-deadline", type=float, default=120.0, help="seconds before a job is lost")
    return p


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    backlog = args.scenario == "backlog"
    jobs = args.jobs or (100_000 if backlog else 1000)
    return {
        "scenario": args.scenario,
        "graph": str(scenarios.GRAPHS[args.scenario]),
        "modes": ["backlog"] if backlog else args.mode,
        "concurrency": args.concurrency[-1:] if backlog else args.concurrency,
        "jobs": jobs,
        "workers": args.workers,
        "queue_size": args.queue_size or (jobs if backlog else 1000),
        "api": args.api,
        "target": args.target,
        "poll_interval_ms": scenarios.POLL_INTERVAL * 1000,
        "long_poll_s": scenarios.LONG_POLL,
        "repeat": max(args.repeat, 1),
    }


def _run_one(settings: dict[str, Any], args: argparse.Namespace, mode: str, c: int) -> Any:
    graph, jobs = settings["graph"], settings["jobs"]
    workers, queue_size = settings["workers"], settings["queue_size"]
    if mode == "batch" and not args.queue_size:
        # C requests of BATCH_SIZE jobs are in flight: a smaller queue turns some away each
        # round, and the run would measure Retry-After waits instead of throughput.
        queue_size = max(queue_size, c * scenarios.BATCH_SIZE)
    progress = Progress(f"{settings['scenario']} {mode:>6} c={c:<3}", jobs)
    server: Server | None = None
    try:
        if mode == "engine":
            return trio.run(scenarios.run_engine, graph, workers, queue_size, c, jobs, progress)
        if mode == "direct":
            return scenarios.run_direct(graph, workers, c, jobs, progress)
        if args.target:
            url, pid = args.target, args.server_pid
        else:
            server = start_server(graph, workers, queue_size)
            url, pid = server.url, server.pid
        if mode == "backlog":
            assert pid is not None, "backlog needs --server-pid with --target"
            gate = Path(tempfile.gettempdir()) / f"graphnursery-bench-gate-{time.time_ns()}"
            return trio.run(scenarios.run_backlog, url, pid, workers, c, jobs, gate, progress)
        return trio.run(
            scenarios.run_http,
            url,
            mode,
            settings["api"],
            c,
            jobs,
            pid,
            progress,
            args.job_deadline,
        )
    finally:
        progress.close()
        if server is not None:
            code = server.stop()
            if code != 0:
                print(f"warning: the server exited with code {code}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.api == "seed" and "wait" in args.mode:
        print("--api seed has no long-poll: use --mode poll", file=sys.stderr)
        return 2
    settings = _settings(args)
    root = Path(__file__).resolve().parent.parent
    machine = report.machine(root)
    print("settings:", " ".join(f"{k}={v}" for k, v in settings.items()))
    print(
        f"machine: {machine['cpu']}, {machine['cores']} cores, python {machine['python']}, "
        f"commit {machine['git_commit']}, "
        + ", ".join(f"{k} {v}" for k, v in machine["packages"].items())
    )
    started = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    runs: list[dict[str, Any]] = []
    for mode, c, repeat in itertools.product(
        settings["modes"], settings["concurrency"], range(settings["repeat"])
    ):
        load_before = os.getloadavg()[0]
        measured = _run_one(settings, args, mode, c)
        run = {
            "scenario": settings["scenario"],
            "mode": mode,
            "api": settings["api"] if mode in HTTP_MODES else None,
            "concurrency": c,
            "repeat": repeat,
        }
        run.update(report.figures(measured, settings["jobs"]))
        # Other processes on the machine skew every figure: keep the evidence.
        run["loadavg_1m_before"] = round(load_before, 2)
        run["loadavg_1m_after"] = round(os.getloadavg()[0], 2)
        runs.append(run)
    print(report.table(runs))
    for run in runs:
        if run["mode"] == "backlog":
            print("backlog:", " ".join(f"{k}={run.get(k)}" for k in report.BACKLOG_KEYS))

    document = {"started": started, "settings": settings, "machine": machine, "runs": runs}
    stem = f"{started}-{settings['scenario']}"
    path = report.write_results(args.results_dir, stem, document)
    print(f"results: {path}")
    if not args.no_chart and settings["scenario"] != "backlog":
        title = f"{settings['scenario']}, {settings['workers']} workers, {machine['cores']} cores"
        chart = report.write_chart(path.with_suffix(".png"), runs, title)
        if chart is not None:
            print(f"chart: {chart}")

    problems = [
        f"{r['mode']} c={r['concurrency']}: {r['completed']}/{r['jobs']} completed, "
        f"{r['failed']} failed, {r['lost']} lost, {r['errors']} errors"
        for r in runs
        if r["lost"] or r["failed"] or r["errors"] or r["completed"] < r["jobs"]
    ]
    for problem in problems:
        print(f"FAILED {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
