"""What a graph's call streams, in the worker: generators' yields, LangGraph's stream modes.

- A generator graph (sync or async) streams each value it yields as a ``values`` event;
  its ``return`` value, or else the last value it yielded, is the job's result.
- A LangGraph graph is run with ``.stream`` in the stream modes the job asks for (default
  ``updates`` and ``custom``), each chunk one event named by its mode; its result is the
  final state, as ``.invoke`` gives it (interrupts included).
- Anything the graph itself sends with :func:`graphnursery.emit` goes out as it is sent.

No Trio, no Quart: this runs in the worker processes (``_worker``).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import orjson

from ._emit import channel
from ._results import ResultNotSerializable, encode_result
from .events import LANGGRAPH_DEFAULT, LANGGRAPH_MODES

#: LangGraph's key for the interrupts in a run's final state (``langgraph.constants``).
INTERRUPT = "__interrupt__"


def is_langgraph(graph: Any) -> bool:
    """A compiled LangGraph graph (a ``Pregel``), told without importing LangGraph."""
    return any(
        cls.__name__ == "Pregel" and cls.__module__.startswith("langgraph.")
        for cls in type(graph).__mro__
    )


def langgraph_caller(
    graph: Any,
    modes: tuple[str, ...] | None,
    run: dict[str, Any] | None = None,
    checkpoints: str = "",
) -> Callable[[Any], Any]:
    """Call ``graph`` as ``.invoke`` would, streaming the chunks of ``modes`` meanwhile;
    as a LangGraph API run when ``run`` gives its options (see ``_threads``), on a thread's
    checkpoints at ``checkpoints``."""
    wanted = langgraph_modes(modes)

    if run is not None:
        from . import _threads  # LangGraph API runs: threads, configs, commands

        return _threads.caller(graph, wanted, run, checkpoints)
    return lambda job_input: stream_langgraph(graph, job_input, wanted, {})


def langgraph_modes(modes: tuple[str, ...] | None) -> list[str]:
    asked = LANGGRAPH_DEFAULT if modes is None else modes
    return [mode for mode in LANGGRAPH_MODES if mode in asked]


def stream_langgraph(graph: Any, job_input: Any, wanted: list[str], options: dict[str, Any]) -> Any:
    """Run ``graph`` with ``.stream`` (``options``: its config, interrupts, subgraphs...),
    each chunk of a ``wanted`` mode an event (``mode|namespace`` for a subgraph's); the
    last ``values`` chunk, with the interrupts the run stopped at."""
    latest: Any = None
    interrupts: list[Any] = []
    stream_mode = list(dict.fromkeys([*wanted, "updates", "values"]))
    subgraphs = bool(options.get("subgraphs"))
    for part in graph.stream(job_input, stream_mode=stream_mode, **options):
        namespace, mode, chunk = part if subgraphs else ((), *part)
        if namespace:
            if mode in wanted:
                send_chunk(f"{mode}|{'|'.join(namespace)}", chunk)
            continue
        if mode == "values":
            latest = chunk
        elif mode == "updates" and isinstance(chunk, dict) and INTERRUPT in chunk:
            interrupts.extend(chunk[INTERRUPT])
        if mode in wanted:
            send_chunk(mode, chunk)
    if interrupts:
        base = latest if isinstance(latest, dict) else {}
        return {**base, INTERRUPT: interrupts}
    return latest


def resolve(result: Any, loop: Callable[[], asyncio.AbstractEventLoop]) -> Any:
    """The job's result from what calling the graph returned: awaited, or a generator
    run to its end (each yield streamed)."""
    if inspect.isgenerator(result):
        return _drain(result)
    if inspect.isasyncgen(result):
        return loop().run_until_complete(_drain_async(result))
    if inspect.isawaitable(result):
        return loop().run_until_complete(_as_coroutine(result))
    return result


def _drain(generator: Iterator[Any]) -> Any:
    last = None
    while True:
        try:
            value = next(generator)
        except StopIteration as stop:
            return last if stop.value is None else stop.value
        last = value
        if channel.wants("values"):
            channel.send("values", encode_result(value))


async def _drain_async(generator: AsyncIterator[Any]) -> Any:
    last = None
    async for value in generator:
        last = value
        if channel.wants("values"):
            channel.send("values", encode_result(value))
    return last


def send_chunk(mode: str, chunk: Any) -> None:
    """One LangGraph chunk as an event. What has no JSON form in it (a callback in a
    ``debug`` chunk's config, say) is sent as its ``repr``: a chunk never fails the job."""
    try:
        data = encode_result(chunk)
    except ResultNotSerializable:
        data = orjson.dumps(chunk, default=_loose)
    channel.send(mode, data)


def _loose(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        try:
            return dump(mode="json")
        except Exception:
            pass
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    return repr(value)


async def _as_coroutine(awaitable: Any) -> Any:
    return await awaitable
