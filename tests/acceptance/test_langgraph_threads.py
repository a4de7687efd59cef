"""LangGraph threads and their runs, through LangGraph's own Python client
(``langgraph-sdk``) against a real server, its chat graph a real ``StateGraph`` on
LangGraph's checkpointers (tests/graphs/lg_thread.py; no network)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import trio
from langgraph_sdk import get_sync_client
from langgraph_sdk.client import SyncLangGraphClient

from support import deadline, running_server, until

CHAT = str(Path(__file__).resolve().parents[1] / "graphs" / "lg_thread.py")
ECHO = str(Path(__file__).resolve().parents[2] / "examples" / "echo.py")


def say(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def last_reply(values: dict[str, Any]) -> str:
    return str(values["messages"][-1]["content"])


async def sdk(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A sync SDK call, on a thread (its async client is asyncio's)."""
    return await trio.to_thread.run_sync(lambda: call(*args, **kwargs))


@asynccontextmanager
async def chat_server(
    **settings: Any,
) -> AsyncIterator[tuple[SyncLangGraphClient, httpx.AsyncClient]]:
    async with running_server(f"chat={CHAT}", **settings) as http:
        yield get_sync_client(url=str(http.base_url), api_key=None), http


async def test_a_thread_keeps_its_state_across_streamed_and_waited_runs(any_store: str) -> None:
    async with chat_server(store=any_store, workers=2) as (client, http):
        thread = await sdk(client.threads.create, metadata={"user": "ann"})
        tid = thread["thread_id"]
        assert thread["status"] == "idle" and thread["metadata"] == {"user": "ann"}

        parts = await sdk(
            lambda: list(
                client.runs.stream(
                    tid,
                    "chat",
                    input=say("hi"),
                    stream_mode=["values", "updates", "messages-tuple"],
                )
            )
        )
        events = [part.event for part in parts]
        assert events[0] == "metadata" and {"values", "updates", "messages"} <= set(events)
        tokens = "".join(
            message["content"] for message, _ in (p.data for p in parts if p.event == "messages")
        )
        assert tokens == "turn 1: hi"

        # Any worker continues the thread: the checkpoints are the store's, not a process's.
        for turn in range(2, 5):
            values = await sdk(client.runs.wait, tid, "chat", input=say(f"again {turn}"))
            assert last_reply(values) == f"turn {turn}: again {turn}"

        state = await sdk(client.threads.get_state, tid)
        assert [m["content"] for m in state["values"]["messages"]][-2:] == [
            "again 4",
            "turn 4: again 4",
        ]
        assert state["next"] == [] and state["checkpoint"]["thread_id"] == tid
        history = await sdk(client.threads.get_history, tid, limit=3)
        assert len(history) == 3 and history[0]["checkpoint"] == state["checkpoint"]

        kept = await sdk(client.threads.get, tid)
        assert kept["status"] == "idle" and last_reply(kept["values"]) == "turn 4: again 4"
        assert kept["metadata"]["graph_id"] == "chat"
        (assistant,) = await sdk(client.assistants.search, graph_id="chat")
        assert kept["metadata"]["assistant_id"] == assistant["assistant_id"]
        found = await sdk(client.threads.search, metadata={"graph_id": "chat", "user": "ann"})
        assert [t["thread_id"] for t in found] == [tid]
        runs = await sdk(client.runs.list, tid)
        assert len(runs) == 4 and {run["status"] for run in runs} == {"success"}

        # The state, changed as if a node had written it.
        note = {"role": "user", "content": "a note"}
        await sdk(client.threads.update_state, tid, {"messages": [note]}, as_node="chat")
        changed = await sdk(client.threads.get_state, tid)
        assert changed["values"]["messages"][-1]["content"] == "a note"
        assert changed["metadata"]["source"] == "update"

        await sdk(client.threads.update, tid, metadata={"title": "greetings"})
        assert (await sdk(client.threads.get, tid))["metadata"]["title"] == "greetings"
        await sdk(client.threads.delete, tid)
        missing = await http.get(f"/threads/{tid}")
        assert missing.status_code == 404 and missing.json()["code"] == "thread_not_found"
        assert (await http.get(f"/threads/{tid}/runs/{runs[0]['run_id']}")).status_code == 404


