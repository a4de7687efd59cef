"""A test graph that streams events, as its input says (see ``graphnursery.emit``).

{"events": N}       emit N events {"i": i} (``"size": B`` pads each with B characters,
                    ``"name": E`` names them E instead of "custom", ``"stamp": true``
                    adds the wall clock, for latency), then answer {"emitted": N, "kept": K}
{"gate": PATH}      after the first half of the events, wait until the file PATH exists
{"raise": M}        after the events, raise ValueError(M)
{"crash": C}        after the events, the worker process exits with code C
{"fail_first": P}   the first attempt (the file P does not exist yet: it is made) crashes
                    after its events; the next completes
{"sleep": S}        after the events, sleep S seconds
"""

import os
import time

from graphnursery import emit

GATE_LIMIT = 300.0


def _wait_for(path: str) -> None:
    deadline = time.monotonic() + GATE_LIMIT
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the gate {path} was never opened")
        time.sleep(0.01)


def graph(input):
    count = int(input.get("events", 0))
    name = input.get("name", "custom")
    pad = "x" * int(input.get("size", 0))
    kept = 0
    for i in range(count):
        if "gate" in input and i == count // 2:
            _wait_for(input["gate"])
        data = {"i": i, "pad": pad} if pad else {"i": i}
        if input.get("stamp"):
            data["t"] = time.time()
        kept += emit(data, event=name)
    if "gate" in input and count == 0:
        _wait_for(input["gate"])
    if "sleep" in input:
        time.sleep(input["sleep"])
    if "raise" in input:
        raise ValueError(input["raise"])
    if "crash" in input:
        os._exit(input["crash"])
    if "fail_first" in input and not os.path.exists(input["fail_first"]):
        open(input["fail_first"], "w").close()
        os._exit(3)
    return {"emitted": count, "kept": kept}


async def agraph(input):
    """The same from async code: {"events": N} emits N events {"i": i} from a coroutine."""
    for i in range(int(input.get("events", 0))):
        emit({"i": i})
    return {"emitted": input.get("events", 0)}
