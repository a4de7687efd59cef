"""The job queue: bounded, fair between workspaces, positions without scanning, retries held
as queued."""

from __future__ import annotations

import math
import statistics

import pytest
import trio

from graphnursery.jobqueue import IDLE_BACKLOGS, JobQueue


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


# -- fair between workspaces -------------------------------------------------------------


def _fill(queue: JobQueue, jobs: dict[str, list[str]]) -> None:
    for workspace, job_ids in jobs.items():
        for job_id in job_ids:
            queue.put_nowait(job_id, workspace)


async def _take_all(queue: JobQueue) -> list[str]:
    taken = []
    while len(queue):
        job_id = await queue.take()
        assert job_id is not None
        taken.append(job_id)
    return taken


async def test_takes_go_round_robin_across_workspaces_fifo_within_one() -> None:
    queue = JobQueue(10)
    _fill(queue, {"A": ["a1", "a2", "a3", "a4"], "B": ["b1", "b2"], "C": ["c1"]})
    order = ["a1", "b1", "c1", "a2", "b2", "a3", "a4"]
    assert [queue.position(j) for j in order] == list(range(7))
    assert queue.queued_by_workspace() == {"A": 4, "B": 2, "C": 1}
    assert await _take_all(queue) == order
    assert queue.queued_by_workspace() == {}


async def test_positions_match_the_order_jobs_are_taken_in() -> None:
    queue = JobQueue(100)
    _fill(queue, {"A": [f"a{i}" for i in range(9)], "B": ["b0", "b1"]})
    assert await queue.take() == "a0"  # B is now served before A in each round
    _fill(queue, {"C": [f"c{i}" for i in range(4)], "A": ["a9"]})
    queued = [*(f"a{i}" for i in range(1, 10)), "b0", "b1", "c0", "c1", "c2", "c3"]
    positions = {j: queue.position(j) for j in queued}
    taken = await _take_all(queue)
    assert positions == {j: taken.index(j) for j in queued}
    assert taken[:7] == ["b0", "a1", "c0", "b1", "a2", "c1", "a3"]


async def test_a_workspace_behind_a_big_backlog_is_served_next() -> None:
    queue = JobQueue(20_000)
    _fill(queue, {"A": [f"a{i}" for i in range(10_000)]})
    assert await queue.take() == "a0"
    queue.put_nowait("b", "B")
    assert queue.position("b") == 1  # one more of A's (its turn), then B's
    assert [await queue.take(), await queue.take()] == ["a1", "b"]
    assert len(queue) == 9_998 and queue.queued_by_workspace() == {"A": 9_998}


async def test_the_capacity_bounds_every_workspace_together() -> None:
    queue = JobQueue(2)
    queue.put_nowait("a", "A")
    queue.put_nowait("b")  # the default workspace
    with pytest.raises(trio.WouldBlock):
        queue.put_nowait("c", "C")
    assert queue.queued_by_workspace() == {"A": 1, "default": 1}
    assert queue.position("c") is None


async def test_waiting_puts_get_in_as_takes_make_room_in_arrival_order(
    autojump_clock: trio.abc.Clock,
) -> None:
    queue = JobQueue(1)
    queue.put_nowait("a", "A")
    async with trio.open_nursery() as nursery:
        for job_id, workspace in (("b", "B"), ("c", "C")):
            nursery.start_soon(queue.put, job_id, workspace)
            await trio.sleep(1)  # it waits: the queue is full
        with pytest.raises(trio.WouldBlock):  # a waiting put keeps its turn
            queue.put_nowait("d", "D")
        assert await queue.take() == "a"
        assert len(queue) == 1 and queue.position("b") == 0
        assert await queue.take() == "b"
    assert queue.take_all_nowait() == ["c"]


