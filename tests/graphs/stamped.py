"""A graph that notes when each call starts, then raises: a job retried on ``failed`` runs
every attempt it has. {"stamps": PATH} appends the call's ``time.time()`` to the file PATH."""

import time


def graph(input):
    with open(input["stamps"], "a") as stamps:
        stamps.write(f"{time.time()!r}\n")
    raise ValueError("still failing")
