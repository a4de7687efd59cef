"""The engine's timing logic under Trio's autojump clock (graph run in-process, no workers)."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from graphnursery import Config, Job, JobError, JobNotFound, JobStatus, QueueFull, open_engine
from graphnursery.inline import InlineExecutor
from graphnursery.store.memory import MemoryStore


def engine_for(**settings: object):  # type: ignore[no-untyped-def]
    config = Config(graph="examples/echo.py", workers=1, store="memory://", **settings)  # type: ignore[arg-type]
    return open_engine(config, executor=InlineExecutor(config.graph))


async def test_finished_jobs_are_evicted_after_result_ttl(autojump_clock: trio.abc.Clock) -> None:
    async with engine_for(result_ttl=60) as engine:
        job = await engine.submit({"n": 1})
        done = await engine.wait(job.id, 5)
        assert done.status is JobStatus.COMPLETED
        await trio.sleep(50)
        assert (await engine.get(job.id)).result == {"echo": {"n": 1}}
        # the sweep runs every ttl/10, so by ttl + one interval the job is gone
        await trio.sleep(10 + 6 + 1)
        with pytest.raises(JobNotFound):
            await engine.get(job.id)
        assert (await engine.statistics()).total == 0


class HeldExecutor(InlineExecutor):
    """Runs each job in this process once the test sets ``release``: until then the job
    stays running, however far virtual time moves."""

    def __init__(self, graph: str) -> None:
        super().__init__(graph)
        self.release = trio.Event()

    async def run(self, *args: Any, **kwargs: Any) -> Any:
        await self.release.wait()
        return await super().run(*args, **kwargs)


def held_engine(**settings: object):  # type: ignore[no-untyped-def]
    config = Config(graph="examples/echo.py", workers=1, store="memory://", **settings)  # type: ignore[arg-type]
    executor = HeldExecutor(config.graph)
    return executor, open_engine(config, executor=executor)


async def test_wait_gives_up_after_its_timeout_and_returns_the_job_as_it_stands(
    autojump_clock: trio.abc.Clock,
) -> None:
    executor, opening = held_engine()
    async with opening as engine:
        job = await engine.submit({})
        start = trio.current_time()
        # wait(0) answers at once, whatever the state
        assert (await engine.wait(job.id, 0)).status is not JobStatus.COMPLETED
        assert trio.current_time() == start
        # the job cannot end before it is released: the wait runs out, and says how it stands
        stands = await engine.wait(job.id, 30)
        assert trio.current_time() - start == pytest.approx(30)
        assert stands.id == job.id and stands.status is JobStatus.RUNNING
        executor.release.set()
        done = await engine.wait(job.id, 30)
        assert done.status is JobStatus.COMPLETED and done.result == {"echo": {}}


async def test_queue_full_raises_with_a_retry_estimate(autojump_clock: trio.abc.Clock) -> None:
    async with engine_for(queue_size=2) as engine:
        # submitting never yields to the runner, so the queue fills and stays full
        accepted = []
        with pytest.raises(QueueFull) as info:
            for _ in range(10):
                accepted.append(await engine.submit({}))
        assert 2 <= len(accepted) <= 3  # the queue, plus one handed straight to the runner
        assert info.value.capacity == 2
        assert info.value.retry_after >= 1
        for job in accepted:
            assert (await engine.wait(job.id, 10)).status is JobStatus.COMPLETED


async def test_unfinished_jobs_end_cancelled_when_the_engine_stops(
    autojump_clock: trio.abc.Clock,
) -> None:
    _, opening = held_engine(queue_size=10)  # never released: no job can finish
    async with opening as engine:
        jobs = [await engine.submit({}) for _ in range(5)]
        await trio.testing.wait_all_tasks_blocked()  # the runner took the first one
        assert [(await engine.get(job.id)).status for job in jobs] == [
            JobStatus.RUNNING,
            *[JobStatus.QUEUED] * 4,
        ]
        store = engine.store
    states = [await store.get(job.id) for job in jobs]
    # the running one and the four queued ones: every one ends cancelled, saying why
    assert [s.status if s else None for s in states] == [JobStatus.CANCELLED] * 5
    shutdown = JobError("Cancelled", "the server shut down before the job finished")
    assert [s.error if s else None for s in states] == [shutdown] * 5


def flaky_engine(**settings: object):  # type: ignore[no-untyped-def]
    config = Config(
        graph="tests/graphs/flaky_once.py",
        workers=1,
        store="memory://",
        retry_on="failed",
        **settings,  # type: ignore[arg-type]
    )
    return open_engine(config, executor=InlineExecutor(config.graph))


async def test_a_flaky_graph_succeeds_on_attempt_two_after_a_backoff(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with flaky_engine(max_attempts=3, retry_backoff=10) as engine:
        job = await engine.submit({"key": "a", "fail_times": 1})
        done = await engine.wait(job.id, 60)  # answers once the job is terminal
        assert done.status is JobStatus.COMPLETED
        assert done.result == {"calls": 2}
        assert done.attempts == 2
        assert [e.message for e in done.errors] == ["upstream hiccup #1"]
        assert done.started_at is not None
        # the second attempt started within the first backoff (full jitter: 0..10 s)
        assert done.started_at - done.created_at <= 10


async def test_a_job_that_keeps_failing_is_a_dead_letter_after_max_attempts(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with flaky_engine(max_attempts=3, retry_backoff=1) as engine:
        job = await engine.submit({"key": "b", "fail_times": 99})
        done = job
        while not done.status.is_terminal:
            done = await engine.wait(job.id, 60)
        assert done.status is JobStatus.FAILED
        assert done.attempts == 3
        assert len(done.errors) == 3 and done.errors[-1] == done.error
        dead, _ = await engine.list_jobs(JobStatus.FAILED)
        assert [j.id for j in dead] == [job.id]
        # per-job max_attempts beats the server's
        once = await engine.submit({"key": "c", "fail_times": 99}, max_attempts=1)
        assert (await engine.wait(once.id, 60)).attempts == 1


async def test_a_retry_backing_off_at_shutdown_ends_cancelled(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with flaky_engine(max_attempts=2, retry_backoff=300) as engine:
        job = await engine.submit({"key": "d", "fail_times": 99})
        waiting = await engine.get(job.id)
        while not waiting.errors:  # virtual time: the first attempt fails at once
            waiting = await engine.wait(job.id, 0.001)
        assert waiting.status is JobStatus.QUEUED and len(waiting.errors) == 1
        assert engine.queue_length() == 1  # waiting out its backoff counts as queued
        store = engine.store
    final = await store.get(job.id)
    assert final is not None and final.status is JobStatus.CANCELLED


class SlowToRecordStore(MemoryStore):
    """A store that takes 5 s to record a result (a slow disk)."""

    async def finish(self, *args: Any, **kwargs: Any) -> Job | None:
        await trio.sleep(5)
        return await super().finish(*args, **kwargs)


async def test_drain_waits_for_results_still_being_recorded(
    autojump_clock: trio.abc.Clock,
) -> None:
    config = Config(graph="examples/echo.py", workers=1, store="memory://")
    store = SlowToRecordStore()
    async with open_engine(config, store, executor=InlineExecutor(config.graph)) as engine:
        job = await engine.submit({"n": 1})
        await trio.sleep(1)  # the graph has run; its result is being recorded
        assert await engine.drain(grace=30)
        finished = await store.get(job.id)
        assert finished is not None and finished.status is JobStatus.COMPLETED


async def test_the_retry_backoff_doubles_per_attempt_up_to_its_cap(
    autojump_clock: trio.abc.Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each wait is drawn from 0..min(300, B*2**(n-1)); drawn here at its top, so the waits
    are the ceilings themselves: 100, 200, then 300 (not 400), 300 (not 800)."""
    import graphnursery.runners

    monkeypatch.setattr(graphnursery.runners.random, "uniform", lambda low, high: high)
    async with flaky_engine(max_attempts=5, retry_backoff=100) as engine:
        job = await engine.submit({"key": "e", "fail_times": 4})
        done = job
        while not done.status.is_terminal:
            done = await engine.wait(job.id, 3600)
    assert (done.status, done.attempts) == (JobStatus.COMPLETED, 5)
    assert done.started_at is not None
    # the graph runs in no virtual time: the last attempt starts once the four waits are over
    assert done.started_at - done.created_at == pytest.approx(100 + 200 + 300 + 300)
