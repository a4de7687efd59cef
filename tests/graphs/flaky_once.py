"""A graph that fails the first ``fail_times`` calls for each ``key`` in its process."""

calls: dict[str, int] = {}


def graph(input):
    key = input["key"]
    calls[key] = calls.get(key, 0) + 1
    if calls[key] <= input.get("fail_times", 1):
        raise ConnectionError(f"upstream hiccup #{calls[key]}")
    return {"calls": calls[key]}
