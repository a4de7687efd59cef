"""A LangGraph graph served with its stream modes: each chunk one event, the result its
final state (as ``.invoke`` gives it)."""

from __future__ import annotations

import re
from typing import Any

import orjson

from support import finished, read_events, running_server

LANGGRAPH = "tests/graphs/lg_stream.py"
REPLY = "tokens stream one by one"  # what the graph's fake chat model answers
ASK = {"messages": [{"role": "user", "content": "stream, please"}]}


async def stream_of(client: Any, **body: Any) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
    response = await client.post("/jobs", json={"input": ASK, **body})
    job = await finished(client, response.json()["jobId"])
    events = await read_events(client, f"/jobs/{job['jobId']}/events")
    return job, [(e.event, orjson.loads(e.data)["data"]) for e in events[1:-1]]


async def test_default_modes_are_updates_and_custom() -> None:
    async with running_server(LANGGRAPH) as client:
        job, events = await stream_of(client)
    assert [name for name, _ in events if name != "running"] == ["custom", "updates"]
    assert dict(events)["custom"] == {"progress": "thinking"}
    assert dict(events)["updates"]["chat"]["messages"][0]["content"] == REPLY
    messages = job["result"]["messages"]
    assert [(m["type"], m["content"]) for m in messages] == [
        ("human", "stream, please"),
        ("ai", REPLY),
    ]


async def test_messages_mode_gives_one_event_per_token() -> None:
    async with running_server(LANGGRAPH) as client:
        job, events = await stream_of(client, streamMode=["messages"])
    tokens = [data for name, data in events if name == "messages"]
    # GenericFakeChatModel streams each word and each space as a chunk of its own.
    assert len(tokens) == len(re.findall(r"\S+|\s", REPLY))
    assert "".join(message["content"] for message, _ in tokens) == REPLY
    assert all(message["type"] == "AIMessageChunk" for message, _ in tokens)
    assert all(metadata["langgraph_node"] == "chat" for _, metadata in tokens)
    assert {name for name, _ in events} == {"running", "messages"}
    assert job["result"]["messages"][-1]["content"] == REPLY


async def test_values_mode_ends_with_the_result_and_no_modes_means_no_events() -> None:
    async with running_server(LANGGRAPH) as client:
        job, events = await stream_of(client, streamMode="values")
        _, silent = await stream_of(client, streamMode=[])
    values = [data for name, data in events if name == "values"]
    assert len(values) == 2  # the input's state, then the state after the node
    assert values[-1]["messages"] == job["result"]["messages"]
    assert [name for name, _ in silent] == ["running"]


async def test_debug_mode_streams_every_step_and_a_chunk_never_fails_the_job() -> None:
    async with running_server(LANGGRAPH) as client:
        job, events = await stream_of(client, streamMode=["debug", "custom"])
    assert job["status"] == "completed"
    debug = [data for name, data in events if name == "debug"]
    assert {chunk["type"] for chunk in debug} >= {"task", "task_result"}
    assert [data for name, data in events if name == "custom"] == [{"progress": "thinking"}]
