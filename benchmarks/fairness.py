"""``python -m benchmarks.fairness``: how long one workspace waits behind another's backlog.

Issue 18's figure: workspace A queues 2,000 sleep100 jobs (0.1 s each), then B submits 20;
B's p95 wait (``startedAt - createdAt``) must be <= 2 x the job duration. A CLI server
(memory store, 2 workers, API keys for A and B) serves ``tests/graphs/toolbox.py``. B submits
its 20 one after another, each once the one before has ended (``?wait=``), then 20 more at
once (a burst: round-robin gives its last job a wait of about 20 takes). First in, first out,
B's first job would wait behind all 2,000: about 100 s.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from .report import machine, write_results
from .server import start_server

ROOT = Path(__file__).resolve().parents[1]
GRAPH = str(ROOT / "tests" / "graphs" / "toolbox.py") + ":graph"
JOB = {"sleep": 0.1}
KEYS = "key-a=team-a,key-b=team-b"


def waited(job: dict[str, Any]) -> float:
    started = datetime.fromisoformat(job["startedAt"]).timestamp()
    return started - datetime.fromisoformat(job["createdAt"]).timestamp()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def run(backlog: int, jobs: int) -> dict[str, Any]:
    server = start_server(
        GRAPH, workers=2, queue_size=backlog + 2 * jobs + 10, extra=["--api-key", KEYS]
    )
    a = {"Authorization": "Bearer key-a"}
    b = {"Authorization": "Bearer key-b"}
    try:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            for start in range(0, backlog, 1000):
                batch = [{"input": JOB} for _ in range(min(1000, backlog - start))]
                client.post("/jobs/batch", json={"jobs": batch}, headers=a).raise_for_status()
            one_by_one = []
            for _ in range(jobs):
                answer = client.post("/jobs", params={"wait": 60}, json={"input": JOB}, headers=b)
                answer.raise_for_status()
                one_by_one.append(waited(answer.json()))
            burst_ids = [
                job["jobId"]
                for job in client.post(
                    "/jobs/batch", json={"jobs": [{"input": JOB}] * jobs}, headers=b
                ).json()["jobs"]
            ]
            burst = [
                waited(client.get(f"/jobs/{job_id}", params={"wait": 60}, headers=b).json())
                for job_id in burst_ids
            ]
            left = client.get("/stats", headers=a).json()["queued"]
    finally:
        server.stop()
    return {
        "backlog": backlog,
        "jobs": jobs,
        "a_still_queued": left,
        "one_by_one": summary(one_by_one),
        "burst": summary(burst),
    }


def summary(waits: list[float]) -> dict[str, float]:
    return {
        "p50_s": round(statistics.median(waits), 4),
        "p95_s": round(percentile(waits, 0.95), 4),
        "max_s": round(max(waits), 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fairness")
    parser.add_argument("--backlog", type=int, default=2000)
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    print(f"A queues {args.backlog} sleep100 jobs, then B submits {args.jobs}; 2 workers")
    runs = []
    for number in range(args.rounds):
        result = run(args.backlog, args.jobs)
        runs.append(result)
        print(
            f"  round {number}: B one by one p50 {result['one_by_one']['p50_s']:.3f} s, "
            f"p95 {result['one_by_one']['p95_s']:.3f} s, max {result['one_by_one']['max_s']:.3f}"
            f" s; burst p50 {result['burst']['p50_s']:.3f} s, p95 {result['burst']['p95_s']:.3f}"
            f" s; A still queued {result['a_still_queued']}"
        )
    worst = max(r["one_by_one"]["p95_s"] for r in runs)
    print(f"B's p95 wait, one by one: worst {worst:.3f} s (target <= {2 * JOB['sleep']:.1f} s)")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    document = {"machine": machine(ROOT), "runs": runs}
    path = write_results(args.results, f"{stamp}-fairness", document)
    print(f"wrote {path}")
    return 0 if worst <= 2 * JOB["sleep"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