async def test_an_interrupt_ends_the_run_and_a_command_resumes_it() -> None:
    async with chat_server() as (client, _):
        tid = (await sdk(client.threads.create))["thread_id"]
        stopped = await sdk(client.runs.wait, tid, "chat", input=say("ask"))
        (interrupt,) = stopped["__interrupt__"]
        assert interrupt["value"] == {"question": "approve?"}
        (run,) = await sdk(client.runs.list, tid)
        assert run["status"] == "interrupted"
        thread = await sdk(client.threads.get, tid)
        assert thread["status"] == "interrupted"
        assert thread["interrupts"][interrupt["id"]][0]["value"] == {"question": "approve?"}
        state = await sdk(client.threads.get_state, tid)
        assert state["next"] == ["chat"] and state["interrupts"][0]["id"] == interrupt["id"]

        resumed = await sdk(client.runs.wait, tid, "chat", command={"resume": "yes"})
        assert last_reply(resumed) == "approved: yes" and "__interrupt__" not in resumed
        assert (await sdk(client.threads.get, tid))["status"] == "idle"

        # A command's update and goto: the state changed, then the node run on it.
        update = {"messages": [{"role": "user", "content": "by command"}]}
        steered = await sdk(
            client.runs.wait, tid, "chat", command={"update": update, "goto": "chat"}
        )
        assert last_reply(steered) == "turn 2: by command"


async def test_a_background_run_is_joined_and_its_stream_resumed_after_a_drop(
    tmp_path: Path,
) -> None:
    gate = tmp_path / "gate"
    async with chat_server() as (client, http):
        tid = (await sdk(client.threads.create))["thread_id"]
        run = await sdk(
            client.runs.create,
            tid,
            "chat",
            input=say(f"gate:{gate}"),
            stream_mode=["messages-tuple", "values"],
            stream_resumable=True,
        )
        assert run["status"] in ("pending", "running") and run["thread_id"] == tid
        assert (await sdk(client.threads.get, tid))["status"] == "busy"

        # A client reads the stream's first events, then its connection drops.
        path = f"/threads/{tid}/runs/{run['run_id']}/stream"
        seen: list[tuple[str, str]] = []
        async with http.stream("GET", path) as response:
            assert response.status_code == 200
            event_id = None
            async for line in response.aiter_lines():
                if line.startswith("id: "):
                    event_id = line.removeprefix("id: ")
                elif line.startswith("event: ") and event_id is not None:
                    seen.append((event_id, line.removeprefix("event: ")))
                    break
        gate.touch()  # the run goes on, and ends, while nobody is connected
        joined = await sdk(client.runs.join, tid, run["run_id"])
        assert last_reply(joined) == f"turn 1: gate:{gate}"

        rest = await sdk(
            lambda: list(client.runs.join_stream(tid, run["run_id"], last_event_id=seen[-1][0]))
        )
        whole = await sdk(lambda: list(client.runs.join_stream(tid, run["run_id"])))
        assert [p.event for p in whole] == ["metadata", seen[-1][1], *(p.event for p in rest)]
        tokens = [p.data[0]["content"] for p in whole if p.event == "messages"]
        assert "".join(tokens) == f"turn 1: gate:{gate}"
        got = await sdk(client.runs.get, tid, run["run_id"])
        assert got["status"] == "success"


