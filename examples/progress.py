"""A graph that reports its progress as it goes: one ``progress`` event a step, sent with
``graphnursery.emit``. Clients read them with ``stream_run()`` / ``stream()``, or
``GET /jobs/{id}/events``.

graphnursery serve examples/progress.py
"""

from graphnursery import emit


def graph(input: dict) -> dict:
    steps = int(input.get("steps", 3))
    for step in range(1, steps + 1):
        emit({"step": step, "of": steps}, event="progress")
    return {"done": steps}
