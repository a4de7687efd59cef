"""A database that goes away and comes back: the server answers 503 meanwhile and carries on
after, against the real PostgreSQL (the test's own role is locked out, its connections cut)."""

from __future__ import annotations

import itertools

import httpx
import trio

from postgres import allow_login, terminate
from support import finished, running_server


async def status_becomes(client: httpx.AsyncClient, path: str, status: int) -> httpx.Response:
    """Read ``path`` until it answers ``status`` (within a deadline)."""
    with trio.fail_after(30):
        for _ in itertools.count():
            response = await client.get(path)
            if response.status_code == status:
                return response
            await trio.sleep(0.05)
    raise AssertionError("unreachable")


async def test_while_the_database_is_away_the_server_says_so_and_then_carries_on(
    own_role: tuple[str, str],
) -> None:
    url, role = own_role
    async with running_server("examples/echo.py", store=url) as client:
        before = await client.post("/jobs", params={"wait": 30}, json={"input": 1})
        assert before.json()["status"] == "completed", before.text

        await trio.to_thread.run_sync(allow_login, role, False)
        await trio.to_thread.run_sync(terminate, role)
        health = await status_becomes(client, "/health", 503)
        assert health.json()["status"] == "store_unavailable", health.text
        assert "Retry-After" in health.headers
        ready = await client.get("/ready")
        assert (ready.status_code, ready.json()["ready"]) == (503, False)
        refused = await client.post("/jobs", json={"input": 2})
        assert refused.status_code == 503, refused.text
        assert refused.json()["code"] == "unavailable"
        assert "Retry-After" in refused.headers

        await trio.to_thread.run_sync(allow_login, role, True)
        await status_becomes(client, "/health", 200)
        after = (await client.post("/jobs", json={"input": 3})).json()
        job = await finished(client, after["jobId"])
        assert (job["status"], job["attempts"], job["result"]) == ("completed", 1, {"echo": 3})