async def test_a_busy_thread_takes_a_second_run_as_its_multitask_strategy_says(
    tmp_path: Path,
) -> None:
    async with chat_server(workers=2) as (client, http):

        async def busy_thread(name: str) -> tuple[str, dict[str, Any], Path]:
            gate = tmp_path / name
            tid = (await sdk(client.threads.create))["thread_id"]
            first = await sdk(client.runs.create, tid, "chat", input=say(f"gate:{gate}"))

            async def has_begun() -> bool:  # its input is in the thread's checkpoints
                state = await sdk(client.threads.get_state, tid)
                return bool(state["values"].get("messages"))

            await until(has_begun, "the thread's first run to begin")
            return tid, first, gate

        tid, first, gate = await busy_thread("reject")
        refused = await http.post(
            f"/threads/{tid}/runs",
            json={"assistant_id": "chat", "input": say("no"), "multitask_strategy": "reject"},
        )
        assert refused.status_code == 409 and refused.json()["code"] == "conflict"
        gate.touch()
        assert last_reply(await sdk(client.runs.join, tid, first["run_id"])).startswith("turn 1")

        tid, first, gate = await busy_thread("interrupt")
        second = await sdk(
            client.runs.wait, tid, "chat", input=say("instead"), multitask_strategy="interrupt"
        )
        assert last_reply(second) == "turn 2: instead"  # the first one's input stays in the state
        assert (await sdk(client.runs.get, tid, first["run_id"]))["status"] == "interrupted"

        tid, first, gate = await busy_thread("rollback")
        over = await sdk(
            client.runs.wait, tid, "chat", input=say("over"), multitask_strategy="rollback"
        )
        assert (await http.get(f"/threads/{tid}/runs/{first['run_id']}")).status_code == 404
        # what the first run wrote is undone: its input is not in the state
        assert [m["content"] for m in over["messages"]] == ["over", "turn 1: over"]

        tid, first, gate = await busy_thread("enqueue")
        queued = await sdk(
            client.runs.create, tid, "chat", input=say("next"), multitask_strategy="enqueue"
        )
        with trio.move_on_after(0.5) as waited:  # it waits its turn, though a worker is free
            await http.get(f"/threads/{tid}/runs/{queued['run_id']}/join")
        assert waited.cancelled_caught, "the enqueued run ended before the thread's first one"
        gate.touch()
        after = await sdk(client.runs.join, tid, queued["run_id"])
        replies = [m["content"] for m in after["messages"] if m["type"] == "ai"]
        assert replies == [f"turn 1: gate:{gate}", "turn 2: next"]


async def test_a_run_is_cancelled_and_the_thread_is_idle_again(tmp_path: Path) -> None:
    async with chat_server() as (client, http):
        tid = (await sdk(client.threads.create))["thread_id"]
        run = await sdk(client.runs.create, tid, "chat", input=say(f"gate:{tmp_path / 'never'}"))
        await until(lambda: _status(http, tid, run["run_id"], "running"), "the run to start", 30)
        cancelled = await sdk(client.runs.cancel, tid, run["run_id"], wait=True)
        assert cancelled["status"] == "interrupted"
        assert (await sdk(client.threads.get, tid))["status"] == "idle"
        await sdk(client.runs.delete, tid, run["run_id"])
        assert await sdk(client.runs.list, tid) == []


async def _status(http: httpx.AsyncClient, tid: str, run_id: str, status: str) -> bool:
    return bool((await http.get(f"/threads/{tid}/runs/{run_id}")).json()["status"] == status)


async def test_a_crash_and_a_timeout_are_seen_through_the_sdk() -> None:
    async with chat_server(job_timeout=3) as (client, _):
        tid = (await sdk(client.threads.create))["thread_id"]
        with pytest.raises(Exception, match="WorkerCrashed"):
            await sdk(client.runs.wait, tid, "chat", input=say("crash"))
        (crashed,) = await sdk(client.runs.list, tid)
        assert crashed["status"] == "error"
        assert (await sdk(client.threads.get, tid))["status"] == "error"

        with deadline(30, "the run to time out"), pytest.raises(Exception, match="TimeoutError"):
            await sdk(client.runs.wait, tid, "chat", input=say("hang"))
        newest = (await sdk(client.runs.list, tid))[0]
        assert newest["status"] == "timeout"
        # and the thread goes on
        values = await sdk(client.runs.wait, tid, "chat", input=say("still here"))
        assert last_reply(values).endswith("still here")


async def test_bad_thread_requests_name_the_problem() -> None:
    async with chat_server() as (_, http):
        made = await http.post("/threads", json={"thread_id": "t-1"})
        assert made.status_code == 200
        taken = await http.post("/threads", json={"thread_id": "t-1"})
        assert taken.status_code == 409
        same = await http.post("/threads", json={"thread_id": "t-1", "if_exists": "do_nothing"})
        assert same.json()["thread_id"] == "t-1"
        unknown = await http.post("/threads/nope/runs", json={"assistant_id": "chat"})
        assert unknown.status_code == 404 and unknown.json()["code"] == "thread_not_found"
        created = await http.post(
            "/threads/new-one/runs/wait",
            json={"assistant_id": "chat", "input": say("hi"), "if_not_exists": "create"},
        )
        assert created.status_code == 200 and last_reply(created.json()) == "turn 1: hi"
        bad = await http.post(
            "/threads/t-1/runs", json={"assistant_id": "chat", "multitask_strategy": "sometimes"}
        )
        assert bad.status_code == 400 and bad.json()["detail"][0]["field"] == "multitask_strategy"
        assert (await http.get("/threads/t-1/runs?limit=0")).status_code == 400
        nothing = await http.post("/threads/t-1/state", json={"values": {}})
        assert nothing.status_code == 409  # no run yet: no graph to read the state with


