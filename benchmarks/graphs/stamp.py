"""Benchmark graph for ``benchmarks.worker_gaps``: sleeps like ``examples/sleep.py`` and says
which process ran it and when (wall clock), so the idle time between a worker's jobs can be
read back from the results."""

import os
import time

SECONDS = 0.1


def graph(input: object) -> dict[str, float]:
    started = time.time()
    time.sleep(SECONDS)
    return {"pid": os.getpid(), "started": started, "ended": time.time()}
