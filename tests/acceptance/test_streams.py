"""Job event streams (``GET /jobs/{id}/events``, ``POST /jobs?stream=true``) over a real
server, real worker processes: order, replay, resume, ends, modes, bounds, heartbeats."""

from __future__ import annotations

import signal
import sys
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from support import (
    Gate,
    cli_server,
    data,
    deadline,
    finished,
    read_events,
    running_server,
    until_running,
)

pytestmark = pytest.mark.usefixtures("both_engine_loops")

STREAMER = "tests/graphs/streamer.py"


async def submit(client: httpx.AsyncClient, job_input: Any, **body: Any) -> str:
    response = await client.post("/jobs", json={"input": job_input, **body})
    assert response.status_code == 202, response.text
    return str(response.json()["jobId"])


async def test_a_stream_gives_the_job_its_events_in_order_then_its_end() -> None:
    async with running_server(STREAMER) as client:
        job_id = await submit(client, {"events": 5})
        await finished(client, job_id)
        events = await read_events(client, f"/jobs/{job_id}/events")
    assert [event.event for event in events] == ["job", "running", *["custom"] * 5, "completed"]
    assert [int(event.id) for event in events] == list(range(8))
    assert data(events[0])["jobId"] == job_id
    assert data(events[1]) == {"attempt": 1, "data": {"status": "running"}}
    assert [data(event) for event in events[2:7]] == [
        {"attempt": 1, "data": {"i": i}} for i in range(5)
    ]
    end = data(events[-1])
    assert end["status"] == "completed"
    assert end["result"] == {"emitted": 5, "kept": 5}
    assert end["droppedEvents"] == 0


async def test_a_stream_opened_while_the_job_runs_follows_it_live(gate: Gate) -> None:
    async with running_server(STREAMER) as client:
        job_id = await submit(client, {"events": 6, "gate": str(gate.path)})
        async with aconnect_sse(client, "GET", f"/jobs/{job_id}/events") as source:
            events = source.aiter_sse()
            seen = [await anext(events) for _ in range(5)]  # job, running, the first half
            assert [event.event for event in seen] == ["job", "running", *["custom"] * 3]
            job = await client.get(f"/jobs/{job_id}")
            assert job.json()["status"] == "running"  # held at the gate, still streaming
            gate.open()
            with deadline(60, "the rest of the stream"):
                seen += [event async for event in events]
    assert [data(event)["data"]["i"] for event in seen if event.event == "custom"] == [*range(6)]
    assert seen[-1].event == "completed"
    assert [int(event.id) for event in seen] == list(range(len(seen)))


async def test_last_event_id_resumes_with_exactly_the_missed_events(gate: Gate) -> None:
    async with running_server(STREAMER) as client:
        job_id = await submit(client, {"events": 10, "gate": str(gate.path)})
        first = await read_events(client, f"/jobs/{job_id}/events", until_id=4)
        assert [int(event.id) for event in first] == [0, 1, 2, 3, 4]
        gate.open()
        rest = await read_events(client, f"/jobs/{job_id}/events", headers={"Last-Event-ID": "4"})
        also = await read_events(client, f"/jobs/{job_id}/events", params={"after": 4})
        whole = await read_events(client, f"/jobs/{job_id}/events")
    assert [int(event.id) for event in rest] == list(range(5, 13))
    # The first connection's events and the resumed one's: the whole stream, once each.
    assert [(e.id, e.event) for e in first + rest] == [(e.id, e.event) for e in whole]
    assert [e.data for e in first[1:] + rest] == [e.data for e in whole[1:]]
    assert [(e.id, e.data) for e in also] == [(e.id, e.data) for e in rest]
    assert rest[-1].event == "completed"


async def test_resuming_after_the_end_ends_at_once_and_a_bad_id_is_refused() -> None:
    async with running_server(STREAMER) as client:
        job_id = await submit(client, {"events": 2})
        await finished(client, job_id)
        whole = await read_events(client, f"/jobs/{job_id}/events")
        end_id = whole[-1].id
        after_end = await client.get(f"/jobs/{job_id}/events", headers={"Last-Event-ID": end_id})
        assert after_end.status_code == 200
        assert after_end.text == ""
        for bad in (str(int(end_id) + 1), "abc", "-1", "1" * 30):
            refused = await client.get(f"/jobs/{job_id}/events", headers={"Last-Event-ID": bad})
            assert refused.status_code == 400, bad
            assert refused.json()["code"] == "invalid_event_id"
            assert refused.json()["detail"][0]["field"] == "Last-Event-ID"
        query = await client.get(f"/jobs/{job_id}/events", params={"after": "x"})
        assert query.status_code == 400
        assert query.json()["detail"][0]["field"] == "after"
        unknown = await client.get("/jobs/00000000-0000-0000-0000-000000000000/events")
        assert unknown.status_code == 404
        assert unknown.headers["content-type"] == "application/json"
        assert unknown.json()["code"] == "job_not_found"


