"""The measured loops: HTTP (poll, wait, batch, seed API, the LangGraph API's ``/runs/wait``),
in-process engine, direct processes.

The backlog scenario is in ``backlog.py``, the stream scenarios in ``streams.py``.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from .client import Connection, Response, dumps, split_target
from .report import Progress
from .server import cpu_seconds, memory_kib, tree_memory_kib

ROOT = Path(__file__).resolve().parent.parent
GRAPHS = {
    "noop": ROOT / "examples" / "echo.py",
    "sleep100": ROOT / "examples" / "sleep.py",
    "cpu50": ROOT / "examples" / "cpu.py",
    "backlog": ROOT / "benchmarks" / "graphs" / "gate.py",
    "stream": ROOT / "benchmarks" / "graphs" / "emitter.py",
    "idle-streams": ROOT / "benchmarks" / "graphs" / "emitter.py",
}
TERMINAL = frozenset({"completed", "failed", "timed_out", "cancelled", "crashed"})
POLL_INTERVAL = 0.02
LONG_POLL = 30
NATIVE_BODY = dumps({"input": {"n": 1}})
SEED_BODY = dumps({"messages": [{"role": "user", "content": "hello"}]})
#: Jobs per request in batch mode (POST /jobs/batch?wait=...).
BATCH_SIZE = 16


def lg_run_body(assistant: str, job_input: Any, **fields: Any) -> bytes:
    """A LangGraph API run's body (``RunCreateStateless``): the assistant (its graph's name)
    and the input, and any other field (``stream_mode``...)."""
    return dumps({"assistant_id": assistant, "input": job_input, **fields})


def batch_body(size: int) -> bytes:
    return dumps({"jobs": [{"input": {"n": n}} for n in range(size)]})


@dataclass
class Tally:
    """What one run saw: per-job latencies (s) and how each job ended."""

    latencies: list[float] = field(default_factory=list)
    completed: int = 0
    failed: int = 0
    rejected: int = 0  # 429 answers (the job was retried)
    lost: int = 0  # accepted, never seen terminal
    errors: int = 0  # unexpected HTTP answers
    requests: int = 0  # HTTP requests sent (submits, 429 retries included, and polls)
    polls: int = 0  # GET /jobs/{id} requests

    def record(self, outcome: str, started: float) -> None:
        if outcome == "completed":
            self.completed += 1
            self.latencies.append(time.perf_counter() - started)
        elif outcome == "lost":
            self.lost += 1
        elif outcome == "error":
            self.errors += 1
        else:
            self.failed += 1


@dataclass
class Measured:
    tally: Tally
    elapsed: float
    cpu_seconds: float | None = None
    peak_rss_kib: int | None = None
    workers_peak_rss_kib: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


async def _retry_after(response: Response) -> None:
    try:
        delay = float(response.headers.get("retry-after", "0.05"))
    except ValueError:
        delay = 0.05
    await trio.sleep(min(max(delay, 0.01), 1.0))


async def _submit(conn: Connection, path: str, body: bytes, tally: Tally) -> Response:
    while True:
        response = await conn.request("POST", path, body)
        tally.requests += 1
        if response.status != 429:
            return response
        tally.rejected += 1
        await _retry_after(response)


async def http_job(conn: Connection, mode: str, api: str, tally: Tally, deadline: float) -> str:
    """One job over HTTP, start to terminal status; returns that status, 'lost' or 'error'."""
    if api == "seed":
        response = await _submit(conn, "/execute", SEED_BODY, tally)
        accepted = response.status == 200
    else:
        path = f"/jobs?wait={LONG_POLL}" if mode == "wait" else "/jobs"
        response = await _submit(conn, path, NATIVE_BODY, tally)
        accepted = response.status in (200, 202)
    if not accepted:
        return "error"
    job = response.json()
    job_id = job["jobId"]
    poll_path = f"/jobs/{job_id}?wait={LONG_POLL}" if mode == "wait" else f"/jobs/{job_id}"
    while job.get("status") not in TERMINAL:
        if time.monotonic() > deadline:
            return "lost"
        if mode != "wait":
            await trio.sleep(POLL_INTERVAL)
        response = await conn.request("GET", poll_path)
        tally.requests += 1
        tally.polls += 1
        if response.status == 404:
            return "lost"
        if response.status != 200:
            return "error"
        job = response.json()
    return str(job["status"])


async def lg_wait_job(conn: Connection, body: bytes, tally: Tally) -> str:
    """``POST /runs/wait`` (the LangGraph API): one request, answered with the graph's output
    or ``{"__error__": {error, message}}``; returns 'completed', the error's type (a failure),
    'lost' (the run was still queued or running when the server's wait ended) or 'error'."""
    response = await _submit(conn, "/runs/wait", body, tally)
    if response.status != 200:
        return "error"
    answer = response.json()
    failure = answer.get("__error__") if isinstance(answer, dict) else None
    if not isinstance(failure, dict):
        return "completed"
    kind = str(failure.get("error"))
    return "lost" if kind in ("queued", "running") else kind


async def http_batch(conn: Connection, tally: Tally, started: float) -> None:
    """BATCH_SIZE jobs in one request, waited for together; each is recorded. Jobs the server
    turned away (the queue was full) are counted as rejected and sent again after Retry-After,
    as a client would."""
    left = BATCH_SIZE
    while left:
        response = await _submit(conn, f"/jobs/batch?wait={LONG_POLL}", batch_body(left), tally)
        if response.status not in (200, 202):
            for _ in range(left):
                tally.record("error", started)
            return
        answer = response.json()
        for job in answer["jobs"]:
            tally.record(str(job["status"]) if job["status"] in TERMINAL else "lost", started)
        rejected = int(answer.get("rejected", 0))
        if len(answer["jobs"]) + rejected != left:
            for _ in range(left - len(answer["jobs"]) - rejected):
                tally.record("error", started)
        left = rejected
        if rejected:
            tally.rejected += rejected
            await _retry_after(response)


async def _closed_loop(
    concurrency: int,
    jobs: int,
    one_job: Callable[[int], Any],
    progress: Progress | None,
) -> float:
    """C tasks, each running jobs back to back until ``jobs`` have been started."""
    remaining = jobs

    async def worker(slot: int) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await one_job(slot)
            if progress is not None:
                progress.advance()

    started = time.perf_counter()
    if progress is not None:
        progress.started = started
    async with trio.open_nursery() as nursery:
        for slot in range(concurrency):
            nursery.start_soon(worker, slot)
    return time.perf_counter() - started


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run_http(
    url: str,
    mode: str,
    api: str,
    concurrency: int,
    jobs: int,
    server_pid: int | None,
    progress: Progress | None,
    job_deadline: float = 120.0,
    assistant: str = "echo",
) -> Measured:
    """C keep-alive connections, each running jobs back to back in ``mode``; ``lg-wait``
    runs ``assistant`` (a graph's name) through the LangGraph API's ``POST /runs/wait``."""
    host, port = split_target(url)
    connections = [Connection(host, port) for _ in range(concurrency)]
    tally = Tally()
    lg_body = lg_run_body(assistant, {"n": 1})

    async def one_job(slot: int) -> None:
        started = time.perf_counter()
        if mode == "batch":
            await http_batch(connections[slot], tally, started)
            return
        if mode == "lg-wait":
            tally.record(await lg_wait_job(connections[slot], lg_body, tally), started)
            return
        deadline = time.monotonic() + job_deadline
        outcome = await http_job(connections[slot], mode, api, tally, deadline)
        tally.record(outcome, started)

    if mode == "batch":  # each closed-loop step is one request of BATCH_SIZE jobs
        jobs = -(-jobs // BATCH_SIZE)

    # Warm up: one job per connection (opens them; the server's first requests are slower).
    await _closed_loop(concurrency, concurrency, one_job, None)
    tally = Tally()
    cpu_before = cpu_seconds(server_pid) if server_pid else None
    client_before = _own_cpu()
    elapsed = await _closed_loop(concurrency, jobs, one_job, progress)
    client_cpu = _own_cpu() - client_before
    measured = Measured(tally, elapsed)
    per_step = BATCH_SIZE if mode == "batch" else 1
    measured.extra["client_cpu_ms_per_job"] = round(client_cpu * 1000 / max(jobs * per_step, 1), 3)
    if server_pid:
        assert cpu_before is not None
        measured.cpu_seconds = cpu_seconds(server_pid) - cpu_before
        measured.peak_rss_kib = memory_kib(server_pid, "VmHWM")
        measured.workers_peak_rss_kib = tree_memory_kib(server_pid, "VmHWM")
    measured.extra["connects"] = sum(c.connects for c in connections)
    for conn in connections:
        await conn.aclose()
    return measured


async def run_engine(
    graph: str, workers: int, queue_size: int, concurrency: int, jobs: int, progress: Progress
) -> Measured:
    """In-process ``open_engine``: no HTTP; CPU is this process plus its worker processes."""
    from graphnursery import Config, QueueFull, open_engine

    config = Config(
        graph=graph,
        workers=workers,
        queue_size=queue_size,
        log_level="warning",
        store="memory://",
    )
    tally = Tally()
    async with open_engine(config) as engine:

        async def one_job(slot: int) -> None:
            started = time.perf_counter()
            while True:
                try:
                    job = await engine.submit({"n": 1})
                    break
                except QueueFull:
                    tally.rejected += 1
                    await trio.sleep(0.01)
            job = await engine.wait(job.id, 60)
            tally.record(job.status.value if job.status.is_terminal else "lost", started)

        await _closed_loop(concurrency, concurrency, one_job, None)
        tally = Tally()
        cpu_before = cpu_seconds(os.getpid())
        elapsed = await _closed_loop(concurrency, jobs, one_job, progress)
        cpu = cpu_seconds(os.getpid()) - cpu_before
    return Measured(tally, elapsed, cpu, memory_kib(os.getpid(), "VmHWM"))


_graph_call: Callable[[Any], Any] | None = None


def _load_graph(spec: str) -> None:
    global _graph_call
    from graphnursery._worker import load_graph, make_caller

    _graph_call = make_caller(load_graph(spec))


def _call_graph(job_input: Any) -> Any:
    assert _graph_call is not None
    return _graph_call(job_input)


def run_direct(
    graph: str, workers: int, concurrency: int, jobs: int, progress: Progress
) -> Measured:
    """The ceiling: the graph called in ``workers`` plain processes, ``concurrency`` in flight."""
    tally = Tally()
    context = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(
        workers, mp_context=context, initializer=_load_graph, initargs=(graph,)
    ) as pool:
        list(pool.map(_call_graph, [{"n": 1}] * workers * 2))  # start and warm every process
        cpu_before = cpu_seconds(os.getpid())
        started_at: dict[cf.Future[Any], float] = {}
        submitted = 0
        began = progress.started = time.perf_counter()
        while submitted < jobs or started_at:
            while len(started_at) < concurrency and submitted < jobs:
                started_at[pool.submit(_call_graph, {"n": 1})] = time.perf_counter()
                submitted += 1
            done, _ = cf.wait(started_at, return_when=cf.FIRST_COMPLETED)
            for future in done:
                started = started_at.pop(future)
                tally.record("completed" if future.exception() is None else "failed", started)
                progress.advance()
        elapsed = time.perf_counter() - began
        cpu = cpu_seconds(os.getpid()) - cpu_before
    return Measured(tally, elapsed, cpu)