async def test_a_run_waits_after_seconds_and_a_stream_left_with_on_disconnect_cancel_stops(
    any_store: str, tmp_path: Path
) -> None:
    async with chat_server(store=any_store) as (client, http):
        tid = (await sdk(client.threads.create))["thread_id"]
        later = await sdk(client.runs.create, tid, "chat", input=say("later"), after_seconds=1)
        assert later["status"] == "pending"
        assert last_reply(await sdk(client.runs.join, tid, later["run_id"])) == "turn 1: later"
        job = (await http.get(f"/jobs/{later['run_id']}")).json()
        assert job["startedAt"] is not None
        created = datetime.fromisoformat(job["createdAt"])
        assert (datetime.fromisoformat(job["startedAt"]) - created).total_seconds() >= 1

        gate = tmp_path / "never"
        body = {"assistant_id": "chat", "input": say(f"gate:{gate}"), "on_disconnect": "cancel"}
        async with http.stream("POST", f"/threads/{tid}/runs/stream", json=body) as response:
            run_id = response.headers["Content-Location"].rsplit("/", 1)[-1]
            async for line in response.aiter_lines():
                if line.startswith("event: metadata"):
                    break  # and the client goes away
        await until(
            lambda: _status(http, tid, run_id, "interrupted"), "the left run to be cancelled"
        )
        assert (await sdk(client.threads.get, tid))["status"] == "idle"


async def test_breakpoints_subgraph_events_forks_and_wait_heartbeats(
    tmp_path: Path, both_http_paths: None
) -> None:
    graphs = f"chat={CHAT} nested={CHAT}:nested"
    async with running_server(graphs, stream_heartbeat=0.2) as http:
        client = get_sync_client(url=str(http.base_url), api_key=None)
        tid = (await sdk(client.threads.create))["thread_id"]

        # A breakpoint before the node: the run stops there; a run with no input goes on.
        held = await sdk(client.runs.wait, tid, "chat", input=say("hi"), interrupt_before=["chat"])
        assert held["__interrupt__"] == [] and len(held["messages"]) == 1
        assert (await sdk(client.threads.get_state, tid))["next"] == ["chat"]
        assert (await sdk(client.runs.list, tid))[0]["status"] == "interrupted"
        assert last_reply(await sdk(client.runs.wait, tid, "chat", input=None)) == "turn 1: hi"
        await sdk(client.runs.wait, tid, "chat", input=say("two"))

        # A run from an earlier checkpoint forks the thread there.
        history = await sdk(client.threads.get_history, tid, limit=20)
        (after_one,) = [
            state
            for state in history
            if len(state["values"].get("messages", [])) == 2 and not state["next"]
        ]
        forked = await sdk(
            client.runs.wait,
            tid,
            "chat",
            input=say("fork"),
            checkpoint_id=after_one["checkpoint"]["checkpoint_id"],
        )
        contents = [message["content"] for message in forked["messages"]]
        assert contents == ["hi", "turn 1: hi", "fork", "turn 2: fork"]

        # A subgraph's events, under their mode and namespace.
        parts = await sdk(
            lambda: list(
                client.runs.stream(
                    None, "nested", input=say("deep"), stream_mode="updates", stream_subgraphs=True
                )
            )
        )
        names = [part.event for part in parts]
        assert "updates" in names
        assert any(name.startswith("updates|inner:") for name in names), names

        # /wait sends newlines while the run goes on, then its output.
        gate = tmp_path / "gate"
        body = {"assistant_id": "chat", "input": say(f"gate:{gate}")}
        async with http.stream("POST", f"/threads/{tid}/runs/wait", json=body) as response:
            assert response.headers["Location"].endswith("/stream")
            chunks = response.aiter_bytes()
            assert (await chunks.__anext__()).strip() == b""  # a heartbeat, before any output
            gate.touch()
            rest = b"".join([chunk async for chunk in chunks])
        assert last_reply(orjson.loads(rest)).endswith(f"gate:{gate}")


