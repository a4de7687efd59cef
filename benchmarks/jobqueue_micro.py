"""What a put and a take cost: the fair ``JobQueue`` against the FIFO one it replaced.

    python -m benchmarks.jobqueue_micro [--jobs 100000] [--rounds 5]

Three patterns, each timed for ``--jobs`` put/take pairs in one Trio run, for jobs of one
workspace and of 10 (the FIFO queue ignores the workspace):

* ``steady``: ``put_nowait`` then ``take`` with that one job queued (a runner that is never
  short of work and a queue that stays short);
* ``backlog``: ``--jobs`` ``put_nowait`` then as many ``take`` (a long queue; with 10
  workspaces every take moves the rotation on);
* ``handoff``: a runner waits in ``take`` and a producer ``await put``s each job (an idle
  runner: one scheduler pass per job, the queue never holds a job).

Both queues keep a dict of queued job ids (for positions): the garbage collector's work on
what a run allocates is part of its time. Rounds alternate which queue goes first; prints the
median µs per put+take pair and the range across rounds, and writes
``benchmarks/results/<time>-jobqueue-micro.json``.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import trio

from graphnursery.jobqueue import JobQueue

from . import report

ROOT = Path(__file__).resolve().parent.parent
WORKSPACE_COUNTS = (1, 10)


class FifoJobQueue:
    """The queue before workspaces (commit c838feb), trimmed to put and take; ``workspace``
    is accepted and ignored so both queues run the same loops."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._send, self._receive = trio.open_memory_channel[str](capacity)
        self._seq: dict[str, int] = {}
        self._entered = 0
        self._left = 0

    def put_nowait(self, job_id: str, workspace: str = "default") -> None:
        self._send.send_nowait(job_id)
        self._seq[job_id] = self._entered
        self._entered += 1

    async def put(self, job_id: str, workspace: str = "default") -> None:
        await self._send.send(job_id)
        self._seq[job_id] = self._entered
        self._entered += 1

    async def take(self) -> str | None:
        try:
            job_id = self._receive.receive_nowait()
        except trio.WouldBlock:
            try:
                job_id = await self._receive.receive()
            except trio.EndOfChannel:
                return None
        except trio.EndOfChannel:
            return None
        self._left += 1
        self._seq.pop(job_id, None)
        return job_id


class Queue(Protocol):
    def put_nowait(self, job_id: str, workspace: str = ...) -> None: ...
    async def put(self, job_id: str, workspace: str = ...) -> None: ...
    async def take(self) -> str | None: ...


async def steady(queue: Queue, jobs: list[tuple[str, str]]) -> None:
    for job_id, workspace in jobs:
        queue.put_nowait(job_id, workspace)
        await queue.take()


async def backlog(queue: Queue, jobs: list[tuple[str, str]]) -> None:
    for job_id, workspace in jobs:
        queue.put_nowait(job_id, workspace)
    for _ in jobs:
        await queue.take()


async def handoff(queue: Queue, jobs: list[tuple[str, str]]) -> None:
    async def runner() -> None:
        for _ in jobs:
            await queue.take()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(runner)
        await trio.lowlevel.checkpoint()  # the runner waits in take
        for job_id, workspace in jobs:
            await queue.put(job_id, workspace)


PATTERNS: dict[str, Callable[[Queue, list[tuple[str, str]]], Awaitable[None]]] = {
    "steady": steady,
    "backlog": backlog,
    "handoff": handoff,
}
QUEUES: dict[str, Callable[[int], Queue]] = {"fifo": FifoJobQueue, "fair": JobQueue}


def time_pattern(queue_name: str, pattern: str, jobs: list[tuple[str, str]]) -> float:
    """µs per put+take pair."""
    queue = QUEUES[queue_name](len(jobs))
    seconds = 0.0

    async def main() -> None:
        nonlocal seconds
        began = time.perf_counter()
        await PATTERNS[pattern](queue, jobs)
        seconds = time.perf_counter() - began

    gc.collect()  # what earlier runs left is not collected on this one's time
    trio.run(main)
    return seconds / len(jobs) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.jobqueue_micro", description=__doc__
    )
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--results-dir", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    machine = report.machine(ROOT)
    print(f"settings: jobs={args.jobs} rounds={args.rounds} workspaces={WORKSPACE_COUNTS}")
    print(f"machine: {machine['cpu']}, {machine['cores']} cores, Python {machine['python']}")

    runs: list[dict[str, Any]] = []
    for workspaces in WORKSPACE_COUNTS:
        jobs = [(f"job-{i:07d}", f"ws{i % workspaces}") for i in range(args.jobs)]
        for pattern in PATTERNS:
            for name in QUEUES:  # warm up
                time_pattern(name, pattern, jobs[: args.jobs // 10 + 1])
            rounds: dict[str, list[float]] = {name: [] for name in QUEUES}
            for r in range(args.rounds):
                for name in list(QUEUES)[:: -1 if r % 2 else 1]:
                    rounds[name].append(time_pattern(name, pattern, jobs))
            run: dict[str, Any] = {"workspaces": workspaces, "pattern": pattern}
            for name, values in rounds.items():
                run[name] = {
                    "median_us": round(statistics.median(values), 3),
                    "min_us": round(min(values), 3),
                    "max_us": round(max(values), 3),
                    "rounds_us": [round(v, 3) for v in values],
                }
            run["ratio"] = round(run["fair"]["median_us"] / run["fifo"]["median_us"], 3)
            runs.append(run)
            print(
                f"{workspaces:2d} workspace(s) {pattern:8s} "
                + "  ".join(
                    f"{name} {run[name]['median_us']:.3f} µs "
                    f"({run[name]['min_us']:.3f}-{run[name]['max_us']:.3f})"
                    for name in QUEUES
                )
                + f"  fair/fifo x{run['ratio']:.2f}"
            )
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    document = {
        "settings": vars(args) | {"results_dir": str(args.results_dir)},
        "machine": machine,
        "runs": runs,
    }
    print(f"results: {report.write_results(args.results_dir, f'{stamp}-jobqueue-micro', document)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
