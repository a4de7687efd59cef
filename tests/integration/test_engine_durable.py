"""The engine on durable stores, in process, with real stores and real worker processes.

One test runs its graph in this process instead (``InlineExecutor``): a retry's backoff across
a restart, where what the graph does does not matter. The shared-counts test counts the
real PostgreSQL store's count queries by subclassing it; the store still answers them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import trio

from graphnursery import Config, JobError, JobStatus, open_engine
from graphnursery.engine import SHARED_COUNTS_MAX_AGE
from graphnursery.inline import InlineExecutor
from stores import T0, opened, queued
from support import Gate, until

GRAPH = "tests/graphs/toolbox.py"


async def test_stopping_requeues_the_running_job_and_the_next_start_runs_it_again(
    tmp_path: Path, gate: Gate
) -> None:
    config = Config(graph=GRAPH, workers=2, store=f"sqlite:///{tmp_path / 'jobs.db'}")
    async with open_engine(config) as engine:
        slow = await engine.submit(gate.hold())  # runs until the gate opens, after the stop
        fast = await engine.submit({})
        # both were taken off the queue in order, so once the fast one is done the slow one runs
        assert (await engine.wait(fast.id, 30)).status is JobStatus.COMPLETED
        assert (await engine.get(slow.id)).status is JobStatus.RUNNING
    async with opened(config.store) as store:
        requeued = await store.get(slow.id)
        assert requeued is not None
        assert (requeued.status, requeued.attempts) == (JobStatus.QUEUED, 1)
    gate.open()
    async with open_engine(config) as engine:
        done = await engine.wait(slow.id, 30)
        assert (done.status, done.attempts) == (JobStatus.COMPLETED, 2)


async def test_a_backlog_larger_than_the_queue_is_fed_in_creation_order(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    backlog = [queued({"i": i}, created_at=T0 + i) for i in range(12)]
    async with opened(url) as store:
        for job in backlog:
            await store.add(job)
    config = Config(graph=GRAPH, workers=1, queue_size=2, store=url)
    async with open_engine(config) as engine:
        assert engine.queue_length() <= 2
        done = [await engine.wait(job.id, 30) for job in backlog]
    assert [job.status for job in done] == [JobStatus.COMPLETED] * 12
    starts = [job.started_at for job in done]
    assert starts == sorted(starts)  # one worker, so start order is queue order


async def test_a_retry_backing_off_at_a_crash_waits_out_the_rest_after_the_restart(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    retry = queued({"n": 1})
    async with opened(url) as store:  # a run that crashed while the retry waited out 2 s
        await store.add(retry)
        await store.start(retry.id, T0)
        released_at = time.time()
        await store.release(retry.id, JobError("WorkerCrashed", "killed"), delay=2.0)
    config = Config(graph="examples/echo.py", workers=1, store=url)
    async with open_engine(config, executor=InlineExecutor(config.graph)) as engine:
        fresh = await engine.submit({"n": 2})
        assert (await engine.wait(fresh.id, 30)).status is JobStatus.COMPLETED
        # the fresh job ran; the retry is still held back, and counted as queued
        assert (await engine.get(retry.id)).status is JobStatus.QUEUED
        assert engine.queue_length() == 1
        done = await engine.wait(retry.id, 30)
    assert (done.status, done.attempts) == (JobStatus.COMPLETED, 2)
    # not before its 2 s were out, counted from the release, however long the restart took
    # (less 10 ms: the engine's clock is the wall clock read once, then Trio's)
    assert done.started_at is not None and done.started_at >= released_at + 2.0 - 0.01


async def test_a_job_cancelled_on_another_replica_stops_where_it_runs(postgres_url: str) -> None:
    config = Config(graph=GRAPH, workers=1, store=postgres_url, lease_seconds=30)
    async with opened(postgres_url) as other_replica, open_engine(config) as engine:
        stuck = await engine.submit({"sleep": 60})
        after = await engine.submit({"after": True})

        async def stuck_runs() -> bool:
            return (await engine.get(stuck.id)).status is JobStatus.RUNNING

        await until(stuck_runs, "the stuck job to run")
        cancelled = await other_replica.cancel(  # type: ignore[attr-defined]
            stuck.id, T0, JobError("Cancelled", "cancelled on another replica")
        )
        assert cancelled.status is JobStatus.CANCELLED
        # the only worker is free again long before the stuck job's 60 s
        with trio.fail_after(20):
            assert (await engine.wait(after.id, 20)).status is JobStatus.COMPLETED
        final = await engine.get(stuck.id)
        assert final.status is JobStatus.CANCELLED
        assert final.error == JobError("Cancelled", "cancelled on another replica")


async def test_retries_on_postgresql_wait_out_their_backoff_and_dead_letter(
    postgres_url: str,
) -> None:
    config = Config(
        graph=GRAPH,
        workers=1,
        store=postgres_url,
        max_attempts=2,
        retry_backoff=0.3,
        lease_seconds=2,
    )
    async with open_engine(config) as engine:
        job = await engine.submit({"crash": 5})
        done = await engine.wait(job.id, 60)
        assert (done.status, done.attempts) == (JobStatus.CRASHED, 2)
        assert [error.type for error in done.errors] == ["WorkerCrashed", "WorkerCrashed"]
        dead, _ = await engine.list_jobs(JobStatus.CRASHED)
        assert [j.id for j in dead] == [job.id]
        flaky = await engine.submit({"crash": 5}, max_attempts=1)
        assert (await engine.wait(flaky.id, 60)).attempts == 1


async def test_a_shared_stores_counts_are_one_query_for_health_checks_arriving_together(
    postgres_url: str,
) -> None:
    from graphnursery.store.postgres import PostgresStore  # here: it needs psycopg

    class CountingPostgresStore(PostgresStore):
        """The real PostgreSQL store, counting the count queries it runs."""

        queries = 0

        async def counts(self, graphs: Sequence[str] | None = None) -> Mapping[JobStatus, int]:
            self.queries += 1
            return await super().counts(graphs)

    config = Config(graph="examples/echo.py", workers=1, store=postgres_url)
    store = CountingPostgresStore(postgres_url)  # open_engine opens and closes it
    async with open_engine(config, store) as engine:
        job = await engine.submit({"n": 1})
        await engine.wait(job.id, 30)
        seen: list[int] = []
        before = store.queries

        async def health() -> None:
            seen.append((await engine.statistics()).completed)

        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(health)
        assert (store.queries - before, seen) == (1, [1] * 20)
        await trio.sleep(SHARED_COUNTS_MAX_AGE)  # the counts may be this old, no older
        assert (await engine.statistics()).completed == 1
        assert store.queries - before == 2
