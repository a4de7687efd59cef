"""The LangGraph Platform API, through LangGraph's own Python client (``langgraph-sdk``)
against a real server: what works of it so far (issue 19). The SDK's async client is
asyncio's; its sync client runs here on a thread, beside the Trio server."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from langgraph_sdk import get_sync_client

from support import running_server

ECHO = str(Path(__file__).resolve().parents[2] / "examples" / "echo.py")
TOOLBOX = str(Path(__file__).resolve().parents[1] / "graphs" / "toolbox.py")
#: LangGraph's own: its server names a graph's assistant uuid5(this, graph_id).
NAMESPACE_GRAPH = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")


async def sdk(call: Any, *args: Any, **kwargs: Any) -> Any:
    """A sync SDK call, on a thread."""
    return await trio.to_thread.run_sync(lambda: call(*args, **kwargs))


async def test_assistants_are_the_served_graphs() -> None:
    async with running_server(f"echo={ECHO}:graph tools={TOOLBOX}:graph") as http:
        client = get_sync_client(url=str(http.base_url), api_key=None)
        found = await sdk(client.assistants.search)
        assert [a["graph_id"] for a in found] == ["echo", "tools"]
        echo = found[0]
        assert echo["assistant_id"] == str(uuid.uuid5(NAMESPACE_GRAPH, "echo"))
        assert (await sdk(client.assistants.get, echo["assistant_id"]))["graph_id"] == "echo"
        tools = await sdk(client.assistants.get, "tools")
        assert tools["assistant_id"] == found[1]["assistant_id"]

        only = await sdk(client.assistants.search, graph_id="tools")
        assert [a["graph_id"] for a in only] == ["tools"]
        page = await sdk(client.assistants.search, limit=1, response_format="object")
        assert len(page["assistants"]) == 1 and page["next"] == "1"
        rest = await sdk(client.assistants.search, limit=1, offset=1, response_format="object")
        assert rest["assistants"][0]["graph_id"] == "tools" and rest["next"] is None

        with pytest.raises(httpx.HTTPStatusError) as missing:
            await sdk(client.assistants.get, str(uuid.uuid4()))
        assert missing.value.response.status_code == 404

        assert (await http.get("/ok")).json() == {"ok": True}
        assert (await http.get("/info")).json()["flags"]["assistants"] is True


async def test_the_sdk_is_held_to_the_servers_api_keys() -> None:
    async with running_server(ECHO, api_key="key-a=team-a") as http:
        client = get_sync_client(url=str(http.base_url), api_key="key-a")  # as x-api-key
        assert [a["graph_id"] for a in await sdk(client.assistants.search)] == ["echo"]
        stranger = get_sync_client(url=str(http.base_url), api_key="nope")
        with pytest.raises(httpx.HTTPStatusError) as refused:
            await sdk(stranger.assistants.search)
        assert refused.value.response.status_code == 401
        assert (await http.get("/ok")).status_code == 200  # a probe: open


async def test_a_stateless_run_waits_for_the_graphs_output(both_http_paths: None) -> None:
    async with running_server(f"echo={ECHO}:graph tools={TOOLBOX}:graph") as http:
        client = get_sync_client(url=str(http.base_url), api_key=None)
        output = await sdk(client.runs.wait, None, "echo", input={"question": "hi"})
        assert output == {"echo": {"question": "hi"}}
        by_id = str(uuid.uuid5(NAMESPACE_GRAPH, "echo"))
        assert await sdk(client.runs.wait, None, by_id, input=[1, 2]) == {"echo": [1, 2]}

        # A run that fails: the SDK raises what the server said.
        with pytest.raises(Exception, match="ValueError: no"):
            await sdk(client.runs.wait, None, "tools", input={"raise": "no"})
        answer = await http.post(
            "/runs/wait", json={"assistant_id": "tools", "input": {"raise": "no"}}
        )
        assert answer.json()["__error__"] == {"error": "ValueError", "message": "no"}
        assert "Location" not in answer.headers  # a stateless run has no stream to rejoin
        # and the run is a job of its graph
        job = (
            await http.get(answer.headers["Content-Location"].replace("/runs/", "/jobs/"))
        ).json()
        assert job["graph"] == "tools" and job["status"] == "failed"

        missing = await http.post("/runs/wait", json={"assistant_id": "nope", "input": {}})
        assert missing.status_code == 404
        bad = await http.post("/runs/wait", json={"input": {}})
        assert bad.status_code == 400 and bad.json()["detail"][0]["field"] == "assistant_id"


LANGGRAPH = str(Path(__file__).resolve().parents[1] / "graphs" / "lg_stream.py")
ASK = {"messages": [{"role": "user", "content": "stream, please"}]}
REPLY = "tokens stream one by one"  # what the graph's fake chat model answers


async def test_a_stateless_run_streams_as_the_sdk_reads_it() -> None:
    async with running_server(f"chat={LANGGRAPH} tools={TOOLBOX}:graph") as http:
        client = get_sync_client(url=str(http.base_url), api_key=None)

        def collect(**options: Any) -> list[Any]:
            return list(client.runs.stream(None, "chat", input=ASK, **options))

        parts = await trio.to_thread.run_sync(
            lambda: collect(stream_mode=["values", "updates", "messages-tuple"])
        )
        events = [part.event for part in parts]
        assert events[0] == "metadata" and "run_id" in parts[0].data
        assert {"values", "updates", "messages"} <= set(events)
        tokens = [part.data for part in parts if part.event == "messages"]
        assert "".join(message["content"] for message, _ in tokens) == REPLY
        values = [part.data for part in parts if part.event == "values"]
        assert values[-1]["messages"][-1]["content"] == REPLY
        assert "error" not in events

        failing = await trio.to_thread.run_sync(
            lambda: list(client.runs.stream(None, "tools", input={"raise": "no"}))
        )
        assert [part.event for part in failing] == ["metadata", "error"]
        assert failing[-1].data == {"error": "ValueError", "message": "no"}


async def test_an_assistants_graph_and_schemas_are_its_graphs() -> None:
    async with running_server(f"chat={LANGGRAPH} echo={ECHO}:graph") as http:
        client = get_sync_client(url=str(http.base_url), api_key=None)
        drawn = await sdk(client.assistants.get_graph, "chat")
        assert {node["id"] for node in drawn["nodes"]} == {"__start__", "chat", "__end__"}
        assert {(edge["source"], edge["target"]) for edge in drawn["edges"]} == {
            ("__start__", "chat"),
            ("chat", "__end__"),
        }
        schemas = await sdk(client.assistants.get_schemas, "chat")
        assert schemas["graph_id"] == "chat"
        assert "messages" in schemas["input_schema"]["properties"]
        assert "messages" in schemas["state_schema"]["properties"]

        plain = await http.get("/assistants/echo/graph")  # a plain callable: no graph to draw
        assert plain.status_code == 422 and "NotLangGraph" in plain.json()["error"]
