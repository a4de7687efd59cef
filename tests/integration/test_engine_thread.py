"""The engine in a thread of its own (``engine_thread``), with real worker processes: stopping
it at any moment ends its thread, and a call it can no longer answer raises, never hangs."""

from __future__ import annotations

import sys
import threading

import pytest
import trio

from graphnursery import Config
from graphnursery.engine_thread import EngineThread, open_engine_thread
from graphnursery.errors import ConfigError, EngineClosed
from graphnursery.metrics import Metrics


def engine_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "graphnursery-engine"]


async def test_stopped_while_its_graph_still_loads_the_engine_thread_ends() -> None:
    config = Config(graph="tests/graphs/slow_load.py", workers=1, store="memory://")
    threaded = EngineThread(config, None, Metrics())
    with trio.fail_after(60):  # it waits out the graph's load, then stops
        async with trio.open_nursery() as nursery:
            nursery.start_soon(threaded.run)
            await trio.sleep(0.2)  # the thread has started; the worker is loading the graph
            assert engine_threads()
            nursery.cancel_scope.cancel()
    assert engine_threads() == []


async def test_a_call_after_the_engine_stopped_raises_engine_closed() -> None:
    config = Config(graph="examples/echo.py", workers=1, store="memory://")
    async with open_engine_thread(config) as threaded:
        job = await threaded.submit({"n": 1})
        assert (await threaded.wait(job.id, 30)).result == {"echo": {"n": 1}}
    assert engine_threads() == []
    with trio.fail_after(5), pytest.raises(EngineClosed):
        await threaded.submit({"n": 2})


async def test_the_gil_switch_interval_is_set_while_the_engine_runs_then_put_back() -> None:
    before = sys.getswitchinterval()
    config = Config(
        graph="examples/echo.py", workers=1, store="memory://", gil_switch_interval=0.00025
    )
    async with open_engine_thread(config) as threaded:
        assert sys.getswitchinterval() == pytest.approx(0.00025)
        job = await threaded.submit({"n": 1})
        assert (await threaded.wait(job.id, 30)).status == "completed"
    assert sys.getswitchinterval() == before


def test_a_gil_switch_interval_that_is_not_a_positive_number_is_refused() -> None:
    for bad in (0, -1.0, float("nan"), "fast"):
        with pytest.raises(ConfigError, match="gil_switch_interval"):
            Config(graph="examples/echo.py", gil_switch_interval=bad)