async def test_a_workspaces_threads_and_runs_are_its_own() -> None:
    keys = "key-a=team-a,key-b=team-b"
    async with running_server(f"chat={CHAT}", api_key=keys) as http:
        a = get_sync_client(url=str(http.base_url), api_key="key-a")
        b = get_sync_client(url=str(http.base_url), api_key="key-b")
        tid = (await sdk(a.threads.create, metadata={"team": "a"}))["thread_id"]
        values = await sdk(a.runs.wait, tid, "chat", input=say("mine"))
        assert last_reply(values) == "turn 1: mine"
        run_id = (await sdk(a.runs.list, tid))[0]["run_id"]
        for call, args in (
            (b.threads.get, (tid,)),
            (b.threads.get_state, (tid,)),
            (b.runs.list, (tid,)),
            (b.runs.get, (tid, run_id)),
        ):
            with pytest.raises(httpx.HTTPStatusError) as hidden:
                await sdk(call, *args)
            assert hidden.value.response.status_code == 404
        with pytest.raises(httpx.HTTPStatusError) as refused:
            await sdk(b.runs.wait, tid, "chat", input=say("theirs"))
        assert refused.value.response.status_code == 404
        assert await sdk(b.threads.search) == []
        assert [t["thread_id"] for t in await sdk(a.threads.search)] == [tid]


async def test_a_graph_compiled_with_its_own_checkpointer_keeps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = tmp_path / "own.sqlite"
    monkeypatch.setenv("GN_TEST_OWN_CHECKPOINTS", str(own))  # the workers inherit it
    graph = Path(CHAT).with_name("lg_own_saver.py")
    async with running_server(f"chat={graph}") as http:
        client = get_sync_client(url=str(http.base_url), api_key=None)
        tid = (await sdk(client.threads.create))["thread_id"]
        await sdk(client.runs.wait, tid, "chat", input=say("one"))
        values = await sdk(client.runs.wait, tid, "chat", input=say("two"))
        assert last_reply(values) == "turn 2: two"
        state = await sdk(client.threads.get_state, tid)
        kept = sqlite3.connect(own).execute(
            "SELECT checkpoint_id FROM checkpoints WHERE thread_id = ?", (tid,)
        )
        assert state["checkpoint"]["checkpoint_id"] in {row[0] for row in kept}


async def test_a_plain_graphs_thread_keeps_its_last_values() -> None:
    async with running_server(f"echo={ECHO}:graph") as http:
        client = get_sync_client(url=str(http.base_url), api_key=None)
        tid = (await sdk(client.threads.create))["thread_id"]
        assert await sdk(client.runs.wait, tid, "echo", input={"n": 1}) == {"echo": {"n": 1}}
        state = await sdk(client.threads.get_state, tid)  # no checkpoints: the last values
        assert state["values"] == {"echo": {"n": 1}} and state["next"] == []
        assert (await sdk(client.threads.get, tid))["values"] == {"echo": {"n": 1}}
        await sdk(client.threads.delete, tid)
        assert (await http.get(f"/threads/{tid}")).status_code == 404


async def test_a_run_stream_beats_every_five_seconds_at_most(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    async with running_server(f"chat={CHAT}", stream_heartbeat=600) as http:
        body = {"assistant_id": "chat", "input": say(f"gate:{gate}")}
        with deadline(15, "a heartbeat on the run's stream"):
            async with http.stream("POST", "/runs/stream", json=body) as response:
                lines = response.aiter_lines()
                async for line in lines:
                    if line.startswith(": heartbeat"):
                        break  # though stream_heartbeat says 600 s: LangGraph's clients
                gate.touch()  # count on one at least every 5 s
                assert "event: values" in [line async for line in lines]


async def test_a_result_that_only_mentions_interrupts_is_a_success() -> None:
    identity = Path(CHAT).with_name("identity.py")
    async with running_server(f"same={identity}") as http:
        client = get_sync_client(url=str(http.base_url), api_key=None)
        tid = (await sdk(client.threads.create))["thread_id"]
        words = ["__interrupt__", "is just a word here"]
        assert await sdk(client.runs.wait, tid, "same", input=words) == words
        (run,) = await sdk(client.runs.list, tid)
        assert run["status"] == "success"
        assert (await sdk(client.threads.get, tid))["status"] == "idle"