async def test_a_graph_that_raises_mid_stream_ends_failed_with_its_error() -> None:
    async with running_server(STREAMER) as client:
        job_id = await submit(client, {"events": 3, "raise": "no more"})
        events = await read_events(client, f"/jobs/{job_id}/events")
    assert [event.event for event in events][-4:] == ["custom"] * 3 + ["failed"]
    assert data(events[-1])["error"] == {"type": "ValueError", "message": "no more"}


async def test_cancel_mid_stream_ends_the_stream_cancelled(gate: Gate) -> None:
    async with running_server(STREAMER) as client:
        job_id = await submit(client, {"events": 4, "gate": str(gate.path)})
        async with aconnect_sse(client, "GET", f"/jobs/{job_id}/events") as source:
            events = source.aiter_sse()
            seen = [await anext(events) for _ in range(4)]  # job, running, two events
            cancelled = await client.post(f"/jobs/{job_id}/cancel")
            assert cancelled.json()["status"] == "cancelled"
            with deadline(30, "the cancelled end"):
                seen += [event async for event in events]
    assert seen[-1].event == "cancelled"
    assert data(seen[-1])["error"]["type"] == "Cancelled"
    assert [event.event for event in seen[:-1]] == ["job", "running", "custom", "custom"]


async def test_a_retry_continues_the_log_after_the_first_attempts_events(tmp_path: Any) -> None:
    marker = str(tmp_path / "first-attempt-ran")
    async with running_server(STREAMER, max_attempts=2, retry_backoff=0) as client:
        job_id = await submit(client, {"events": 2, "fail_first": marker})
        await finished(client, job_id)
        events = await read_events(client, f"/jobs/{job_id}/events")
    named = [(event.event, data(event).get("attempt")) for event in events[1:-1]]
    assert named == [
        ("running", 1),
        ("custom", 1),
        ("custom", 1),
        ("retrying", 1),
        ("running", 2),
        ("custom", 2),
        ("custom", 2),
    ]
    retrying = data(events[4])["data"]
    assert retrying["error"]["type"] == "WorkerCrashed"
    assert retrying["maxAttempts"] == 2
    assert events[-1].event == "completed"
    assert [int(event.id) for event in events] == list(range(len(events)))


async def test_events_past_max_job_events_are_dropped_and_counted() -> None:
    async with running_server(STREAMER, max_job_events=10) as client:
        job_id = await submit(client, {"events": 50})
        job = await finished(client, job_id)
        events = await read_events(client, f"/jobs/{job_id}/events")
        metrics = (await client.get("/metrics")).text
    kept = [event for event in events if event.event == "custom"]
    end = data(events[-1])
    assert len(events) - 2 <= 10  # the log, without the job and its end
    assert len(kept) + end["droppedEvents"] == 50
    assert job["result"]["kept"] >= len(kept)  # emit said False for those it dropped itself
    assert f"graphnursery_job_events_dropped_total {float(end['droppedEvents'])}" in metrics


async def test_stream_mode_chooses_the_events_kept() -> None:
    async with running_server(STREAMER) as client:
        named = await submit(client, {"events": 2, "name": "progress"}, streamMode="progress")
        other = await submit(client, {"events": 2}, streamMode=["progress"])
        none = await submit(client, {"events": 2}, streamMode=[])
        for job_id in (named, other, none):
            await finished(client, job_id)
        kinds = {
            job_id: [event.event for event in await read_events(client, f"/jobs/{job_id}/events")]
            for job_id in (named, other, none)
        }
        malformed = await client.post("/jobs", json={"input": {}, "streamMode": "a b"})
        wrong_type = await client.post("/jobs", json={"input": {}, "streamMode": 3})
    assert kinds[named] == ["job", "running", "progress", "progress", "completed"]
    assert kinds[other] == kinds[none] == ["job", "running", "completed"]
    assert malformed.status_code == 400
    assert malformed.json()["detail"][0]["field"].startswith("streamMode")
    assert wrong_type.status_code == 400


