"""A graph whose worker process dies mid-job (as a segfault or an OOM kill would).

The job ends `crashed`, the pool replaces the process, and the next job runs.
"""

import os


def graph(input: dict) -> dict:
    os._exit(3)
