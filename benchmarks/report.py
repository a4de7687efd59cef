"""Progress bar, machine description, per-run figures, the JSON results file and the chart."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .scenarios import Measured

PACKAGES = ("graphnursery", "trio", "trio-parallel", "quart", "quart-trio", "hypercorn", "orjson")
TERMINAL_WIDTH = 30


class Progress:
    """A plain stderr progress bar, redrawn at most every 0.2 s on a terminal; elsewhere (CI
    logs, files) one line every 10 s and at the end."""

    def __init__(self, label: str, total: int) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.started = time.perf_counter()
        self._drawn = 0.0
        self._tty = sys.stderr.isatty()
        self._interval = 0.2 if self._tty else 10.0

    def advance(self, count: int = 1) -> None:
        self.done += count
        now = time.perf_counter()
        if now - self._drawn >= self._interval or self.done >= self.total:
            self._drawn = now
            self.draw(now)

    def draw(self, now: float) -> None:
        filled = TERMINAL_WIDTH * self.done // max(self.total, 1)
        rate = self.done / max(now - self.started, 1e-9)
        bar = "#" * filled + "." * (TERMINAL_WIDTH - filled)
        line = f"{self.label} [{bar}] {self.done}/{self.total} {rate:8.1f}/s"
        sys.stderr.write(f"\r{line}" if self._tty else f"{line}\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.done < self.total:
            self.draw(time.perf_counter())
        if self._tty:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit(root: Path) -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=False
        ).stdout.strip()

    commit = git("rev-parse", "--short=12", "HEAD") or "unknown"
    return commit + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def machine(root: Path) -> dict[str, Any]:
    versions: dict[str, str] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "absent"
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "git_commit": _git_commit(root),
    }


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def figures(measured: Measured, jobs: int) -> dict[str, Any]:
    """The per-run figures written to JSON and printed."""
    tally = measured.tally
    latencies = sorted(tally.latencies)

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 2)

    finished = tally.completed + tally.failed
    cpu = measured.cpu_seconds
    result: dict[str, Any] = {
        "jobs": jobs,
        "elapsed_s": round(measured.elapsed, 3),
        "jobs_per_s": round(finished / measured.elapsed, 1) if measured.elapsed else None,
        "p50_ms": ms(percentile(latencies, 0.50)),
        "p95_ms": ms(percentile(latencies, 0.95)),
        "p99_ms": ms(percentile(latencies, 0.99)),
        "cpu_ms_per_job": round(cpu * 1000 / finished, 3) if cpu is not None and finished else None,
        "peak_rss_mib": (
            round(measured.peak_rss_kib / 1024, 1) if measured.peak_rss_kib is not None else None
        ),
        "workers_peak_rss_mib": (
            round(measured.workers_peak_rss_kib / 1024, 1)
            if measured.workers_peak_rss_kib is not None
            else None
        ),
        "completed": tally.completed,
        "failed": tally.failed,
        "rejected": tally.rejected,
        "lost": tally.lost,
        "errors": tally.errors,
        # Requests per finished job: 1 + polls in poll mode (the seed API), ~1 in wait mode.
        "requests_per_job": round(tally.requests / finished, 3)
        if tally.requests and finished
        else None,
        "polls_per_job": round(tally.polls / finished, 3) if tally.requests and finished else None,
    }
    result.update(measured.extra)
    return result


def problems(runs: list[dict[str, Any]]) -> list[str]:
    """What went wrong in each run that did not complete every job cleanly (lost, failed,
    errored or too few jobs; stream events missing or out of order): the exit status 1."""
    return [
        f"{r['server'] or ''} {r['mode']} c={r['concurrency']}: "
        f"{r['completed']}/{r['jobs']} completed, "
        f"{r['failed']} failed, {r['lost']} lost, {r['errors']} errors"
        + (
            f", {r['missing_events']} events missing, {r['misordered_events']} out of order"
            if "missing_events" in r
            else ""
        )
        for r in runs
        if r["lost"]
        or r["failed"]
        or r["errors"]
        or r["completed"] < r["jobs"]
        or r.get("missing_events")
        or r.get("misordered_events")
    ]


BACKLOG_KEYS = (
    "accepted",
    "submit_per_second",
    "drain_per_second",
    "rss_idle_mib",
    "rss_queued_mib",
    "rss_drained_mib",
    "peak_rss_mib",
)
COLUMNS = (
    ("server", "server", 14),
    ("mode", "mode", 7),
    ("c", "concurrency", 4),
    ("jobs/s", "jobs_per_s", 8),
    ("p50", "p50_ms", 8),
    ("p95", "p95_ms", 8),
    ("p99", "p99_ms", 8),
    ("cpu/job", "cpu_ms_per_job", 8),
    ("req/job", "requests_per_job", 7),
    ("rss MiB", "peak_rss_mib", 8),
    ("done", "completed", 7),
    ("fail", "failed", 5),
    ("429", "rejected", 5),
    ("lost", "lost", 5),
)


#: The table of the stream scenario: per-event figures (emit-to-client latency in ms, CPU and
#: emit cost in µs per event), ``miss``: graph events that never reached their stream.
STREAM_COLUMNS = (
    ("server", "server", 14),
    ("mode", "mode", 9),
    ("c", "concurrency", 4),
    ("jobs/s", "jobs_per_s", 7),
    ("events/s", "events_per_s", 9),
    ("ev p50", "event_p50_ms", 7),
    ("ev p95", "event_p95_ms", 7),
    ("ev p99", "event_p99_ms", 7),
    ("last p50", "last_event_p50_ms", 8),
    ("emit µs", "emit_us_per_event", 7),
    ("emit p50", "emit_us_p50", 8),
    ("cpu µs/ev", "cpu_us_per_event", 9),
    ("main µs/ev", "main_cpu_us_per_event", 10),
    ("client µs/ev", "client_cpu_us_per_event", 12),
    ("rss MiB", "peak_rss_mib", 8),
    ("done", "completed", 5),
    ("fail", "failed", 5),
    ("lost", "lost", 5),
    ("err", "errors", 4),
    ("miss", "missing_events", 5),
)
#: The table of the idle-streams scenario.
IDLE_STREAM_COLUMNS = (
    ("server", "server", 14),
    ("streams", "streams", 7),
    ("rss before", "rss_before_mib", 10),
    ("rss open", "rss_open_mib", 8),
    ("MB", "rss_streams_mb", 7),
    ("KiB/stream", "rss_per_stream_kib", 10),
    ("fds open", "fds_open", 8),
    ("open s", "open_seconds", 7),
    ("end s", "end_seconds", 6),
    ("ended", "streams_ended", 6),
    ("lost", "lost", 5),
    ("errors", "errors", 6),
)


def table(runs: list[dict[str, Any]], columns: tuple[tuple[str, str, int], ...] = COLUMNS) -> str:
    def cell(run: dict[str, Any], key: str) -> str:
        value = run.get(key)
        return "-" if value is None else str(value)

    widths = [max([width, *(len(cell(run, key)) for run in runs)]) for _, key, width in columns]
    lines = [" ".join(f"{title:>{w}}" for (title, _, _), w in zip(columns, widths, strict=True))]
    for run in runs:
        cells = [f"{cell(run, key):>{w}}" for (_, key, _), w in zip(columns, widths, strict=True)]
        lines.append(" ".join(cells))
    return "\n".join(lines)


#: The server graphnursery's own runs are labelled with (alone or as a prefix).
GRAPHNURSERY = "graphnursery"
COMPARED = ("jobs_per_s", "p50_ms", "p95_ms", "cpu_ms_per_job", "requests_per_job")


def _median(values: list[Any]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 3) if present else None


def _ratio(ours: float | None, theirs: float | None) -> float | None:
    if ours is None or not theirs:
        return None
    return round(ours / theirs, 3)


def comparison(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """graphnursery vs each compared server, per mode x concurrency: medians and ratios.

    One row per (mode, concurrency, graphnursery label, compared label) that both measured;
    ``<figure>_ratio`` is graphnursery's median divided by the compared server's (jobs/s above
    1: graphnursery faster; p50 and CPU per job below 1: graphnursery lower).
    """
    groups: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for run in runs:
        if run.get("server") is not None:
            groups.setdefault((run["mode"], run["concurrency"], run["server"]), []).append(run)
    medians = {
        key: {name: _median([r.get(name) for r in group]) for name in COMPARED}
        | {"runs": len(group)}
        for key, group in groups.items()
    }
    rows: list[dict[str, Any]] = []
    for (mode, c, ours), our_figures in medians.items():
        if not ours.startswith(GRAPHNURSERY):
            continue
        for (other_mode, other_c, theirs), their_figures in medians.items():
            if (other_mode, other_c) != (mode, c) or theirs.startswith(GRAPHNURSERY):
                continue
            row: dict[str, Any] = {
                "mode": mode,
                "concurrency": c,
                "server": ours,
                "compare": theirs,
                "runs": our_figures["runs"],
                "compare_runs": their_figures["runs"],
            }
            for name in COMPARED:
                row[name] = our_figures[name]
                row[f"compare_{name}"] = their_figures[name]
                row[f"{name}_ratio"] = _ratio(our_figures[name], their_figures[name])
            rows.append(row)
    return rows


def comparison_table(rows: list[dict[str, Any]]) -> str:
    """The rows of :func:`comparison`: ``ours / theirs = ratio`` per figure (medians)."""
    titles = (("jobs/s", "jobs_per_s"), ("p50 ms", "p50_ms"), ("cpu/job", "cpu_ms_per_job"))
    titles += (("req/job", "requests_per_job"),)
    lines = ["graphnursery / compared (medians; ours / theirs = ratio):"]
    for row in rows:
        cells = [f"{row['mode']:>7} c={row['concurrency']:<3} {row['server']} / {row['compare']}:"]
        for title, name in titles:
            ours, theirs, ratio = row[name], row[f"compare_{name}"], row[f"{name}_ratio"]
            cells.append(
                f"{title} {'-' if ours is None else ours} / {'-' if theirs is None else theirs}"
                f" = {'-' if ratio is None else ratio}"
            )
        lines.append("  ".join(cells))
    return "\n".join(lines)


def write_results(directory: Path, stem: str, document: dict[str, Any]) -> Path:
    """One JSON file per invocation; re-read to prove it is valid JSON."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stem}.json"
    path.write_text(json.dumps(document, indent=2) + "\n")
    loaded = json.loads(path.read_text())
    if not isinstance(loaded.get("runs"), list) or not loaded["runs"]:
        raise RuntimeError(f"{path} holds no runs")
    return path


