"""``graphnursery.emit`` and the graphs that stream, called in this process (no event
socket: the events are kept for the reply, as for ``InlineExecutor``)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import trio

from graphnursery import Config, JobStatus, _worker, emit, open_engine
from graphnursery._emit import StreamSpec
from graphnursery._results import ResultNotSerializable
from graphnursery.events import parse_stream_mode
from graphnursery.inline import InlineExecutor

STREAMER = "tests/graphs/streamer.py"


def run(spec: str, job_input: Any, **stream: Any) -> tuple[tuple[Any, ...], list[tuple[str, Any]]]:
    """One job's reply and the events it kept, decoded."""
    _worker.initialize(spec)
    reply = _worker.run_job(job_input, None, StreamSpec("job", 1, **stream))
    return reply, [(name, orjson.loads(data)) for name, data in _worker.take_events()]


def test_emit_outside_a_job_keeps_nothing() -> None:
    assert emit({"x": 1}) is False


@pytest.mark.parametrize("name", ["running", "completed", "job", "", "a b", "x" * 65, "é", 3])
def test_emit_refuses_names_a_stream_cannot_carry_or_the_job_uses(name: Any) -> None:
    with pytest.raises(ValueError, match="name"):
        emit({}, event=name)


def test_a_job_keeps_its_events_in_order() -> None:
    reply, events = run(STREAMER, {"events": 3, "name": "step"})
    assert reply[0] == "ok"
    assert events == [("step", {"i": 0}), ("step", {"i": 1}), ("step", {"i": 2})]
    assert orjson.loads(reply[1]) == {"emitted": 3, "kept": 3}


def test_an_async_graph_emits_as_a_sync_one_does() -> None:
    reply, events = run(f"{STREAMER}:agraph", {"events": 2})
    assert reply[0] == "ok"
    assert events == [("custom", {"i": 0}), ("custom", {"i": 1})]


def test_past_max_events_emit_drops_and_says_so() -> None:
    reply, events = run(STREAMER, {"events": 5}, max_events=2)
    assert len(events) == 2
    assert orjson.loads(reply[1]) == {"emitted": 5, "kept": 2}


def test_stream_modes_choose_the_names_kept() -> None:
    _, kept = run(STREAMER, {"events": 2, "name": "a"}, modes=("a",))
    _, other = run(STREAMER, {"events": 2, "name": "a"}, modes=("b",))
    _, none = run(STREAMER, {"events": 2}, modes=())
    assert [name for name, _ in kept] == ["a", "a"]
    assert other == none == []


def test_data_with_no_json_form_fails_the_job_saying_why() -> None:
    _worker.initialize("examples/echo.py")
    _worker.channel.begin(StreamSpec("job", 1))
    try:
        with pytest.raises(ResultNotSerializable):
            emit({"f": object()})
    finally:
        _worker.channel.end()


@pytest.mark.parametrize(("graph", "result"), [("graph", {"done": 2}), ("agen", {"step": 1})])
def test_a_generator_streams_its_yields_and_its_result_is_its_return_or_last_yield(
    graph: str, result: Any
) -> None:
    reply, events = run(f"tests/graphs/generators.py:{graph}", {"steps": 2})
    assert orjson.loads(reply[1]) == result
    assert events == [("values", {"step": 0}), ("values", {"step": 1})]


def test_stream_mode_accepts_a_name_or_a_list_and_refuses_the_rest() -> None:
    assert parse_stream_mode(None) is None
    assert parse_stream_mode("updates") == ("updates",)
    assert parse_stream_mode(["a", "b", "a"]) == ("a", "b")
    assert parse_stream_mode([]) == ()
    for bad in ([1], "a b", {"a": 1}, 3):
        with pytest.raises(ValueError, match="stream"):
            parse_stream_mode(bad)


async def test_the_engine_logs_an_in_process_graphs_events_before_its_end() -> None:
    config = Config(graph="tests/graphs/generators.py:graph", workers=1, store="memory://")
    async with open_engine(config, executor=InlineExecutor(config.graph)) as engine:
        job = await engine.submit({"steps": 2})
        with engine.following(job.id) as changed:
            with trio.fail_after(10):
                while True:
                    change = changed()
                    found, events = await engine.read_events(job.id, 0, 100)
                    if found.status.is_terminal:
                        break
                    await change.wait()
    assert found.status is JobStatus.COMPLETED
    assert [(e.id, e.attempt, e.event) for e in events] == [
        (1, 1, "running"),
        (2, 1, "values"),
        (3, 1, "values"),
    ]
    assert found.events == 3
