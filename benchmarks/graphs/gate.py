"""Benchmark graph for the backlog scenario: returns at once, unless the input names a gate.

``{"gate": "/path"}`` holds the worker until that file exists (at most an hour), so the
harness can keep every worker busy while it fills the queue, then release them.
"""

import os
import time

LIMIT_SECONDS = 3600.0


def graph(input: dict[str, object]) -> dict[str, bool]:
    gate = input.get("gate") if isinstance(input, dict) else None
    if gate:
        deadline = time.monotonic() + LIMIT_SECONDS
        while not os.path.exists(str(gate)) and time.monotonic() < deadline:
            time.sleep(0.02)
    return {"ok": True}