#: What a chart plots by default: (figure, axis label) for the rate and for the latency.
JOBS_CHART = (("jobs_per_s", "jobs/s"), ("p95_ms", "p95 latency (ms)"))
#: The stream scenario's chart.
STREAM_CHART = (("events_per_s", "events/s"), ("event_p95_ms", "p95 emit-to-client (ms)"))


def write_chart(
    path: Path,
    runs: list[dict[str, Any]],
    title: str,
    figures: tuple[tuple[str, str], tuple[str, str]] = JOBS_CHART,
) -> Path | None:
    """A rate and a latency (jobs/s and p95 unless ``figures`` says) by concurrency, one
    line per mode and server; None when matplotlib is absent."""
    (rate_key, rate_label), (latency_key, latency_label) = figures
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(
            "chart skipped: matplotlib is not installed (pip install -e '.[bench]')",
            file=sys.stderr,
        )
        return None
    figure, (rate_axis, p95_axis) = plt.subplots(1, 2, figsize=(11, 4.2))
    servers = {run.get("server") for run in runs}
    lines = sorted({(run["mode"], run.get("server")) for run in runs}, key=str)
    for mode, server in lines:
        # Repeated runs: plot the median of each concurrency.
        by_c: dict[int, list[tuple[float, float]]] = {}
        for run in runs:
            if (run["mode"], run.get("server")) == (mode, server) and run.get(rate_key) is not None:
                by_c.setdefault(run["concurrency"], []).append(
                    (run[rate_key], run.get(latency_key) or 0.0)
                )
        points = [
            (c, statistics.median(r for r, _ in values), statistics.median(p for _, p in values))
            for c, values in sorted(by_c.items())
        ]
        if not points:
            continue
        xs = [p[0] for p in points]
        label = mode if len(servers) == 1 or server is None else f"{mode} ({server})"
        rate_axis.plot(xs, [p[1] for p in points], marker="o", label=label)
        p95_axis.plot(xs, [p[2] or 0 for p in points], marker="o", label=label)
    for axis, label in ((rate_axis, rate_label), (p95_axis, latency_label)):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("concurrency")
        axis.set_ylabel(label)
        axis.grid(True, alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
