"""Streams over durable stores, real CLI servers: a SIGKILLed server's stream resumes on
the restarted one (SQLite); a stream on one replica follows a job running on another
(PostgreSQL); a reader that stops reading costs the server no memory past the log's bound."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from httpx_sse import aconnect_sse

from procs import rss_kib
from support import Gate, data, deadline, finished, read_events, until_running
from support import cli_server as server

STREAMER = "tests/graphs/streamer.py"


def serve_command(store: str, *flags: str) -> list[str]:
    command = [sys.executable, "-m", "graphnursery", "serve", STREAMER, "--port", "0"]
    return [*command, "--store", store, *flags]


async def test_sqlite_a_killed_servers_stream_resumes_on_the_restarted_one(
    tmp_path: Path, gate: Gate
) -> None:
    # Two attempts: the kill interrupts the first, the restarted server runs the second.
    command = serve_command(f"sqlite:///{tmp_path / 'jobs.db'}", "--max-attempts", "2")
    async with server(command) as (proc, client):
        response = await client.post("/jobs", json={"input": {"events": 6, "gate": str(gate.path)}})
        job_id = response.json()["jobId"]
        # job, running, the three events before the gate
        first = await read_events(client, f"/jobs/{job_id}/events", until_id=4)
        proc.kill()
        await proc.wait()
    gate.open()
    async with server(command) as (_, client):
        rest = await read_events(
            client, f"/jobs/{job_id}/events", headers={"Last-Event-ID": first[-1].id}
        )
        whole = await read_events(client, f"/jobs/{job_id}/events")
    assert [e.event for e in first] == ["job", "running", "custom", "custom", "custom"]
    assert [int(e.id) for e in rest] == list(range(5, 5 + len(rest)))
    assert [(e.event, data(e)["attempt"]) for e in rest[:-1]] == [
        ("running", 2),
        *[("custom", 2)] * 6,
    ]
    assert rest[-1].event == "completed"
    assert data(rest[-1])["attempts"] == 2
    assert [(e.id, e.event) for e in whole[1:]] == [(e.id, e.event) for e in first[1:] + rest]


async def test_postgres_a_stream_on_one_replica_follows_a_job_running_on_another(
    postgres_url: str, gate: Gate
) -> None:
    command = serve_command(postgres_url, "--workers", "1")
    async with server(command) as (_, client_a):
        response = await client_a.post(
            "/jobs", json={"input": {"events": 6, "gate": str(gate.path)}}
        )
        job_id = response.json()["jobId"]
        await until_running(client_a, job_id)
        # b started once the job runs on a: it can only follow it. A minute between
        # heartbeats: what wakes b's stream is a's notices, never a timer.
        later = serve_command(postgres_url, "--workers", "1", "--stream-heartbeat", "60")
        async with server(later) as (_, client_b):
            with deadline(30, "the stream on the other replica"):
                async with aconnect_sse(client_b, "GET", f"/jobs/{job_id}/events") as source:
                    events = source.aiter_sse()
                    seen = [await anext(events) for _ in range(5)]
                    gate.open()
                    seen += [event async for event in events]
            ran_on_a = (await client_a.get(f"/jobs/{job_id}")).json()
    assert [e.event for e in seen] == ["job", "running", *["custom"] * 6, "completed"]
    assert [data(e)["data"]["i"] for e in seen if e.event == "custom"] == [*range(6)]
    assert data(seen[-1])["result"] == ran_on_a["result"]


async def test_a_reader_that_stops_reading_costs_no_memory_past_the_logs_bound(
    gate: Gate,
) -> None:
    bound, events, size = 1000, 40_000, 1000  # 40 MB emitted, 1 MB kept
    command = serve_command("memory://", "--max-job-events", str(bound))
    async with server(command) as (proc, client):
        job = {"events": events, "size": size, "gate": str(gate.path)}
        job_id = (await client.post("/jobs", json={"input": job})).json()["jobId"]
        await until_running(client, job_id)
        host, port = client.base_url.host, client.base_url.port
        assert port is not None
        stalled = socket.create_connection((host, port))
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        try:
            stalled.sendall(f"GET /jobs/{job_id}/events HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            before = rss_kib(proc.pid)
            gate.open()
            done = await finished(client, job_id, wait=120)
            after = rss_kib(proc.pid)
        finally:
            stalled.close()
    assert done["status"] == "completed"
    assert done["result"]["emitted"] == events
    grown_mb = (after - before) / 1024
    assert grown_mb < 20, f"the server grew by {grown_mb:.1f} MB for a reader that never read"


async def test_sqlite_a_graph_that_emits_faster_than_the_store_writes_loses_no_event(
    tmp_path: Path,
) -> None:
    # No bound on the log: each event must be kept, however far the graph gets ahead (its
    # emit calls wait for the store rather than the events piling up in the server).
    count = 30_000
    command = serve_command(f"sqlite:///{tmp_path / 'jobs.db'}", "--max-job-events", "0")
    async with server(command) as (_, client):
        response = await client.post("/jobs", json={"input": {"events": count, "size": 200}})
        job_id = response.json()["jobId"]
        job = await finished(client, job_id, wait=120)
        events = await read_events(client, f"/jobs/{job_id}/events")
    assert job["result"] == {"emitted": count, "kept": count}
    assert [data(e)["data"]["i"] for e in events if e.event == "custom"] == list(range(count))
    assert data(events[-1])["droppedEvents"] == 0
