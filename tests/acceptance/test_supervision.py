"""Supervision: when the engine dies the server answers 503 and stops with an error."""

from __future__ import annotations

from functools import partial
from typing import Any

import httpx
import pytest
import trio

from graphnursery import Config, EngineFailed
from graphnursery.jobs import JobError, JobStatus
from graphnursery.server import serve
from graphnursery.store import MemoryStore


class DiskFullStore(MemoryStore):
    """A store whose result writes fail, as a full disk makes a real one's fail."""

    async def finish(
        self,
        job_id: str,
        status: JobStatus,
        completed_at: float,
        result: Any = None,
        error: JobError | None = None,
    ) -> Any:
        raise OSError(28, "No space left on device")


async def test_engine_death_answers_503_then_the_server_stops_with_an_error() -> None:
    config = Config(graph="tests/graphs/toolbox.py", port=0, workers=1, store="memory://")
    with trio.fail_after(30), pytest.raises(BaseExceptionGroup) as raised:
        async with trio.open_nursery() as nursery:
            urls = await nursery.start(
                partial(serve, config, handle_signals=False, store=DiskFullStore())
            )
            async with httpx.AsyncClient(base_url=urls[0], timeout=30) as client:
                assert (await client.get("/health")).status_code == 200
                # the job's result cannot be written: the engine dies; a long-poll in
                # flight answers 503 rather than hanging
                response = await client.post("/jobs", params={"wait": 30}, json={"input": {}})
                assert response.status_code == 503, response.text
                assert response.headers["retry-after"]
                health = await client.get("/health")
                assert health.status_code == 503
            await trio.sleep_forever()  # serve() stops on its own and raises
    failure = raised.value.exceptions[0]
    while isinstance(failure, BaseExceptionGroup):
        failure = failure.exceptions[0]
    assert isinstance(failure, EngineFailed)
    assert "No space left on device" in str(failure)
