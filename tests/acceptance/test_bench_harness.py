"""The benchmark harness against a real server: what its modes count."""

from __future__ import annotations

import time

from benchmarks.client import Connection, split_target
from benchmarks.scenarios import BATCH_SIZE, Tally, http_batch

from support import running_server


async def test_batch_mode_sends_rejected_jobs_again() -> None:
    # The server's queue holds fewer jobs than one batch: part of the batch is turned away
    # and must be sent again after Retry-After, counted as rejected, not as errors.
    async with running_server("examples/echo.py", queue_size=4) as client:
        host, port = split_target(str(client.base_url))
        conn = Connection(host, port)
        tally = Tally()
        await http_batch(conn, tally, time.perf_counter())
        await conn.aclose()
    assert tally.completed == BATCH_SIZE > 4
    assert tally.rejected > 0
    assert tally.errors == tally.lost == tally.failed == 0
