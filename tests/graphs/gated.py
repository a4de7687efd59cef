"""A test graph that holds each job until the test opens its gate.

{"gate": PATH}   wait until the file PATH exists, then answer {"gate": PATH}
otherwise        answer the input
"""

import os
import time

#: A gate never opened fails its job after this long (the test is long gone by then).
GATE_LIMIT = 300.0


def graph(input):
    if isinstance(input, dict) and "gate" in input:
        # A file is what the test and a spawned worker process can both see.
        deadline = time.monotonic() + GATE_LIMIT
        while not os.path.exists(input["gate"]):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the gate {input['gate']} was never opened")
            time.sleep(0.01)
    return input
