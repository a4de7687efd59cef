"""Fault probes the server held under (issue 13): keep them holding.

Bad JSON of every kind, oversized request heads, floods of idle and slowloris connections,
and a SIGKILL with thousands of jobs queued. Each probe ends with a good job still served.

Hypercorn answers what never reaches the app (a request head it cannot parse: 400, one
over ``h11_max_incomplete_size``, 16 KB: 431) itself, with an empty body: its
``H11Protocol._send_error_response`` writes ``content-length: 0`` and the end of the
message, with no hook for a body short of monkeypatching hypercorn. What we control, and
test, is that such a connection is answered and closed, and the server serves on.
"""

from __future__ import annotations

import resource
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from support import Gate, cli_server, finished, read_to_close, running_server

TOOLBOX = "tests/graphs/toolbox.py"
JSON = {"content-type": "application/json"}

#: Each a body and the code it is refused with (always a 400).
BAD_BODIES: dict[str, tuple[bytes, str]] = {
    "truncated": (b'{"input": {"n": 1', "malformed_json"),
    "invalid UTF-8": (b'{"input": "\xff\xfe"}', "malformed_json"),
    "NaN": (b'{"input": NaN}', "malformed_json"),
    "Infinity": (b'{"input": {"x": Infinity}}', "malformed_json"),
    "NaN timeout": (b'{"input": 1, "timeoutSeconds": NaN}', "malformed_json"),
    "100k levels deep": (b'{"input": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "malformed_json"),
    "100k-digit number": (b'{"input": ' + b"9" * 100_000 + b"}", "malformed_json"),
    "trailing garbage": (b'{"input": 1} x', "malformed_json"),
    "only whitespace": (b"  \r\n ", "malformed_json"),
    "an array": (b'[{"input": 1}]', "invalid_body"),
    "a string": (b'"input"', "invalid_body"),
    "null": (b"null", "invalid_body"),
    "empty": (b"", "invalid_body"),
}
#: A body sent as what its content-type says, not JSON. (The content-type itself is not
#: checked: a JSON body is read as JSON whatever it says, as ``curl -d`` sends form type.)
WRONG_TYPE_BODIES: dict[str, bytes] = {
    "application/x-www-form-urlencoded": b"input=1&timeoutSeconds=2",
    "multipart/form-data; boundary=b": b'--b\r\nContent-Disposition: form-data; name="input"'
    b"\r\n\r\n1\r\n--b--\r\n",
    "text/plain": b"hello",
}
SUBMIT_ROUTES = ["/jobs", "/execute", "/jobs/batch"]


def assert_json_error(response: httpx.Response, status: int, code: str, what: str) -> None:
    assert response.status_code == status, (what, response.status_code, response.text)
    assert response.headers["content-type"] == "application/json", what
    body = response.json()
    assert body["code"] == code, (what, body)
    assert isinstance(body["error"], str) and body["error"], (what, body)


@pytest.mark.usefixtures("both_http_paths")
async def test_bad_json_of_every_kind_is_a_json_400_and_a_good_job_runs_after() -> None:
    async with running_server(TOOLBOX) as client:
        for route in SUBMIT_ROUTES:
            for name, (body, code) in BAD_BODIES.items():
                response = await client.post(route, content=body, headers=JSON)
                assert_json_error(response, 400, code, f"{route}: {name}")
            for content_type, body in WRONG_TYPE_BODIES.items():
                response = await client.post(
                    route, content=body, headers={"content-type": content_type}
                )
                assert_json_error(response, 400, "malformed_json", f"{route}: {content_type}")
        assert (await client.get("/stats")).json()["total"] == 0  # nothing was submitted
        ok = await client.post("/jobs", params={"wait": 30}, json={"input": {"n": 1}})
        assert ok.status_code == 200 and ok.json()["status"] == "completed"


def status_of(head: bytes) -> int:
    return int(head.split(b" ", 2)[1])


OVERSIZED_HEADS = {
    "a 100 KB request line": b"GET /jobs/" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "10,000 headers": b"GET /health HTTP/1.1\r\nHost: x\r\n"
    + b"".join(b"x-probe-%d: v\r\n" % i for i in range(10_000))
    + b"\r\n",
}
UNPARSABLE_HEADS = {
    "not HTTP": b"NOT HTTP AT ALL\r\n\r\n",
    "no Host": b"GET /health HTTP/1.1\r\n\r\n",
    "a header without a colon": b"GET /health HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
    "two Content-Lengths": b"POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
    b"Content-Length: 2\r\n\r\n",
}


async def test_oversized_and_unparsable_request_heads_are_answered_and_closed() -> None:
    async with running_server(TOOLBOX) as client:
        # read_to_close returns only once the server has closed the connection.
        for name, request in OVERSIZED_HEADS.items():
            head, _ = await read_to_close(client, request)
            assert status_of(head) in {400, 414, 431}, (name, head)
            assert b"connection: close" in head.lower(), (name, head)
        for name, request in UNPARSABLE_HEADS.items():
            head, _ = await read_to_close(client, request)
            assert status_of(head) == 400, (name, head)
            assert b"connection: close" in head.lower(), (name, head)
        ok = await client.post("/jobs", params={"wait": 30}, json={"input": {"n": 1}})
        assert ok.status_code == 200 and ok.json()["status"] == "completed"


IDLE_CONNECTIONS = 2000
SLOWLORIS_CONNECTIONS = 200
#: hypercorn's keep_alive_timeout (its default): a connection that has not sent a whole
#: request head within it is closed, however slowly it trickles bytes.
KEEP_ALIVE_TIMEOUT = 5


@pytest.fixture
def descriptors_for_connections() -> Iterator[None]:
    """Room for both ends of every probe connection (the server runs in this process)."""
    needed = 2 * (IDLE_CONNECTIONS + SLOWLORIS_CONNECTIONS) + 1000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        yield
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < the {needed} descriptors needed")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def open_connections(client: httpx.AsyncClient, count: int) -> list[trio.SocketStream]:
    port = client.base_url.port
    assert port is not None
    streams: list[trio.SocketStream] = []
    limit = trio.Semaphore(50)  # under the listen backlog (100), so no SYN is dropped

    async def connect() -> None:
        async with limit:
            streams.append(await trio.open_tcp_stream("127.0.0.1", port))

    async with trio.open_nursery() as nursery:
        for _ in range(count):
            nursery.start_soon(connect)
    return streams


async def trickle_until_closed(stream: trio.SocketStream, closed: list[None]) -> None:
    """Slowloris: a request head, one header byte at a time, every 0.2 s (waiting for the
    server's close meanwhile), until the server closes the connection."""
    async with stream:
        try:
            await stream.send_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            while True:
                with trio.move_on_after(0.2):
                    if await stream.receive_some() == b"":
                        break
                    raise AssertionError("the server answered a request it never got")
                await stream.send_all(b"a")
        except trio.BrokenResourceError:
            pass  # closed while we wrote
    closed.append(None)


@pytest.mark.usefixtures("descriptors_for_connections")
async def test_idle_and_slowloris_connections_do_not_keep_a_client_from_its_job() -> None:
    async with running_server(TOOLBOX) as client:
        with trio.fail_after(30):
            idle = await open_connections(client, IDLE_CONNECTIONS)
            slow = await open_connections(client, SLOWLORIS_CONNECTIONS)
        assert len(idle) == IDLE_CONNECTIONS and len(slow) == SLOWLORIS_CONNECTIONS
        closed: list[None] = []
        # hypercorn cuts every slowloris connection off at its keep-alive timeout; the
        # nursery waits until each trickle has seen its close
        with trio.fail_after(KEEP_ALIVE_TIMEOUT + 15):
            async with trio.open_nursery() as nursery:
                for stream in slow:
                    nursery.start_soon(trickle_until_closed, stream, closed)
                # meanwhile, a new client connection is accepted and its job done
                with trio.fail_after(KEEP_ALIVE_TIMEOUT):
                    job = await client.post("/jobs", params={"wait": 30}, json={"input": {"n": 1}})
                    assert job.status_code == 200 and job.json()["status"] == "completed"
                    assert (await client.get("/health")).status_code == 200
        assert len(closed) == SLOWLORIS_CONNECTIONS
        for stream in idle:
            await stream.aclose()
        after = await client.post("/jobs", params={"wait": 30}, json={"input": {"n": 2}})
        assert after.status_code == 200 and after.json()["status"] == "completed"


QUEUED_JOBS = 2000
#: Jobs that hold both workers (at a gate) while the others are submitted, so those stay queued.
BLOCKERS = 2


def sqlite_serve_command(path: Path) -> list[str]:
    command = [sys.executable, "-m", "graphnursery", "serve", TOOLBOX, "--port", "0"]
    # Two attempts: a blocker the kill interrupts runs again (with one it would end crashed).
    flags = ["--workers", "2", "--max-attempts", "2", "--queue-size", str(QUEUED_JOBS + 100)]
    return [*command, "--store", f"sqlite:///{path}", *flags]


async def stats(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/stats")
    assert response.status_code == 200
    by_status: dict[str, Any] = response.json()["byStatus"]
    return by_status


async def submit_batch(client: httpx.AsyncClient, inputs: list[Any]) -> list[str]:
    response = await client.post("/jobs/batch", json={"jobs": [{"input": i} for i in inputs]})
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["rejected"] == 0, answer
    return [job["jobId"] for job in answer["jobs"]]


async def listed(client: httpx.AsyncClient, status: str) -> list[dict[str, Any]]:
    """Every job with ``status``, a page of 1,000 at a time."""
    jobs: list[dict[str, Any]] = []
    params = {"status": status, "limit": "1000"}
    for _ in range(100):  # a page per 1,000 jobs: a cursor that never ends fails below
        response = await client.get("/jobs", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        jobs += page["jobs"]
        if not page["nextCursor"]:
            return jobs
        params["cursor"] = page["nextCursor"]
    raise AssertionError(f"the {status} list did not end after 100 pages")


async def test_sqlite_a_server_killed_with_2000_jobs_queued_completes_them_all_on_restart(
    tmp_path: Path, gate: Gate
) -> None:
    command = sqlite_serve_command(tmp_path / "jobs.db")
    async with cli_server(command) as (proc, client):
        ids = await submit_batch(client, [gate.hold(blocker=i) for i in range(BLOCKERS)])
        for start in range(0, QUEUED_JOBS, 1000):
            ids += await submit_batch(client, [{"i": i} for i in range(start, start + 1000)])
        # The blockers are claimed first and hold both workers: none of the rest has run.
        counts = await stats(client)
        assert counts["completed"] == 0 and counts["queued"] >= QUEUED_JOBS, counts
        proc.kill()
        await proc.wait()
    gate.open()  # the blockers' second attempts, after the restart, go through

    async with cli_server(command) as (_, client):
        limit = trio.Semaphore(32)

        async def wait_for(job_id: str) -> None:
            async with limit:
                await finished(client, job_id, wait=60)

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for job_id in ids:
                    nursery.start_soon(wait_for, job_id)
        completed = await listed(client, "completed")
        assert sorted(job["jobId"] for job in completed) == sorted(ids)
        counts = await stats(client)
        assert counts["completed"] == len(ids) == QUEUED_JOBS + BLOCKERS
        assert sum(counts.values()) == len(ids)  # nothing left in any other state
