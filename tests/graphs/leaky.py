"""A graph that leaks: every call keeps another ~20 MB alive in its worker process."""

import os

_kept = []


def graph(input):
    _kept.append(bytearray(20 * 1024 * 1024))
    return {"pid": os.getpid(), "held_mb": 20 * len(_kept)}
