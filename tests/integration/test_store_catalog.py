"""Every store: a job's graph, version, schedule and run record; stored flows; schedules."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import trio

from graphnursery import JobStatus
from graphnursery.store import Schedule, Store
from stores import T0, as_json, opened, queued


async def test_a_job_keeps_its_graph_version_schedule_and_run_record(store: Store) -> None:
    job = queued().replace(graph="chat", version="aaa", schedule_id="s-1")
    await store.add(job)
    assert await store.get(job.id) == job
    started = await store.start(job.id, T0 + 1, "bbb")  # a reload moved the live version
    assert started is not None and started.version == "bbb"
    record = orjson.dumps({"nodes": {"a": {"status": "completed"}}})
    done = await store.finish(job.id, JobStatus.COMPLETED, T0 + 2, as_json(1), record=record)
    assert done is not None and done.record == record
    kept = await store.get(job.id)
    assert kept is not None
    assert (kept.graph, kept.version, kept.schedule_id) == ("chat", "bbb", "s-1")
    assert kept.run_record == {"nodes": {"a": {"status": "completed"}}}


async def test_start_without_a_version_keeps_the_jobs(store: Store) -> None:
    job = queued().replace(graph="chat", version="aaa")
    await store.add(job)
    started = await store.start(job.id, T0 + 1)
    assert started is not None and started.version == "aaa"


async def test_jobs_are_listed_and_counted_by_graph(store: Store) -> None:
    chat = [queued(created_at=T0 + n).replace(graph="chat") for n in range(3)]
    other = [queued(created_at=T0 + 10 + n).replace(graph="sum") for n in range(2)]
    for job in chat + other:
        await store.add(job)
    await store.start(chat[0].id, T0 + 20)
    page, cursor = await store.list_jobs(graph="sum")
    assert [job.id for job in page] == [job.id for job in other] and cursor is None
    page, cursor = await store.list_jobs(JobStatus.QUEUED, limit=1, graph="chat")
    assert [job.id for job in page] == [chat[1].id] and cursor is not None
    page, _ = await store.list_jobs(JobStatus.QUEUED, limit=1, cursor=cursor, graph="chat")
    assert [job.id for job in page] == [chat[2].id]
    counts = await store.counts(["chat"])
    assert (counts[JobStatus.QUEUED], counts[JobStatus.RUNNING]) == (2, 1)
    assert (await store.counts(["sum"]))[JobStatus.QUEUED] == 2
    assert (await store.counts())[JobStatus.QUEUED] == 4
    assert await store.queued_count(["sum", "chat"]) == 4
    assert await store.queued_count(["nothing"]) == 0
    await store.finish(chat[0].id, JobStatus.COMPLETED, T0 + 21, as_json(1))
    assert await store.evict(T0 + 22) == 1
    assert sum((await store.counts(["chat"])).values()) == 2


async def test_sqlite_resumes_each_graphs_backlog(tmp_path: Path) -> None:
    durable_url = f"sqlite:///{tmp_path / 'jobs.db'}"  # PostgreSQL's replicas claim instead
    jobs = [queued(created_at=T0 + n).replace(graph=("a", "b")[n % 2]) for n in range(4)]
    async with opened(durable_url) as store:
        for job in jobs:
            await store.add(job)
    async with opened(durable_url) as store:
        backlog, _ = await store.resume(None, 10, ["b"])
        assert [found.job_id for found in backlog] == [jobs[1].id, jobs[3].id]
        everything, _ = await store.resume(None, 10)
        assert len(everything) == 4


async def test_a_shared_store_claims_only_the_graphs_asked_for(postgres_url: str) -> None:
    async with opened(postgres_url) as store:
        a = queued(created_at=T0).replace(graph="a")
        b = queued(created_at=T0 + 1).replace(graph="b")
        await store.add(a)
        await store.add(b)
        claimed = await store.claim(5, T0 + 2, ["b"])
        assert [job.id for job in claimed] == [b.id]
        started = await store.start(b.id, T0 + 2, "v2")
        assert started is not None and started.version == "v2"
        assert (await store.get(b.id)).version == "v2"  # type: ignore[union-attr]
        assert [job.id for job in await store.claim(5, T0 + 3, ["a", ""])] == [a.id]


# -- stored flows ---------------------------------------------------------------------------


async def test_flow_versions_are_kept_and_the_live_pointer_moves(store: Store) -> None:
    assert await store.get_flow("f") is None
    assert await store.flow_versions("f") is None
    first, created = await store.save_flow("f", "v1", b'{"name":"f"}', T0)
    assert created and (first.number, first.live, first.definition) == (1, True, b'{"name":"f"}')
    second, created = await store.save_flow("f", "v2", b'{"name":"f","x":1}', T0 + 1)
    assert created and second.number == 2 and second.live
    again, created = await store.save_flow("f", "v1", b'{"name":"f"}', T0 + 2)
    assert not created and again.number == 1 and again.live  # the same body: live again
    live = await store.get_flow("f")
    assert live is not None and live.version == "v1"
    moved = await store.set_flow_live("f", "v2", T0 + 3)
    assert moved is not None and moved.live and moved.version == "v2"
    assert await store.set_flow_live("f", "nope", T0 + 4) is None
    assert await store.set_flow_live("g", "v1", T0 + 4) is None
    old = await store.get_flow("f", "v1")
    assert old is not None and not old.live
    versions = await store.flow_versions("f")
    assert [(v.version, v.number, v.live) for v in versions or ()] == [
        ("v1", 1, False),
        ("v2", 2, True),
    ]
    await store.save_flow("e", "w1", b"{}", T0 + 5)
    flows = await store.list_flows()
    assert [(f.name, f.live, f.live_number, f.versions) for f in flows] == [
        ("e", "w1", 1, 1),
        ("f", "v2", 2, 2),
    ]
    assert flows[1].created_at == T0 and flows[1].updated_at == T0 + 3


# -- schedules ------------------------------------------------------------------------------


def schedule(schedule_id: str = "s-1", next_fire_at: float = T0 + 60) -> Schedule:
    return Schedule(
        id=schedule_id,
        target="chat",
        cron="* * * * *",
        timezone="UTC",
        input={"q": [1, "x"]},
        missed="skip",
        paused=False,
        next_fire_at=next_fire_at,
        created_at=T0,
        updated_at=T0,
    )


async def test_schedules_are_kept_changed_and_deleted(store: Store) -> None:
    added = await store.add_schedule(schedule())
    assert await store.get_schedule("s-1") == added
    await store.add_schedule(schedule("s-2"))
    assert [s.id for s in await store.list_schedules()] == ["s-1", "s-2"]
    changed = await store.update_schedule("s-1", {"paused": True, "input": [2]}, T0 + 5)
    assert changed is not None and changed.paused and changed.input == [2]
    assert changed.updated_at == T0 + 5
    assert await store.get_schedule("s-1") == changed
    assert await store.update_schedule("nope", {"paused": True}, T0) is None
    with pytest.raises(ValueError, match="fired"):
        await store.update_schedule("s-1", {"fired": 3}, T0)
    assert await store.delete_schedule("s-1")
    assert not await store.delete_schedule("s-1")
    assert await store.get_schedule("s-1") is None


async def test_a_tick_fires_once_and_records_its_job(store: Store) -> None:
    await store.add_schedule(schedule())
    job = queued(created_at=T0 + 60).replace(graph="chat", schedule_id="s-1")
    assert await store.fire_schedule("s-1", T0 + 60, T0 + 120, T0 + 60.2, job)
    assert (await store.get(job.id)) == job
    twice = queued().replace(schedule_id="s-1")
    assert not await store.fire_schedule("s-1", T0 + 60, T0 + 120, T0 + 60.3, twice)
    assert await store.get(twice.id) is None
    fired = await store.get_schedule("s-1")
    assert fired is not None
    assert (fired.next_fire_at, fired.fired, fired.last_job_id) == (T0 + 120, 1, job.id)
    assert fired.last_fired_at == T0 + 60.2
    # skipped ticks move on without a job; a paused schedule does not fire
    assert await store.fire_schedule("s-1", T0 + 120, T0 + 180, T0 + 130, None)
    await store.update_schedule("s-1", {"paused": True}, T0 + 131)
    assert not await store.fire_schedule("s-1", T0 + 180, T0 + 240, T0 + 180, queued())
    after = await store.get_schedule("s-1")
    assert after is not None and (after.next_fire_at, after.fired) == (T0 + 180, 1)


async def test_two_replicas_firing_the_same_tick_fire_it_once(postgres_url: str) -> None:
    async with opened(postgres_url) as one, opened(postgres_url) as two:
        await one.add_schedule(schedule())
        won: list[bool] = []

        async def fire(store: Store) -> None:
            job = queued().replace(schedule_id="s-1")
            won.append(await store.fire_schedule("s-1", T0 + 60, T0 + 120, T0 + 60, job))

        for _ in range(5):  # both at once, several times
            async with trio.open_nursery() as nursery:
                nursery.start_soon(fire, one)
                nursery.start_soon(fire, two)
        assert won.count(True) == 1
        page, _ = await one.list_jobs()
        assert len(page) == 1 and page[0].schedule_id == "s-1"
