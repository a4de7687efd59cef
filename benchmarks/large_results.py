"""What one large result costs the server: memory to store it, memory and time to answer it to
several readers at once, and how long ``/health`` waits meanwhile (issue 13).

    python -m benchmarks.large_results [--mb 45] [--readers 6] [--store sqlite|memory|URL]
        [--src DIR]   # run another checkout's code (its src/), for before/after figures

A CLI server (1 worker, ``tests/graphs/big.py``, ``max_result_bytes`` raised above the size)
runs one job whose result is a string of ``--mb`` MB; then ``--readers`` clients GET it at
once while another asks ``/health`` every 20 ms. Server memory is the process's VmHWM (peak)
and VmRSS from ``/proc``, after storing and after the reads. Prints one line and writes JSON
to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
SERVING = re.compile(r"serving .* on (http://\S+?)[, ]")


def mib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) // 1024
    raise LookupError(field)


def measure(size: int, readers: int, store: str, src: str | None) -> dict[str, Any]:
    env = {**os.environ, **({"PYTHONPATH": src} if src else {})}
    command = [sys.executable, "-m", "graphnursery", "serve", "tests/graphs/big.py"]
    command += ["--port", "0", "--workers", "1", "--store", store, "--job-timeout", "300"]
    command += ["--max-result-bytes", str(size * 2), "--log-level", "warning"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        assert server.stdout is not None
        url = next(m.group(1) for line in server.stdout if (m := SERVING.search(line)))
        client = httpx.Client(base_url=url, timeout=600)
        start_rss = mib(server.pid, "VmRSS")
        began = time.monotonic()
        job = client.post("/jobs", params={"wait": 0}, json={"input": {"bytes": size}}).json()
        while client.get("/stats").json()["completed"] < 1:
            time.sleep(0.02)
        stored_s = time.monotonic() - began
        stored = {"peak_mib": mib(server.pid, "VmHWM"), "rss_mib": mib(server.pid, "VmRSS")}

        health: list[float] = []
        stop = threading.Event()

        def probe() -> None:
            while not stop.is_set():
                asked = time.monotonic()
                client.get("/health")
                health.append(time.monotonic() - asked)
                time.sleep(0.02)

        def read() -> None:
            answer = client.get(f"/jobs/{job['jobId']}")
            assert answer.status_code == 200 and len(answer.content) > size, answer.status_code

        prober = threading.Thread(target=probe)
        prober.start()
        began = time.monotonic()
        threads = [threading.Thread(target=read) for _ in range(readers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        read_s = time.monotonic() - began
        stop.set()
        prober.join()
        return {
            "mb": size / 1e6,
            "readers": readers,
            "store": store.split(":")[0],
            "src": src or str(ROOT / "src"),
            "start_rss_mib": start_rss,
            "stored_s": round(stored_s, 2),
            "stored": stored,
            "read_s": round(read_s, 2),
            "read": {"peak_mib": mib(server.pid, "VmHWM"), "rss_mib": mib(server.pid, "VmRSS")},
            "health_max_ms": round(max(health) * 1000),
        }
    finally:
        server.terminate()
        server.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=45)
    parser.add_argument("--readers", type=int, default=6)
    parser.add_argument("--store", default="sqlite")
    parser.add_argument("--src", help="another checkout's src/ directory to run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = {"sqlite": f"sqlite:///{tmp}/big.db", "memory": "memory://"}.get(
            args.store, args.store
        )
        run = measure(int(args.mb * 1e6), args.readers, store, args.src)
    print(
        f"{run['mb']:.0f} MB on {run['store']}: start {run['start_rss_mib']} MiB;"
        f" stored in {run['stored_s']} s, peak {run['stored']['peak_mib']} MiB,"
        f" then {run['stored']['rss_mib']} MiB; {run['readers']} readers in {run['read_s']} s,"
        f" peak {run['read']['peak_mib']} MiB, then {run['read']['rss_mib']} MiB;"
        f" /health at most {run['health_max_ms']} ms"
    )
    results = ROOT / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    (results / f"{stamp}-large-results.json").write_text(json.dumps(run, indent=2) + "\n")


if __name__ == "__main__":
    main()
