"""Every store: LangGraph threads, and the jobs that are their runs."""

from __future__ import annotations

import orjson

from graphnursery import JobError, JobStatus
from graphnursery.store import Store
from graphnursery.store.threads import ThreadQuery, ThreadRecord
from stores import T0, as_json, queued


def thread(
    thread_id: str, workspace: str = "default", at: float = T0, **metadata: object
) -> ThreadRecord:
    return ThreadRecord(thread_id, workspace, dict(metadata), at, at)


async def test_a_thread_is_added_once_read_merged_and_deleted(store: Store) -> None:
    assert await store.add_thread(thread("t-1", user="ann")) is not None
    assert await store.add_thread(thread("t-1", user="bob")) is None  # taken
    kept = await store.get_thread("t-1")
    assert kept is not None and kept.metadata == {"user": "ann"} and kept.status == "idle"
    assert await store.get_thread("t-1", "team-b") is None  # another workspace's

    merged = await store.update_thread("t-1", "default", T0 + 5, metadata={"graph_id": "chat"})
    assert merged is not None and merged.metadata == {"user": "ann", "graph_id": "chat"}
    again = await store.get_thread("t-1")
    assert again is not None and again.metadata == merged.metadata and again.updated_at == T0 + 5
    assert await store.update_thread("t-1", "team-b", T0 + 6, status="busy") is None

    run = queued().replace(thread_id="t-1", run_options={"assistant_id": "chat"})
    await store.add(run)
    assert [job.id for job in await store.thread_jobs("t-1")] == [run.id]
    assert (await store.thread_jobs("t-1"))[0].run_options == {"assistant_id": "chat"}
    assert await store.delete_thread("t-1", "team-b") is False
    assert await store.delete_thread("t-1") is True
    assert await store.get_thread("t-1") is None
    assert await store.get(run.id) is None  # its runs go with it
    assert await store.delete_thread("t-1") is False


async def test_a_run_that_ends_sets_its_threads_status_and_values(store: Store) -> None:
    await store.add_thread(thread("t-2").replace(status="busy"))
    first, second = (queued(created_at=T0 + n).replace(thread_id="t-2") for n in range(2))
    await store.add(first)
    await store.add(second)
    assert [j.id for j in await store.thread_jobs("t-2", active=True)] == [second.id, first.id]
    await store.start(first.id, T0 + 1)
    await store.finish(first.id, JobStatus.COMPLETED, T0 + 2, as_json({"n": 1}))
    busy = await store.get_thread("t-2")
    assert busy is not None and busy.status == "busy"  # the second run is still queued
    assert busy.values is not None and orjson.loads(busy.values) == {"n": 1}

    await store.start(second.id, T0 + 3)
    interrupt = {"value": "ok?", "id": "i-1"}
    output = {"n": 2, "__interrupt__": [interrupt]}
    await store.finish(second.id, JobStatus.COMPLETED, T0 + 4, as_json(output))
    stopped = await store.get_thread("t-2")
    assert stopped is not None and stopped.status == "interrupted"
    assert stopped.values is not None and orjson.loads(stopped.values) == {"n": 2}
    assert orjson.loads(stopped.interrupts) == {"i-1": [interrupt]}

    failing = queued(created_at=T0 + 5).replace(thread_id="t-2")
    await store.add(failing)
    await store.start(failing.id, T0 + 6)
    await store.finish(failing.id, JobStatus.FAILED, T0 + 7, error=JobError("ValueError", "no"))
    failed = await store.get_thread("t-2")
    assert failed is not None and failed.status == "error"
    assert failed.values is not None and orjson.loads(failed.values) == {"n": 2}  # kept

    cancelled = queued(created_at=T0 + 8).replace(thread_id="t-2")
    await store.add(cancelled)
    await store.cancel(cancelled.id, T0 + 9, JobError("Cancelled", "by a caller"))
    idle = await store.get_thread("t-2")
    assert idle is not None and idle.status == "idle"
    newest = await store.thread_jobs("t-2", limit=2)
    assert [j.id for j in newest] == [cancelled.id, failing.id]
    assert [j.id for j in await store.thread_jobs("t-2", limit=2, offset=2)] == [
        second.id,
        first.id,
    ]


async def test_threads_are_searched_newest_first_by_workspace_and_metadata(store: Store) -> None:
    for n in range(5):
        await store.add_thread(thread(f"s-{n}", at=T0 + n, kind="odd" if n % 2 else "even"))
    await store.add_thread(thread("other", "team-b", at=T0 + 10, kind="even"))
    found = await store.search_threads(ThreadQuery("default", limit=10))
    assert [t.thread_id for t in found] == ["s-4", "s-3", "s-2", "s-1", "s-0"]
    even = await store.search_threads(ThreadQuery("default", {"kind": "even"}, limit=2))
    assert [t.thread_id for t in even] == ["s-4", "s-2"]
    rest = await store.search_threads(ThreadQuery("default", {"kind": "even"}, offset=2))
    assert [t.thread_id for t in rest] == ["s-0"]
    anyone = await store.search_threads(ThreadQuery(None, {"kind": "even"}, limit=1))
    assert [t.thread_id for t in anyone] == ["other"]
    picked = await store.search_threads(ThreadQuery("default", ids=["s-1", "other"]))
    assert [t.thread_id for t in picked] == ["s-1"]
    await store.update_thread("s-3", None, T0 + 20, status="busy")
    busy = await store.search_threads(ThreadQuery("default", status="busy"))
    assert [t.thread_id for t in busy] == ["s-3"]
