"""Durable-path throughput: jobs/s through open_engine on each store, with the no-op graph.

    python benchmarks/store_throughput.py [--jobs 5000] [--concurrency 64] [--workers N]
        [--stores memory,sqlite,postgres] [--postgres postgresql://postgres@127.0.0.1/test]

Each of ``concurrency`` tasks submits a job and waits for it to finish, until ``jobs`` are
done; jobs/s is jobs / wall time. The PostgreSQL run uses a fresh schema, dropped after.
Prints the settings and the machine, and writes JSON to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import trio

from graphnursery import Config, JobStatus, open_engine

ROOT = Path(__file__).resolve().parent.parent
GRAPH = str(ROOT / "examples" / "echo.py")


async def measure(store: str, jobs: int, concurrency: int, workers: int) -> dict[str, Any]:
    config = Config(graph=GRAPH, workers=workers, queue_size=max(1000, concurrency), store=store)
    latencies: list[float] = []
    failed = 0
    async with open_engine(config) as engine:
        remaining = jobs

        async def client() -> None:
            nonlocal remaining, failed
            while remaining > 0:
                remaining -= 1
                start = time.perf_counter()
                job = await engine.submit({"n": remaining})
                done = await engine.wait(job.id, 60)
                latencies.append(time.perf_counter() - start)
                failed += done.status is not JobStatus.COMPLETED

        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(concurrency):
                nursery.start_soon(client)
        elapsed = time.perf_counter() - started
        transactions = getattr(engine.store, "transactions", None)
    latencies.sort()
    return {
        "store": store.split("?")[0],
        "jobs": jobs,
        "failed": failed,
        "seconds": round(elapsed, 3),
        "jobs_per_second": round(jobs / elapsed, 1),
        "latency_p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
        "latency_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
        "sqlite_transactions": transactions,
    }


def postgres_schema_url(base: str) -> tuple[str, str]:
    import psycopg

    schema = f"gn_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options={quote(f'-csearch_path={schema}')}", schema


def drop_schema(base: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(base, autocommit=True) as connection:
        connection.execute(f"DROP SCHEMA {schema} CASCADE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--stores", default="memory,sqlite,postgres")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    machine = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "sqlite": sqlite3.sqlite_version,
    }
    settings = {k: v for k, v in vars(args).items() if k != "postgres"}
    print(f"settings: {settings}\nmachine: {machine}", flush=True)
    results = []
    for kind in args.stores.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            schema = None
            if kind == "memory":
                url = "memory://"
            elif kind == "sqlite":
                url = f"sqlite:///{Path(tmp) / 'bench.db'}"
            else:
                url, schema = postgres_schema_url(args.postgres)
            try:
                result = trio.run(measure, url, args.jobs, args.concurrency, args.workers)
            finally:
                if schema is not None:
                    drop_schema(args.postgres, schema)
        print(json.dumps(result), flush=True)
        results.append(result)
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"store_throughput-{time.strftime('%Y%m%dT%H%M%S')}.json"
    report = {"settings": settings, "machine": machine, "results": results}
    path.write_text(json.dumps(report, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
