"""A graph that takes a while to load (as a model would): 2 s at import, then echoes."""

import time

time.sleep(2)


def graph(input):
    return {"echo": input}
