"""A test graph answering what JSON (or a job store) cannot keep, the input choosing what.

{"answer": "big int"}        {"r": 2**70}, an integer past 64 bits
{"answer": "surrogate"}      "\\ud800", a string with a lone surrogate
{"answer": "surrogate key"}  {"\\ud800": 1}, a key with one
{"answer": "nul"}            "a\\x00b", a string with a NUL (JSON keeps it)
{"raise": "nul"}             raise ValueError with a NUL in its message
"""

ANSWERS = {
    "big int": {"r": 2**70},
    "surrogate": "\ud800",
    "surrogate key": {"\ud800": 1},
    "nul": "a\x00b",
}


def graph(input):
    if input.get("raise") == "nul":
        raise ValueError("bad\x00byte")
    return ANSWERS[input["answer"]]
