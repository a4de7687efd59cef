"""The job queue: bounded, positions without scanning, retries held as queued."""

from __future__ import annotations

import pytest
import trio

from graphnursery.jobqueue import JobQueue


async def test_positions_follow_jobs_leaving_the_queue() -> None:
    queue = JobQueue(3)
    for job_id in ("a", "b", "c"):
        queue.put_nowait(job_id)
    assert [queue.position(j) for j in ("a", "b", "c")] == [0, 1, 2]
    assert await queue.take() == "a"
    assert queue.position("a") is None
    assert [queue.position(j) for j in ("b", "c")] == [0, 1]
    assert len(queue) == 2


async def test_a_full_queue_refuses_without_waiting() -> None:
    queue = JobQueue(1)
    queue.put_nowait("a")
    with pytest.raises(trio.WouldBlock):
        queue.put_nowait("b")
    assert len(queue) == 1 and queue.position("b") is None


async def test_held_retries_count_as_queued_until_they_are_back_on_the_channel(
    autojump_clock: trio.abc.Clock,
) -> None:
    queue = JobQueue(1)
    queue.put_nowait("a")
    queue.hold("r")
    assert len(queue) == 2
    async with trio.open_nursery() as nursery:
        nursery.start_soon(queue.put_held, "r")  # waits: the channel is full
        await trio.sleep(1)
        assert len(queue) == 2 and queue.position("r") is None
        assert await queue.take() == "a"
    assert queue.position("r") == 0 and len(queue) == 1
    assert await queue.take() == "r"


async def test_stopping_takes_every_queued_and_held_job() -> None:
    queue = JobQueue(5)
    queue.put_nowait("a")
    queue.put_nowait("b")
    queue.hold("r")
    assert queue.take_all_nowait() == ["a", "b"]
    assert queue.take_held() == {"r"}
    assert len(queue) == 0
    await queue.put_held("r")  # its backoff ended after the stop: it is not queued again
    assert len(queue) == 0 and queue.take_all_nowait() == []
