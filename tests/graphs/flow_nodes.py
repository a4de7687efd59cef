"""Node functions for the flow tests (``tests/unit/test_flows.py``), named as node types
``graphs.flow_nodes:<name>`` (the tests directory is on ``sys.path``)."""

import asyncio

#: Calls so far per ``config["key"]``, for :func:`flaky`.
calls: dict[str, int] = {}

not_callable = 42


def noop(value):
    return value


def double(value):
    return value * 2


def add(value, config):
    return value + config.get("add", 1)


def tag(value, config):
    return {"tag": config["tag"], "input": value}


def classify(value):
    return {"size": "big" if value > 10 else "small", "value": value}


def boom(value):
    raise ValueError(f"boom on {value!r}")


def flaky(value, config):
    """Fails the first ``config["fail_times"]`` (default 1) calls for ``config["key"]``."""
    key = config["key"]
    calls[key] = calls.get(key, 0) + 1
    if calls[key] <= config.get("fail_times", 1):
        raise ConnectionError(f"hiccup #{calls[key]}")
    return {"calls": calls[key], "input": value}


async def sleep(value, config):
    """Sleeps ``config["seconds"]``, then answers its input."""
    await asyncio.sleep(config["seconds"])
    return value


async def async_double(value):
    await asyncio.sleep(0)
    return value * 2


async def async_boom(value, config):
    await asyncio.sleep(config.get("after", 0))
    raise RuntimeError("async boom")


def returns_coroutine(value):
    return async_double(value)


class AsyncCallable:
    async def __call__(self, value):
        await asyncio.sleep(0)
        return {"called": value}


async_callable = AsyncCallable()


def no_arguments():
    return None


def too_many(value, config, extra):
    return value


def generator(value):
    yield value
