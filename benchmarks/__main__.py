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

from . import backlog, idle_streams, report, scenarios, streams
from .compare import Compared, compared_servers, parse_compare, parse_pids
from .report import GRAPHNURSERY, Progress
from .server import DEFAULT_STORE, Server, cli_supports, raise_open_file_limit, start_server

#: ``lg-wait``: the LangGraph API's ``POST /runs/wait``, the graph's name as its assistant.
HTTP_MODES = ("poll", "wait", "batch", "lg-wait")
#: The stream scenario's modes: graphnursery's ``POST /jobs?stream=true``, the LangGraph
#: API's ``POST /runs/stream``.
STREAM_MODES = ("stream", "lg-stream")
MODES = (*HTTP_MODES, "engine", "direct", *STREAM_MODES)
#: The stream scenarios (their own modes: ``--mode`` does not apply, but for STREAM_MODES).
STREAM_SCENARIOS = ("stream", "idle-streams")
#: Modes measured on a server the harness starts, one per ``--store``.
SERVED_MODES = (*HTTP_MODES, *STREAM_SCENARIOS, "lg-stream")
#: The server's default ``max_job_events``: past it a stream run passes ``--max-job-events``.
MAX_JOB_EVENTS = 10_000
#: Modes also run against every ``--compare`` server (servers that speak the seed API).
COMPARE_MODES = ("poll",)
#: ``--store`` names; anything else is passed to ``--store`` as it is (a URL).
STORES = {"memory": "memory://", "default": DEFAULT_STORE}


def graphnursery_servers(stores: list[str], target: str | None) -> list[tuple[str, str | None]]:
    """(label, store) per graphnursery server an HTTP run is measured on."""
    if target:
        return [(GRAPHNURSERY, None)]
    if len(stores) == 1:
        return [(GRAPHNURSERY, stores[0])]
    return [(f"{GRAPHNURSERY}[{store}]", store) for store in stores]


def run_plan(
    modes: list[str],
    concurrency: list[int],
    repeat: int,
    ours: list[tuple[str, str | None]],
    compared: list[Compared],
) -> list[tuple[str, int, int, str | None, str | None, Compared | None]]:
    """Every run in order: (mode, c, repeat, server label, store, compared server or None).

    For one mode x concurrency, each repeat measures every graphnursery server and every
    compared one in turn, in the reverse order every other repeat (A B, B A, A B), so a drift
    in the machine's load does not favour whichever runs first.
    """
    plan: list[tuple[str, int, int, str | None, str | None, Compared | None]] = []
    for mode, c in itertools.product(modes, concurrency):
        for r in range(repeat):
            if mode not in SERVED_MODES:
                label = GRAPHNURSERY if mode == "engine" else None
                plan.append((mode, c, r, label, None, None))
                continue
            turn: list[tuple[str | None, str | None, Compared | None]] = [
                (label, store, None) for label, store in ours
            ]
            if mode in COMPARE_MODES:
                turn += [(other.label, None, other) for other in compared]
            if r % 2:
                turn.reverse()
            plan += [(mode, c, r, label, store, other) for label, store, other in turn]
    return plan


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
    p.add_argument(
        "--jobs", type=int, help="jobs per run (default 1000; backlog 100000; stream 200)"
    )
    p.add_argument(
        "--events", type=int, default=1000, help="stream: events each job emits (default 1000)"
    )
    p.add_argument(
        "--event-bytes", type=int, default=100, help="stream: each event's JSON size, roughly"
    )
    p.add_argument(
        "--emit-rate",
        type=float,
        default=0.0,
        help="stream: events/s each job emits at most (default 0: as fast as it can)",
    )
    p.add_argument(
        "--streams", type=int, default=1000, help="idle-streams: streams held open (default 1000)"
    )
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--queue-size", type=int, help="default 1000; backlog: --jobs")
    p.add_argument("--target", help="drive this server instead of starting one")
    p.add_argument("--server-pid", type=int, help="with --target: its pid, for CPU and RSS")
    p.add_argument("--api", choices=("native", "seed"), default="native")
    p.add_argument(
        "--store",
        type=_list(str),
        default=["memory"],
        help="graphnursery's store, comma list (each alternated like --compare): memory, "
        "default (the CLI's own: SQLite ./graphnursery.db, in a fresh directory per run) or a URL",
    )
    p.add_argument(
        "--compare",
        type=parse_compare,
        action="append",
        default=[],
        metavar="[LABEL=]URL",
        help="also run every poll-mode run against this seed-API server, alternating with "
        "graphnursery's runs (repeatable or a comma list; needs --api seed)",
    )
    p.add_argument(
        "--compare-pid",
        type=parse_pids,
        action="append",
        default=[],
        metavar="[LABEL=]PID",
        help="the pid of a --compare server, for CPU and RSS (in --compare order unless labelled)",
    )
    p.add_argument("--results-dir", type=Path, default=Path(__file__).parent / "results")
    p.add_argument("--no-chart", action="store_true")
    p.add_argument(
        "--repeat", type=int, default=1, help="run each mode x concurrency R times (noisy machines)"
    )
    p.add_argument("--job-deadline", type=float, default=120.0, help="seconds before a job is lost")
    return p


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    backlog = args.scenario == "backlog"
    idle = args.scenario == "idle-streams"
    jobs = args.jobs or (100_000 if backlog else 200 if args.scenario == "stream" else 1000)
    modes = args.mode
    concurrency = args.concurrency
    if backlog or idle:
        modes = [args.scenario]
    elif args.scenario == "stream":
        modes = [mode for mode in modes if mode in STREAM_MODES] or ["stream"]
    if backlog:
        concurrency = concurrency[-1:]
    if idle:  # its one "job" per stream: each must see the held job's end
        jobs = args.streams
        concurrency = [args.streams]
    streaming: dict[str, Any] = {}
    if args.scenario == "stream":
        streaming = {
            "events_per_job": args.events,
            "event_bytes": args.event_bytes,
            "emit_rate": args.emit_rate or None,
        }
    elif idle:
        streaming = {"streams": args.streams}
    return {
        "scenario": args.scenario,
        "graph": str(scenarios.GRAPHS[args.scenario]),
        "modes": modes,
        "concurrency": concurrency,
        "jobs": jobs,
        **streaming,
        "workers": args.workers,
        "queue_size": args.queue_size or (jobs if backlog else 1000),
        "api": args.api,
        "target": args.target,
        "poll_interval_ms": scenarios.POLL_INTERVAL * 1000,
        "long_poll_s": scenarios.LONG_POLL,
        "repeat": max(args.repeat, 1),
        "stores": None if args.target else args.store,
        "compare": [
            {"label": c.label, "url": c.url, "pid": c.pid}
            for c in compared_servers(args.compare, args.compare_pid)
        ],
    }