async def test_a_take_waiting_for_a_job_gets_the_next_put(
    autojump_clock: trio.abc.Clock,
) -> None:
    queue = JobQueue(1)
    taken: list[str | None] = []

    async def take() -> None:
        taken.append(await queue.take())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(take)
        await trio.sleep(1)
        queue.put_nowait("a", "A")
        assert len(queue) == 0 and queue.position("a") is None  # handed over, not queued
        queue.put_nowait("b", "B")  # the room is still there
    assert taken == ["a"] and queue.take_all_nowait() == ["b"]


async def test_cancelled_waits_lose_no_job(autojump_clock: trio.abc.Clock) -> None:
    queue = JobQueue(1)
    with trio.move_on_after(1):
        await queue.take()
    queue.put_nowait("a")
    with trio.move_on_after(1):
        await queue.put("b")
    assert queue.take_all_nowait() == ["a"]  # "b" was not queued; "a" went to no one else


async def test_a_closed_queue_hands_out_what_it_holds_then_none(
    autojump_clock: trio.abc.Clock,
) -> None:
    queue = JobQueue(5)
    queue.put_nowait("a", "A")
    queue.close()
    with pytest.raises(trio.ClosedResourceError):
        queue.put_nowait("b", "B")
    with pytest.raises(trio.ClosedResourceError):
        await queue.put("b", "B")
    assert await queue.take() == "a"
    assert await queue.take() is None

    waiting = JobQueue(5)
    async with trio.open_nursery() as nursery:
        results: list[str | None] = []

        async def take() -> None:
            results.append(await waiting.take())

        nursery.start_soon(take)
        await trio.sleep(1)
        waiting.close()
    assert results == [None]


async def test_stopping_takes_queued_jobs_in_turn_and_held_ones_per_workspace() -> None:
    queue = JobQueue(5)
    _fill(queue, {"A": ["a1", "a2"], "B": ["b1"]})
    queue.hold("r", "B")
    queue.hold("s")
    assert len(queue) == 5
    assert queue.queued_by_workspace() == {"A": 2, "B": 2, "default": 1}
    assert queue.take_all_nowait() == ["a1", "b1", "a2"]
    assert queue.take_held() == {"r", "s"}
    assert len(queue) == 0 and queue.queued_by_workspace() == {}


async def test_a_held_retry_gets_back_in_its_workspace(autojump_clock: trio.abc.Clock) -> None:
    queue = JobQueue(5)
    _fill(queue, {"A": ["a1", "a2"]})
    queue.hold("r", "B")
    await queue.put_held("r")
    assert queue.queued_by_workspace() == {"A": 2, "B": 1} and queue.position("r") == 1


async def test_stopping_drops_a_held_retry_still_waiting_for_room(
    autojump_clock: trio.abc.Clock,
) -> None:
    queue = JobQueue(1)
    queue.put_nowait("a")
    queue.hold("r", "B")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(queue.put_held, "r")
        await trio.sleep(1)  # it waits: the queue is full
        assert queue.take_held() == {"r"}  # and returns: r is no longer queued
    assert queue.take_all_nowait() == ["a"] and len(queue) == 0


# -- the fairness figure: A queues 2,000 jobs of 0.1 s, then B submits 20 -----------------

JOB_SECONDS = 0.1
WORKERS = 2


async def _b_waits(b_workspace: str, b_every: float) -> list[float]:
    """Seconds each of B's 20 jobs waited to be taken, two workers running the queue's jobs
    for JOB_SECONDS each; B submits one every ``b_every`` s (0: all at once), starting half
    a job after A queued its 2,000."""
    queue = JobQueue(5_000)
    _fill(queue, {"A": [f"a{i}" for i in range(2_000)]})
    submitted: dict[str, float] = {}
    waits: list[float] = []
    b_done = trio.Event()

    async def worker() -> None:
        while (job_id := await queue.take()) is not None:
            if job_id in submitted:
                waits.append(trio.current_time() - submitted[job_id])
            await trio.sleep(JOB_SECONDS)
            if len(waits) == 20:
                b_done.set()

    async def submit_b() -> None:
        await trio.sleep(JOB_SECONDS / 2)
        for i in range(20):
            submitted[f"b{i}"] = trio.current_time()
            queue.put_nowait(f"b{i}", b_workspace)
            await trio.sleep(b_every)

    async with trio.open_nursery() as nursery:
        for _ in range(WORKERS):
            nursery.start_soon(worker)
        nursery.start_soon(submit_b)
        await b_done.wait()
        nursery.cancel_scope.cancel()
    return waits


