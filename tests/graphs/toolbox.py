"""A test graph whose behaviour the job input chooses, so one worker pool serves many cases.

{"sleep": S}   sleep S seconds first
{"crash": N}   the worker process exits with code N (as a segfault or OOM kill would)
{"raise": M}   raise ValueError(M)
otherwise      answer {"pid": <worker pid>, "input": <input>}
"""

import os
import time


def graph(input):
    if not isinstance(input, dict):
        return {"pid": os.getpid(), "input": input}
    if "sleep" in input:
        time.sleep(input["sleep"])
    if "crash" in input:
        os._exit(input["crash"])
    if "raise" in input:
        raise ValueError(input["raise"])
    return {"pid": os.getpid(), "input": input}
