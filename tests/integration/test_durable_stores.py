"""What the durable stores add to the contract: restarts, requeues, cancel and list."""

from __future__ import annotations

import trio

from graphnursery import JobError, JobStatus
from graphnursery.events import JobEvent
from graphnursery.store import Store
from stores import T0, as_json, opened, queued

CANCELLED = JobError("Cancelled", "cancelled by the client")


async def test_jobs_survive_closing_and_reopening(durable_url: str) -> None:
    done, waiting = queued(), queued()
    async with opened(durable_url) as store:
        await store.add(done)
        await store.add(waiting)
        await store.start(done.id, T0 + 1)
        finished = await store.finish(done.id, JobStatus.COMPLETED, T0 + 2, as_json({"kept": True}))
    async with opened(durable_url) as store:
        assert await store.get(done.id) == finished
        assert await store.get(waiting.id) == waiting
        assert (await store.counts())[JobStatus.QUEUED] == 1


async def test_release_puts_a_running_job_back_and_the_next_run_counts_an_attempt(
    durable_url: str,
) -> None:
    async with opened(durable_url) as store:
        job = queued()
        await store.add(job)
        await store.start(job.id, T0)
        await store.release(job.id)
        again = await store.get(job.id)
        assert again is not None
        assert (again.status, again.attempts) == (JobStatus.QUEUED, 1)
        second = await store.start(job.id, T0 + 1)
        assert second is not None
        assert second.attempts == 2
        assert (await store.counts())[JobStatus.RUNNING] == 1


async def test_cancel_ends_queued_and_running_jobs_but_not_terminal_ones(
    durable_url: str,
) -> None:
    async with opened(durable_url) as store:
        waiting, running, done = queued(), queued(), queued()
        for job in (waiting, running, done):
            await store.add(job)
        await store.start(running.id, T0)
        await store.start(done.id, T0)
        await store.finish(done.id, JobStatus.COMPLETED, T0 + 1, as_json(1))
        for job in (waiting, running):
            cancelled = await store.cancel(job.id, T0 + 2, CANCELLED)
            assert cancelled.status is JobStatus.CANCELLED
            assert cancelled.error == CANCELLED
        assert await store.cancel(done.id, T0 + 2, CANCELLED) is None
        assert await store.cancel(queued().id, T0 + 2, CANCELLED) is None
        assert (await store.counts())[JobStatus.CANCELLED] == 2


async def test_list_pages_through_jobs_in_creation_order_by_status(durable_url: str) -> None:
    async with opened(durable_url) as store:
        jobs = [queued(created_at=T0 + i // 2) for i in range(7)]  # ties on created_at
        for job in jobs:
            await store.add(job)
        for job in jobs[::3]:
            await store.start(job.id, T0 + 10)
        expected = sorted(jobs, key=lambda job: (job.created_at, job.id))
        seen, cursor = [], None
        for _ in jobs:  # fewer pages than jobs: a cursor that never ends fails below
            page, cursor = await store.list_jobs(limit=3, cursor=cursor)
            seen += [job.id for job in page]
            if cursor is None:
                break
        assert cursor is None and seen == [job.id for job in expected]
        running, cursor = await store.list_jobs(JobStatus.RUNNING, limit=10)
        assert [job.id for job in running] == [j.id for j in expected if j in jobs[::3]]
        assert cursor is None


async def test_resume_lists_queued_jobs_in_creation_order(durable_url: str) -> None:
    async with opened(durable_url) as store:
        jobs = [queued() for _ in range(5)]
        for job in jobs:
            await store.add(job)
    async with opened(durable_url) as store:
        await assert_resumes(store, [job.id for job in jobs])


async def assert_resumes(store: Store, expected: list[str]) -> None:
    if store.shared:  # replicas claim instead of resuming
        claimed = await store.claim(len(expected) + 5, T0)
        assert [job.id for job in claimed] == expected
        return
    seen, cursor = [], None
    for _ in range(len(expected) + 1):  # a cursor that never ends fails below
        page, cursor = await store.resume(cursor, 2)
        assert all(entry.wait == 0 for entry in page)
        seen += [entry.job_id for entry in page]
        if cursor is None:
            break
    assert cursor is None and seen == expected


async def test_submits_arriving_together_share_commits(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with opened(f"sqlite:///{tmp_path / 'jobs.db'}") as store:
        jobs = [queued() for _ in range(400)]
        before = store.transactions
        async with trio.open_nursery() as nursery:
            for job in jobs:
                nursery.start_soon(store.add, job)
        commits = store.transactions - before
        assert (await store.counts())[JobStatus.QUEUED] == 400
        assert commits < 100, f"{commits} commits for 400 concurrent submits"


async def test_a_jobs_event_log_survives_closing_and_reopening(durable_url: str) -> None:
    job = queued().replace(stream_mode=("updates",))
    async with opened(durable_url) as store:
        await store.add(job)
        await store.append_events(job.id, 1, [("updates", b'{"a": 1}'), ("updates", b"[]")])
        await store.append_events(job.id, 2, [("updates", b"null")], limit=2)
    async with opened(durable_url) as store:
        found = await store.read_events(job.id, 0, 10)
        assert found is not None
        read, events = found
        assert (read.stream_mode, read.events, read.events_dropped) == (("updates",), 2, 1)
        assert events == [
            JobEvent(1, 1, "updates", b'{"a": 1}'),
            JobEvent(2, 1, "updates", b"[]"),
        ]
        assert await store.append_events(job.id, 2, [("updates", b"2")])
        found = await store.read_events(job.id, 2, 10)
        assert found is not None and found[1] == [JobEvent(3, 2, "updates", b"2")]