def _p95(values: list[float]) -> float:
    ranked = sorted(values)
    return ranked[math.ceil(0.95 * len(ranked)) - 1]


async def test_b_submitting_one_job_per_job_duration_waits_at_most_two_durations(
    autojump_clock: trio.abc.Clock,
) -> None:
    fair = await _b_waits("B", b_every=JOB_SECONDS)
    fifo = await _b_waits("A", b_every=JOB_SECONDS)  # one workspace: first in, first out
    assert _p95(fair) <= 2 * JOB_SECONDS
    assert _p95(fifo) > 90  # behind A's 2,000 jobs: 2,000 x 0.1 s / 2 workers


async def test_a_burst_from_b_waits_its_turns_not_behind_the_backlog(
    autojump_clock: trio.abc.Clock,
) -> None:
    fair = await _b_waits("B", b_every=0)
    fifo = await _b_waits("A", b_every=0)
    # B's k-th job is taken in the k-th round (one of A's, one of B's per 0.1 s): at most
    # 20 x 0.1 s, about 1 s on average; behind A's backlog it would be about 100 s.
    assert max(fair) <= 20 * JOB_SECONDS
    assert statistics.mean(fair) < 0.05 * statistics.mean(fifo)


async def test_a_workspace_that_went_idle_queues_again_from_position_zero() -> None:
    queue = JobQueue(10)
    _fill(queue, {"B": ["b1", "b2"]})
    assert await _take_all(queue) == ["b1", "b2"]
    _fill(queue, {"A": ["a1"], "B": ["b3", "b4"]})
    assert [queue.position(j) for j in ("a1", "b3", "b4")] == [0, 1, 2]
    assert queue.queued_by_workspace() == {"A": 1, "B": 2}


async def test_idle_workspaces_are_forgotten_past_a_bound() -> None:
    queue = JobQueue(10)
    for i in range(3 * IDLE_BACKLOGS):
        queue.put_nowait(f"j{i}", f"ws{i}")
        assert await queue.take() == f"j{i}"
    assert len(queue._backlogs) <= IDLE_BACKLOGS  # what it keeps for idle workspaces
    assert queue.queued_by_workspace() == {} and len(queue) == 0


async def test_a_workspace_at_its_max_running_waits_while_others_are_taken(
    autojump_clock: trio.abc.Clock,
) -> None:
    caps = {"a": 1}
    queue = JobQueue(100, max_running=lambda workspace: caps.get(workspace, 0))
    for n in range(3):
        queue.put_nowait(f"a{n}", "a")
    queue.put_nowait("b0", "b")
    queue.put_nowait("b1", "b")
    assert await queue.take() == "a0"  # a is at its one now
    assert await queue.take() == "b0"
    assert await queue.take() == "b1"
    with trio.move_on_after(1):  # a's next waits for a0 to be done
        await queue.take()
        raise AssertionError("took a job of a workspace at its max_running")
    assert queue.queued_of("a") == 2 and len(queue) == 2

    async def take_one(taken: list[str | None]) -> None:
        taken.append(await queue.take())

    taken: list[str | None] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(take_one, taken)
        await trio.sleep(0.1)
        assert taken == []
        queue.done("a0")  # a waiting runner gets a's next at once
    assert taken == ["a1"]
    queue.done("b0")  # another workspace's end changes nothing for a
    assert queue.take_all_nowait() == ["a2"]  # stopping takes what was held back too
