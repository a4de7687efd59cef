"""The store contract: what the engine relies on, on every store (memory, SQLite, PostgreSQL)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from graphnursery import JobError, JobStatus
from graphnursery.events import JobEvent
from graphnursery.jobs import new_job_id
from graphnursery.store import Store
from stores import T0, as_json, queued


async def test_a_new_job_reads_back_as_it_was_added(store: Store) -> None:
    job = queued({"messages": [{"role": "user", "content": "hé"}], "z": 1, "a": [1.5, None]})
    await store.add(job)
    assert await store.get(job.id) == job


async def test_an_unknown_job_is_none(store: Store) -> None:
    assert await store.get(new_job_id()) is None


async def test_adding_the_same_id_twice_is_refused(store: Store) -> None:
    job = queued()
    await store.add(job)
    with pytest.raises(ValueError, match="already exists"):
        await store.add(job)
    assert await store.get(job.id) == job


async def test_start_moves_a_queued_job_to_running_once(store: Store) -> None:
    job = queued()
    await store.add(job)
    running = await store.start(job.id, T0 + 1)
    assert running is not None
    assert running.status is JobStatus.RUNNING
    assert running.attempts == 1
    assert running.started_at == T0 + 1
    assert await store.get(job.id) == running
    assert await store.start(job.id, T0 + 2) is None
    assert await store.start(new_job_id(), T0 + 2) is None


@pytest.mark.parametrize(
    ("status", "result", "error"),
    [
        (JobStatus.COMPLETED, {"answer": [1, "two", {"three": None}]}, None),
        (JobStatus.COMPLETED, "just text", None),
        (JobStatus.COMPLETED, None, None),
        (JobStatus.FAILED, None, JobError("ValueError", "bad input: ünïcode")),
        (JobStatus.TIMED_OUT, None, JobError("TimeoutError", "ran past 1 s")),
        (JobStatus.CRASHED, None, JobError("WorkerCrashed", "killed by SIGKILL")),
    ],
)
async def test_finish_records_the_outcome(
    store: Store, status: JobStatus, result: Any, error: JobError | None
) -> None:
    job = queued()
    await store.add(job)
    await store.start(job.id, T0 + 1)
    done = await store.finish(
        job.id, status, T0 + 3, None if result is None else as_json(result), error
    )
    assert done is not None
    assert (done.status, done.result, done.error) == (status, result, error)
    assert done.completed_at == T0 + 3
    assert done.duration == 2
    assert await store.get(job.id) == done


async def test_a_terminal_job_is_never_overwritten(store: Store) -> None:
    job = queued()
    await store.add(job)
    await store.start(job.id, T0 + 1)
    timed_out = JobError("TimeoutError", "too slow")
    first = await store.finish(job.id, JobStatus.TIMED_OUT, T0 + 2, None, timed_out)
    assert first is not None
    assert await store.finish(job.id, JobStatus.COMPLETED, T0 + 3, as_json({"late": True})) is None
    assert await store.get(job.id) == first


async def test_a_queued_job_can_end_without_running(store: Store) -> None:
    job = queued()
    await store.add(job)
    error = JobError("Cancelled", "the server shut down")
    done = await store.finish(job.id, JobStatus.CANCELLED, T0 + 1, None, error)
    assert done is not None
    assert (done.status, done.error, done.attempts) == (JobStatus.CANCELLED, error, 0)
    assert await store.start(job.id, T0 + 2) is None


async def test_finishing_an_unknown_job_is_none(store: Store) -> None:
    assert await store.finish(new_job_id(), JobStatus.COMPLETED, T0, as_json(1)) is None


async def test_remove_forgets_a_job(store: Store) -> None:
    job = queued()
    await store.add(job)
    await store.remove(job.id)
    assert await store.get(job.id) is None
    assert (await store.counts())[JobStatus.QUEUED] == 0
    await store.remove(job.id)  # removing twice is harmless


async def test_evict_deletes_only_jobs_finished_before_the_cutoff(store: Store) -> None:
    old, recent, waiting, running = queued(), queued(), queued(), queued()
    for job in (old, recent, waiting, running):
        await store.add(job)
    for job, at in ((old, T0 + 10), (recent, T0 + 100)):
        await store.start(job.id, at - 1)
        await store.finish(job.id, JobStatus.COMPLETED, at, as_json("ok"))
    await store.start(running.id, T0)
    assert await store.evict(T0 + 50) == 1
    assert await store.get(old.id) is None
    for job in (recent, waiting, running):
        assert await store.get(job.id) is not None
    assert await store.evict(T0 + 50) == 0
    assert await store.evict(T0 + 1000) == 1
    assert await store.get(recent.id) is None


async def test_counts_follow_every_transition(store: Store) -> None:
    jobs = [queued() for _ in range(5)]
    for job in jobs:
        await store.add(job)
    for job in jobs[:3]:
        await store.start(job.id, T0)
    await store.finish(jobs[0].id, JobStatus.COMPLETED, T0 + 1, as_json(1))
    await store.finish(jobs[1].id, JobStatus.FAILED, T0 + 1, None, JobError("E", "m"))
    await store.finish(jobs[3].id, JobStatus.CANCELLED, T0 + 1, None, JobError("C", "m"))
    counts = await store.counts()
    assert set(counts) == set(JobStatus)
    assert counts[JobStatus.QUEUED] == 1
    assert counts[JobStatus.RUNNING] == 1
    assert counts[JobStatus.COMPLETED] == 1
    assert counts[JobStatus.FAILED] == 1
    assert counts[JobStatus.CANCELLED] == 1
    assert counts[JobStatus.TIMED_OUT] == counts[JobStatus.CRASHED] == 0
    assert await store.queued_count() == 1
    await store.evict(T0 + 2)
    assert sum((await store.counts()).values()) == 2


async def test_an_idempotency_key_returns_the_job_first_added_with_it(store: Store) -> None:
    first = queued({"n": 1})
    assert await store.add(first, "key-1") == first
    second = queued({"n": 2})
    assert await store.add(second, "key-1") == first  # recorded nothing
    assert await store.get(second.id) is None
    assert await store.find_by_key("key-1") == first
    assert await store.find_by_key("key-2") is None
    other = queued({"n": 3})
    assert await store.add(other, "key-2") == other


async def test_an_idempotency_key_is_forgotten_with_its_job(store: Store) -> None:
    job = queued()
    await store.add(job, "key-1")
    await store.start(job.id, T0 + 1)
    await store.finish(job.id, JobStatus.COMPLETED, T0 + 2, result=as_json(1))
    assert await store.evict(T0 + 3) == 1
    assert await store.find_by_key("key-1") is None
    again = queued()
    assert await store.add(again, "key-1") == again


async def test_cancel_and_list(store: Store) -> None:
    jobs = [queued({"n": n}, created_at=T0 + n / 10) for n in range(3)]
    for job in jobs:
        await store.add(job)
    cancelled = await store.cancel(jobs[1].id, T0 + 1, JobError("Cancelled", "by request"))
    assert cancelled is not None and cancelled.status is JobStatus.CANCELLED
    assert await store.cancel(jobs[1].id, T0 + 2, JobError("Cancelled", "again")) is None
    page, cursor = await store.list_jobs(JobStatus.QUEUED, limit=1)
    assert [job.id for job in page] == [jobs[0].id] and cursor is not None
    page, cursor = await store.list_jobs(JobStatus.QUEUED, limit=1, cursor=cursor)
    assert [job.id for job in page] == [jobs[2].id] and cursor is None
    with pytest.raises(ValueError):
        await store.list_jobs(cursor="garbage")


# -- the event log ---------------------------------------------------------------------------


def emitted(*numbers: int, name: str = "tick") -> list[tuple[str, bytes]]:
    """Events as the engine appends them: a name and the JSON text of the data."""
    return [(name, as_json({"n": n})) for n in numbers]


def logged(events: list[JobEvent]) -> list[tuple[int, int, str, Any]]:
    return [(event.id, event.attempt, event.event, orjson.loads(event.data)) for event in events]


async def test_events_get_ids_one_by_one_across_appends_and_attempts(store: Store) -> None:
    job = queued()
    await store.add(job)
    assert await store.read_events(job.id, 0, 10) == (job, [])
    assert await store.append_events(job.id, 1, emitted(1, 2))
    assert await store.append_events(job.id, 1, [("custom", b'{"x": [1, "\\u0000"]}')])
    assert await store.append_events(job.id, 2, emitted(4))
    assert await store.append_events(job.id, 2, [])  # nothing to add: still a live log
    found = await store.read_events(job.id, 0, 10)
    assert found is not None
    read, events = found
    assert (read.events, read.events_dropped) == (4, 0)
    assert read == (await store.get(job.id))
    assert logged(events) == [
        (1, 1, "tick", {"n": 1}),
        (2, 1, "tick", {"n": 2}),
        (3, 1, "custom", {"x": [1, "\x00"]}),
        (4, 2, "tick", {"n": 4}),
    ]
    assert events[2].data == b'{"x": [1, "\\u0000"]}'  # the JSON text as it was given


async def test_events_are_read_a_page_at_a_time_after_an_id(store: Store) -> None:
    job = queued()
    await store.add(job)
    await store.append_events(job.id, 1, emitted(*range(1, 8)))
    pages, after = [], 0
    while True:
        found = await store.read_events(job.id, after, 3)
        assert found is not None
        _, page = found
        if not page:
            break
        pages.append([event.id for event in page])
        after = page[-1].id
    assert pages == [[1, 2, 3], [4, 5, 6], [7]]
    found = await store.read_events(job.id, 5, 0)  # the job alone
    assert found is not None and found[0].events == 7 and found[1] == []
    found = await store.read_events(job.id, 9, 10)
    assert found is not None and found[1] == []


async def test_events_past_the_limit_are_dropped_and_counted(store: Store) -> None:
    job = queued()
    await store.add(job)
    assert await store.append_events(job.id, 1, emitted(1, 2, 3), limit=5)
    assert await store.append_events(job.id, 1, emitted(4, 5, 6, 7), limit=5)
    assert await store.append_events(job.id, 1, emitted(8), limit=5)  # kept none, counted
    assert await store.append_events(job.id, 1, emitted(9), limit=5, dropped=3)
    found = await store.read_events(job.id, 0, 10)
    assert found is not None
    read, events = found
    assert [event.data for event in events] == [as_json({"n": n}) for n in range(1, 6)]
    assert (read.events, read.events_dropped) == (5, 2 + 1 + 1 + 3)
    assert await store.append_events(job.id, 1, emitted(10))  # no limit: kept
    again = await store.get(job.id)
    assert again is not None and (again.events, again.events_dropped) == (6, 7)


async def test_events_the_worker_dropped_are_counted(store: Store) -> None:
    job = queued()
    await store.add(job)
    assert await store.append_events(job.id, 1, [], dropped=2)
    assert await store.append_events(job.id, 1, emitted(1), dropped=1)
    read = await store.get(job.id)
    assert read is not None and (read.events, read.events_dropped) == (1, 3)


async def test_a_log_follows_its_job_through_start_and_finish(store: Store) -> None:
    job = queued()
    await store.add(job)
    await store.append_events(job.id, 1, emitted(1, 2), limit=1)
    if store.shared:
        [claimed] = await store.claim(1, T0)
        assert (claimed.events, claimed.events_dropped) == (1, 1)
    running = await store.start(job.id, T0)
    last = 1 + store.logs_starts  # its running event
    assert running is not None and (running.events, running.events_dropped) == (last, 1)
    done = await store.finish(job.id, JobStatus.COMPLETED, T0 + 1, as_json(1))
    assert done is not None and (done.events, done.events_dropped) == (last, 1)
    page, _ = await store.list_jobs()
    assert [(j.events, j.events_dropped) for j in page] == [(last, 1)]


async def test_a_store_that_logs_starts_writes_each_attempts_running_event(store: Store) -> None:
    if not store.logs_starts:
        pytest.skip("the engine appends this store's running events (see EventHub.begin)")
    job = queued()
    await store.add(job)
    await store.start(job.id, T0)
    await store.append_events(job.id, 1, emitted(1))
    await store.release(job.id)
    again = await store.start(job.id, T0 + 1)
    assert again is not None and again.events == 3
    found = await store.read_events(job.id, 0, 10)
    assert found is not None
    assert [(e.id, e.attempt, e.event) for e in found[1]] == [
        (1, 1, "running"),
        (2, 1, "tick"),
        (3, 2, "running"),
    ]
    assert found[1][0].data == b'{"status":"running"}'


@pytest.mark.parametrize("end", ["finished", "cancelled"])
async def test_a_terminal_job_takes_no_more_events(store: Store, end: str) -> None:
    job = queued()
    await store.add(job)
    await store.append_events(job.id, 1, emitted(1))
    if end == "cancelled":
        assert await store.cancel(job.id, T0 + 1, JobError("Cancelled", "by request"))
    else:
        await store.start(job.id, T0)
        assert await store.finish(job.id, JobStatus.COMPLETED, T0 + 1, as_json(1))
    ended = await store.get(job.id)
    assert not await store.append_events(job.id, 1, emitted(2))
    assert not await store.append_events(job.id, 1, emitted(3), limit=1, dropped=4)
    found = await store.read_events(job.id, 0, 10)
    assert found is not None
    started = end == "finished" and store.logs_starts  # its running event
    assert found[0] == ended and [event.id for event in found[1]] == [1, 2][: 1 + started]


async def test_an_unknown_job_has_no_log(store: Store) -> None:
    unknown = new_job_id()
    assert not await store.append_events(unknown, 1, emitted(1))
    assert await store.read_events(unknown, 0, 10) is None
    assert await store.read_events(unknown + "\x00", 0, 10) is None
    assert not await store.append_events(unknown + "\x00", 1, emitted(1))
    assert await store.get(unknown) is None


async def test_a_log_goes_with_its_job(store: Store) -> None:
    evicted, removed, kept = queued(), queued(), queued()
    for job in (evicted, removed, kept):
        await store.add(job)
        await store.append_events(job.id, 1, emitted(1, 2))
    await store.start(evicted.id, T0)
    await store.finish(evicted.id, JobStatus.COMPLETED, T0 + 1, as_json(1))
    assert await store.evict(T0 + 2) == 1
    await store.remove(removed.id)
    assert await store.read_events(evicted.id, 0, 10) is None
    assert await store.read_events(removed.id, 0, 10) is None
    assert not await store.append_events(evicted.id, 1, emitted(3))
    found = await store.read_events(kept.id, 0, 10)
    assert found is not None and len(found[1]) == 2
    assert sum((await store.counts()).values()) == 1


@pytest.mark.parametrize("stream_mode", [None, (), ("updates", "custom")])
async def test_a_jobs_stream_mode_reads_back_as_it_was_added(
    store: Store, stream_mode: tuple[str, ...] | None
) -> None:
    job = queued().replace(stream_mode=stream_mode)
    await store.add(job)
    assert await store.get(job.id) == job
    page, _ = await store.list_jobs()
    assert page == [job]
    found = await store.read_events(job.id, 0, 1)
    assert found is not None and found[0].stream_mode == stream_mode
