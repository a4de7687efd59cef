"""A graph that waits 100 ms, like a call to a remote model (an I/O-bound graph)."""

import time

SECONDS = 0.1


def graph(input: dict) -> dict:
    time.sleep(SECONDS)
    return {"slept": SECONDS}
