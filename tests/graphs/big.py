"""A graph whose result has the size the input asks for: {"bytes": N} -> a string of N "x"."""


def graph(input):
    return {"text": "x" * input["bytes"]}
