"""SQLite specifics: one server per file, recovery of jobs a crash left running, migrations."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from graphnursery import JobError, JobStatus
from graphnursery.errors import StoreError, StoreLocked
from graphnursery.events import JobEvent
from graphnursery.store._sqlite_schema import MIGRATIONS
from stores import T0, as_json, opened, queued


async def test_a_second_store_on_the_same_file_is_refused_naming_the_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "jobs.db"
    async with opened(f"sqlite:///{path}"):
        with pytest.raises(StoreLocked) as info:
            async with opened(f"sqlite:///{path}"):
                pass  # pragma: no cover
        assert str(path) in str(info.value)
        assert "another graphnursery server" in str(info.value)
    async with opened(f"sqlite:///{path}"):  # free again once the first closed
        pass


async def test_jobs_left_running_are_requeued_on_open_and_resume_in_order(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    # the job left running has an attempt left (one without ends crashed: see
    # tests/integration/test_store_faults.py)
    jobs = [queued(created_at=T0 + i).replace(max_attempts=2) for i in range(4)]
    async with opened(url) as store:
        for job in jobs:
            await store.add(job)
        await store.start(jobs[1].id, T0 + 10)
        # closing without release() is what a crash leaves: the job stays 'running'
    async with opened(url) as store:
        assert store.recovered == 1  # type: ignore[attr-defined]
        requeued = await store.get(jobs[1].id)
        assert requeued is not None
        assert (requeued.status, requeued.attempts) == (JobStatus.QUEUED, 1)
        assert (await store.counts())[JobStatus.RUNNING] == 0
        page, cursor = await store.resume(None, 10)
        assert [entry.job_id for entry in page] == [job.id for job in jobs]
        assert await store.resume(cursor, 10) == ([], None)
        again = await store.start(jobs[1].id, T0 + 20)
        assert again is not None and again.attempts == 2
        # a job queued after the store opened is the engine's already, not the backlog's
        late = queued()
        await store.add(late)
        page, _ = await store.resume(None, 10)
        assert [entry.job_id for entry in page] == [job.id for job in jobs if job is not jobs[1]]


async def test_a_retry_waiting_out_its_backoff_resumes_with_what_is_left_of_it(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    retry, ready = queued(created_at=T0), queued(created_at=T0 + 1)
    async with opened(url) as store:
        await store.add(retry)
        await store.add(ready)
        await store.start(retry.id, T0 + 2)
        await store.release(retry.id, JobError("WorkerCrashed", "killed"), delay=600)
    async with opened(url) as store:
        page, _ = await store.resume(None, 10)
        assert [entry.job_id for entry in page] == [retry.id, ready.id]
        assert 590 < page[0].wait <= 600 and page[1].wait == 0
        await store.start(retry.id, T0 + 3)  # running again: the backoff is over
        await store.release(retry.id)  # interrupted by a stop: no backoff this time
    async with opened(url) as store:
        page, _ = await store.resume(None, 10)
        assert [entry.wait for entry in page] == [0, 0]


async def test_the_file_is_in_wal_mode_at_the_current_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    async with opened(f"sqlite:///{path}"):
        pass
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert connection.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) == 5


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="schema version 99"):
        async with opened(f"sqlite:///{path}"):
            pass  # pragma: no cover


async def test_a_transaction_the_disk_refuses_leaves_the_counts_as_the_file_has_them(
    tmp_path: Path,
) -> None:
    """A commit that fails (the file may not grow: as a full disk) rolls back, and the
    counts /stats and /health report are read again from the file."""
    import resource
    import signal

    async with opened(f"sqlite:///{tmp_path / 'jobs.db'}") as store:
        kept = queued()
        await store.add(kept)
        files = [tmp_path / "jobs.db", tmp_path / "jobs.db-wal"]
        limit = max(path.stat().st_size for path in files if path.exists())
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
        try:
            refused = queued({"pad": "x" * 200_000})
            with pytest.raises(StoreError):
                await store.add(refused)
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
            signal.signal(signal.SIGXFSZ, previous)
        assert await store.get(refused.id) is None
        assert (await store.counts())[JobStatus.QUEUED] == 1


def event_rows(path: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(path) as connection:
        return connection.execute(
            "SELECT job_id, seq FROM job_events ORDER BY job_id, seq"
        ).fetchall()


async def test_a_file_of_the_first_schema_migrates_and_keeps_its_jobs(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    done, waiting = queued(), queued()
    with sqlite3.connect(path) as connection:  # as a server of the version before made it
        connection.executescript(MIGRATIONS[0])
        connection.execute("PRAGMA user_version = 1")
        for job, status in ((done, "completed"), (waiting, "queued")):
            connection.execute(
                "INSERT INTO jobs (id, status, input, timeout, created_at, completed_at, result)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (job.id, status, '{"n": 1}', job.timeout, job.created_at, T0 + 1, "1"),
            )
    async with opened(f"sqlite:///{path}") as store:
        kept = await store.get(waiting.id)
        assert kept is not None
        assert (kept.stream_mode, kept.events, kept.events_dropped) == (None, 0, 0)
        assert kept.replace(completed_at=None, result_json=None) == waiting
        assert await store.read_events(waiting.id, 0, 10) == (kept, [])
        assert await store.append_events(waiting.id, 1, [("tick", b"1")])
        assert not await store.append_events(done.id, 1, [("tick", b"1")])
        found = await store.read_events(waiting.id, 0, 10)
        assert found is not None and found[1] == [JobEvent(1, 1, "tick", b"1")]
        assert await store.evict(T0 + 2) == 1
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == 5


async def test_eviction_and_remove_delete_the_rows_of_the_log(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    evicted, removed, kept = queued(), queued(), queued()
    async with opened(f"sqlite:///{path}") as store:
        for job in (evicted, removed, kept):
            await store.add(job)
            await store.append_events(job.id, 1, [("tick", b"1"), ("tick", b"2")])
        await store.start(evicted.id, T0)
        await store.finish(evicted.id, JobStatus.COMPLETED, T0 + 1, as_json(1))
        assert await store.evict(T0 + 2) == 1
        await store.remove(removed.id)
    assert event_rows(path) == [(kept.id, 1), (kept.id, 2)]


async def test_an_append_that_fails_leaves_nothing_of_it_in_the_shared_commit(
    tmp_path: Path,
) -> None:
    """The writer commits a batch of operations together: an append whose rows are refused
    half way must not leave the job's counts moved, nor spoil the others' work."""
    async with opened(f"sqlite:///{tmp_path / 'jobs.db'}") as store:
        job, other = queued(), queued()
        await store.add(job)
        unbindable: list[tuple[str, bytes]] = [("tick", b"1"), ("tick", object())]  # type: ignore[list-item]
        with pytest.raises(sqlite3.Error):
            await store.append_events(job.id, 1, unbindable)
        await store.add(other)
        found = await store.read_events(job.id, 0, 10)
        assert found == (job, [])
        assert await store.get(other.id) == other
        assert await store.append_events(job.id, 1, [("tick", b"1")])
        found = await store.read_events(job.id, 0, 10)
        assert found is not None and [event.id for event in found[1]] == [1]
