"""A graph that starts processes, as agents' shell tools do, to see that none outlives its job.

{"children": N, "pid_file": P, ...}  start N `sleep 300` processes (one of them in a session
of its own, as a daemonising tool does), write their pids to P, one per line; then:
{"sleep": S}   sleep S seconds (to be timed out, cancelled or stopped)
{"crash": 1}   the worker process exits at once
otherwise      answer {"pids": [...]} and leave the processes running
"""

import os
import subprocess
import time


def graph(input):
    children = [subprocess.Popen(["sleep", "300"]) for _ in range(input.get("children", 1))]
    children.append(subprocess.Popen(["sleep", "300"], start_new_session=True))
    pids = [child.pid for child in children]
    with open(input["pid_file"], "w") as out:
        out.write("\n".join(str(pid) for pid in pids) + "\n")
    if "sleep" in input:
        time.sleep(input["sleep"])
    if "crash" in input:
        os._exit(input["crash"])
    return {"pids": pids}