def _run_one(
    settings: dict[str, Any],
    args: argparse.Namespace,
    mode: str,
    c: int,
    label: str | None = None,
    store: str | None = None,
    compared: Compared | None = None,
) -> Any:
    graph, jobs = settings["graph"], settings["jobs"]
    workers, queue_size = settings["workers"], settings["queue_size"]
    if mode == "batch" and not args.queue_size:
        # C requests of BATCH_SIZE jobs are in flight: a smaller queue turns some away each
        # round, and the run would measure Retry-After waits instead of throughput.
        queue_size = max(queue_size, c * scenarios.BATCH_SIZE)
    who = f" {label}" if label and (compared or settings["compare"] or len(args.store) > 1) else ""
    what = mode if mode == settings["scenario"] else f"{settings['scenario']} {mode:>6}"
    progress = Progress(f"{what} c={c:<3}{who}", jobs)
    server: Server | None = None
    workdir: tempfile.TemporaryDirectory[str] | None = None
    gate: Path | None = None
    try:
        if mode == "engine":
            return trio.run(scenarios.run_engine, graph, workers, queue_size, c, jobs, progress)
        if mode == "direct":
            return scenarios.run_direct(graph, workers, c, jobs, progress)
        extra: list[str] = []
        many = args.events > MAX_JOB_EVENTS
        if mode in STREAM_MODES and many and cli_supports("--max-job-events"):
            extra = ["--max-job-events", str(args.events)]
        if compared is not None:
            url, pid = compared.url, compared.pid
        elif args.target:
            url, pid = args.target, args.server_pid
        else:
            store_url = STORES.get(store or "memory", store or "memory://")
            if store_url == DEFAULT_STORE:  # its ./graphnursery.db: fresh, out of the checkout
                workdir = tempfile.TemporaryDirectory(prefix="graphnursery-bench-")
            cwd = workdir.name if workdir else None
            server = start_server(graph, workers, queue_size, extra, store=store_url, cwd=cwd)
            url, pid = server.url, server.pid
        if mode == "backlog":
            assert pid is not None, "backlog needs --server-pid with --target"
            gate = Path(tempfile.gettempdir()) / f"graphnursery-bench-gate-{time.time_ns()}"
            return trio.run(backlog.run_backlog, url, pid, workers, c, jobs, gate, progress)
        assistant = Path(graph).stem  # the LangGraph API's name for the served graph
        if mode in STREAM_MODES:
            return trio.run(
                streams.run_stream,
                url,
                c,
                jobs,
                args.events,
                args.event_bytes,
                pid,
                progress,
                args.job_deadline,
                args.emit_rate,
                assistant if mode == "lg-stream" else None,
            )
        if mode == "idle-streams":
            assert pid is not None, "idle-streams needs --server-pid with --target"
            gate = Path(tempfile.gettempdir()) / f"graphnursery-bench-gate-{time.time_ns()}"
            return trio.run(
                idle_streams.run_idle_streams, url, pid, c, gate, progress, args.job_deadline
            )
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
            assistant,
        )
    finally:
        progress.close()
        if server is not None:
            code = server.stop()
            if code != 0:
                print(f"warning: the server exited with code {code}", file=sys.stderr)
        if workdir is not None:
            workdir.cleanup()
        if gate is not None:
            gate.unlink(missing_ok=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.api == "seed" and args.scenario in STREAM_SCENARIOS:
        print("--api seed has no event streams: use --api native", file=sys.stderr)
        return 2
    if set(STREAM_MODES) & set(args.mode) and args.scenario != "stream":
        print("--mode stream and lg-stream need --scenario stream", file=sys.stderr)
        return 2
    if args.api == "seed" and "wait" in args.mode:
        print("--api seed has no long-poll: use --mode poll", file=sys.stderr)
        return 2
    if args.compare and (args.api != "seed" or "poll" not in args.mode):
        print("--compare drives seed-API servers: use --api seed --mode poll", file=sys.stderr)
        return 2
    try:
        compared = compared_servers(args.compare, args.compare_pid)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    if args.compare_pid and not args.compare:
        print("--compare-pid needs --compare", file=sys.stderr)
        return 2
    settings = _settings(args)
    raise_open_file_limit()  # streams are sockets; a server the harness starts inherits it
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
    ours = graphnursery_servers(args.store, args.target)
    plan = run_plan(settings["modes"], settings["concurrency"], settings["repeat"], ours, compared)
    for mode, c, repeat, label, store, other in plan:
        load_before = os.getloadavg()[0]
        measured = _run_one(settings, args, mode, c, label, store, other)
        api = settings["api"] if mode in SERVED_MODES else None
        run = {
            "server": label,
            "url": other.url if other else args.target,
            "store": store,
            "scenario": settings["scenario"],
            "mode": mode,
            "api": "langgraph" if mode.startswith("lg-") else api,
            "concurrency": c,
            "repeat": repeat,
        }
        run.update(report.figures(measured, settings["jobs"]))
        # Other processes on the machine skew every figure: keep the evidence.
        run["loadavg_1m_before"] = round(load_before, 2)
        run["loadavg_1m_after"] = round(os.getloadavg()[0], 2)
        runs.append(run)
    columns = {"stream": report.STREAM_COLUMNS, "idle-streams": report.IDLE_STREAM_COLUMNS}
    print(report.table(runs, columns.get(settings["scenario"], report.COLUMNS)))
    for run in runs:
        if run["mode"] == "backlog":
            print("backlog:", " ".join(f"{k}={run.get(k)}" for k in report.BACKLOG_KEYS))
    comparison = report.comparison(runs)
    if comparison:
        print(report.comparison_table(comparison))

    document = {
        "started": started,
        "settings": settings,
        "machine": machine,
        "runs": runs,
        "comparison": comparison,
    }
    stem = f"{started}-{settings['scenario']}"
    path = report.write_results(args.results_dir, stem, document)
    print(f"results: {path}")
    if not args.no_chart and settings["scenario"] not in ("backlog", "idle-streams"):
        title = f"{settings['scenario']}, {settings['workers']} workers, {machine['cores']} cores"
        if settings["scenario"] == "stream":
            title += f", {args.events} events of ~{args.event_bytes} B per job"
            if args.emit_rate:
                title += f" at ≤ {args.emit_rate:g}/s"
        figures = report.STREAM_CHART if settings["scenario"] == "stream" else report.JOBS_CHART
        chart = report.write_chart(path.with_suffix(".png"), runs, title, figures)
        if chart is not None:
            print(f"chart: {chart}")

    problems = report.problems(runs)
    for problem in problems:
        print(f"FAILED {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
