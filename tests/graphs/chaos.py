"""Every kind of job at once, for the soak: the input's "kind" says which.

ok         answer at once            huge       a result past max_result_bytes (2 MB)
unstorable an integer past 64 bits   raise      raise ValueError
crash      the worker process exits  slow       sleep past the job's timeout
child      start `sleep 300`, write its pid to input["pid_file"], answer (leaving it running)
"""

import os
import subprocess
import time


def graph(input):
    kind = input["kind"]
    if kind == "huge":
        return {"text": "x" * 2_000_000}
    if kind == "unstorable":
        return {"n": 2**70}
    if kind == "raise":
        raise ValueError("asked to fail")
    if kind == "crash":
        os._exit(7)
    if kind == "slow":
        time.sleep(30)
    if kind == "child":
        child = subprocess.Popen(["sleep", "300"])
        with open(input["pid_file"], "w") as out:
            out.write(f"{child.pid}\n")
    return {"kind": kind}