async def test_submit_and_stream_in_one_request() -> None:
    async with running_server(STREAMER) as client:
        async with aconnect_sse(
            client, "POST", "/jobs", params={"stream": "true"}, json={"input": {"events": 3}}
        ) as source:
            assert source.response.status_code == 200
            location = source.response.headers["location"]
            job_path = source.response.headers["content-location"]
            with deadline(30, "the streamed submit"):
                events = [event async for event in source.aiter_sse()]
        assert location == f"{job_path}/events"
        assert [event.event for event in events] == ["job", "running", *["custom"] * 3, "completed"]
        assert data(events[0])["status"] == "queued"
        replay = await read_events(client, location)
        seed = await read_events(
            client,
            "/execute",
            method="POST",
            params={"stream": "1"},
            json={"messages": [{"role": "user", "content": "hi"}], "streamMode": []},
        )
        bad = await client.post("/jobs", params={"stream": "maybe"}, json={"input": {}})
    # The replay's first event is the job as it is now; the log and the end are the same.
    assert [(e.id, e.event) for e in replay] == [(e.id, e.event) for e in events]
    assert [e.data for e in replay[1:]] == [e.data for e in events[1:]]
    assert [event.event for event in seed] == ["job", "running", "completed"]
    assert bad.status_code == 400


async def test_stream_headers_and_heartbeats(gate: Gate) -> None:
    async with running_server(STREAMER, stream_heartbeat=0.1) as client:
        job_id = await submit(client, {"gate": str(gate.path)})
        await until_running(client, job_id)
        async with client.stream("GET", f"/jobs/{job_id}/events") as response:
            assert response.headers["content-type"] == "text/event-stream"
            assert response.headers["cache-control"] == "no-cache"
            assert response.headers["x-accel-buffering"] == "no"
            lines = response.aiter_lines()
            with deadline(30, "a heartbeat"):
                while await anext(lines) != ": heartbeat":
                    pass
                while await anext(lines) != ": heartbeat":  # and another: they go on
                    pass
            gate.open()
            with deadline(30, "the end"):
                rest = [line async for line in lines]
    assert "event: completed" in rest


async def test_api_keys_apply_to_streams() -> None:
    async with running_server(STREAMER, api_key="sekrit") as client:
        response = await client.post(
            "/jobs", json={"input": {"events": 1}}, headers={"Authorization": "Bearer sekrit"}
        )
        job_id = response.json()["jobId"]
        refused = await client.get(f"/jobs/{job_id}/events")
        assert refused.status_code == 401
        submit_refused = await client.post("/jobs?stream=true", json={"input": {}})
        assert submit_refused.status_code == 401
        events = await read_events(
            client, f"/jobs/{job_id}/events", headers={"Authorization": "Bearer sekrit"}
        )
    assert events[-1].event == "completed"


async def test_streams_open_is_measured_and_a_dropped_reader_is_let_go(gate: Gate) -> None:
    async with running_server(STREAMER) as client:
        job_id = await submit(client, {"gate": str(gate.path)})
        await until_running(client, job_id)

        async def streams_open() -> float:
            text = (await client.get("/metrics")).text
            line = next(x for x in text.splitlines() if x.startswith("graphnursery_streams_open"))
            return float(line.split()[-1])

        async with aconnect_sse(client, "GET", f"/jobs/{job_id}/events") as source:
            await anext(source.aiter_sse())
            assert await streams_open() == 1
        with deadline(30, "the dropped stream to close"):
            while await streams_open() != 0:
                pass
        gate.open()
        await finished(client, job_id)
        assert "graphnursery_job_events_total" in (await client.get("/metrics")).text


GENERATORS = "tests/graphs/generators.py"


@pytest.mark.parametrize(
    ("graph", "result"),
    [("graph", {"done": 3}), ("agen", {"step": 2})],
    ids=["sync generator", "async generator"],
)
async def test_a_generator_graph_streams_its_yields(graph: str, result: Any) -> None:
    async with running_server(f"{GENERATORS}:{graph}") as client:
        job_id = await submit(client, {"steps": 3})
        job = await finished(client, job_id)
        events = await read_events(client, f"/jobs/{job_id}/events")
    assert job["result"] == result
    values = [data(event)["data"] for event in events if event.event == "values"]
    assert values == [{"step": 0}, {"step": 1}, {"step": 2}]


async def test_sigterm_ends_open_streams_with_their_jobs_end_and_the_server_exits(
    gate: Gate,
) -> None:
    command = [sys.executable, "-m", "graphnursery", "serve", STREAMER, "--port", "0"]
    command += ["--store", "memory://", "--shutdown-grace", "1"]
    async with cli_server(command) as (proc, client):
        job_id = await submit(client, {"events": 4, "gate": str(gate.path)})
        async with aconnect_sse(client, "GET", f"/jobs/{job_id}/events") as source:
            events = source.aiter_sse()
            seen = [await anext(events) for _ in range(4)]  # job, running, two events
            proc.send_signal(signal.SIGTERM)
            with deadline(30, "the stream's end at shutdown"):
                seen += [event async for event in events]
        with deadline(30, "the server to exit"):
            assert await proc.wait() == 0
    assert seen[-1].event == "cancelled"  # the grace ran out: the job was stopped
    assert data(seen[-1])["error"]["message"] == "the server shut down before the job finished"
