"""The smallest graph: answers with the input it was given.

graphnursery serve examples/echo.py
"""


def graph(input: dict) -> dict:
    return {"echo": input}
