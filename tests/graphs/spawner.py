"""A graph that starts processes, as agents' shell tools do, to see that none outlives its job.

{"pid_file": P, ...}  start a `sleep 300` (and, with "new_session": true, a second one in a
session of its own, as a daemonising tool does), write their pids to P, one per line; then:
{"sleep": S}   sleep S seconds (to be timed out, cancelled or stopped)
{"crash": N}   the worker process exits at once with code N
otherwise      answer {"pids": [...]} and leave the processes running
"""

import os
import subprocess
import time


def graph(input):
    children = [subprocess.Popen(["sleep", "300"])]
    if input.get("new_session"):
        children.append(subprocess.Popen(["sleep", "300"], start_new_session=True))
    pids = [child.pid for child in children]
    with open(input["pid_file"], "w") as out:
        out.write("\n".join(str(pid) for pid in pids) + "\n")
    if "sleep" in input:
        time.sleep(input["sleep"])
    if "crash" in input:
        os._exit(input["crash"])
    return {"pids": pids}
