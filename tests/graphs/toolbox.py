"""A test graph whose behaviour the job input chooses, so one worker pool serves many cases.

{"gate": PATH} wait until the file PATH exists first: the job is held until the test opens
               the gate (``support.Gate``), however slow the machine
{"sleep": S}   sleep S seconds first
{"crash": N}   the worker process exits with code N (as a segfault or OOM kill would)
{"raise": M}   raise ValueError(M)
otherwise      answer {"pid": <worker pid>, "input": <input>}
"""

import os
import time

#: A gate never opened ends its job failed after this long (the test is long gone by then).
GATE_LIMIT = 300.0


def wait_for_gate(path: str) -> None:
    # A file is the gate a test and a spawned worker process can both see; the worker reads it
    # every 10 ms (time in the worker, not in the test: the job ends only once it is open).
    deadline = time.monotonic() + GATE_LIMIT
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the gate {path} was never opened")
        time.sleep(0.01)


def graph(input):
    if not isinstance(input, dict):
        return {"pid": os.getpid(), "input": input}
    if "gate" in input:
        wait_for_gate(input["gate"])
    if "sleep" in input:
        time.sleep(input["sleep"])
    if "crash" in input:
        os._exit(input["crash"])
    if "raise" in input:
        raise ValueError(input["raise"])
    return {"pid": os.getpid(), "input": input}
