"""What a store does with what it cannot keep as given, on every store: a result kept as
its JSON text, NUL characters (PostgreSQL refuses them in text), a job left running with no
attempts left; and SQLite's lock through a symlink."""

from __future__ import annotations

import base64
from pathlib import Path

import orjson
import pytest

from graphnursery import JobError, JobStatus
from graphnursery.errors import StoreLocked
from graphnursery.store import Store
from stores import T0, as_json, opened, queued


async def test_a_result_is_kept_as_the_json_text_it_was_given(store: Store) -> None:
    """NUL (escaped in JSON, refused by PostgreSQL's jsonb), non-ASCII text and big numbers
    come back byte for byte: no store decodes and encodes a result again."""
    text = orjson.dumps({"nul": "a\x00b", "text": "hé ✓", "n": 2**64 - 1, "f": 0.1})
    job = queued()
    await store.add(job)
    await store.start(job.id, T0)
    done = await store.finish(job.id, JobStatus.COMPLETED, T0 + 1, text)
    assert done is not None and done.result_json == text
    kept = await store.get(job.id)
    assert kept is not None and kept.result_json == text
    assert kept.result == {"nul": "a\x00b", "text": "hé ✓", "n": 2**64 - 1, "f": 0.1}


async def test_errors_holding_nul_or_a_lone_surrogate_are_kept_escaped(store: Store) -> None:
    retried, failed = queued(), queued()
    for job in (retried, failed):
        await store.add(job)
    if store.shared:
        await store.claim(2, T0)
    await store.start(retried.id, T0)
    await store.release(retried.id, JobError("Crash\x00ed", "killed\x00 \ud800"))
    await store.start(failed.id, T0)
    done = await store.finish(
        failed.id, JobStatus.FAILED, T0 + 1, None, JobError("ValueError", "bad\x00byte")
    )
    assert done is not None and done.error == JobError("ValueError", "bad\\x00byte")
    assert await store.get(failed.id) == done
    requeued = await store.get(retried.id)
    assert requeued is not None
    assert requeued.errors == (JobError("Crash\\x00ed", "killed\\x00 \\ud800"),)


async def test_a_job_id_holding_nul_is_not_found(store: Store) -> None:
    job = queued()
    await store.add(job)
    nul = job.id + "\x00"
    assert await store.get(nul) is None
    assert await store.get("\x00") is None
    assert await store.start(nul, T0) is None
    assert await store.finish(nul, JobStatus.COMPLETED, T0, as_json({})) is None
    assert await store.cancel(nul, T0, JobError("Cancelled", "by a client")) is None
    assert await store.find_by_key("key\x00") is None
    await store.remove(nul)
    await store.release(nul)
    assert await store.get(job.id) == job


def cursor_of(created_at: float, job_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([created_at, job_id])).decode()


async def test_a_list_cursor_holding_nul_is_a_bad_cursor(store: Store) -> None:
    await store.add(queued())
    with pytest.raises(ValueError, match="invalid cursor"):
        await store.list_jobs(cursor=cursor_of(T0, "\x00"))
    with pytest.raises(ValueError, match="invalid cursor"):
        await store.list_jobs(JobStatus.QUEUED, cursor=cursor_of(T0, "a\x00b"))


async def test_sqlite_ends_a_job_left_running_with_no_attempts_left_crashed(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    spent, retryable = queued(), queued().replace(max_attempts=2)
    async with opened(url) as store:
        for job in (spent, retryable):
            await store.add(job)
            await store.start(job.id, T0)
        # closing without release() is what a crash leaves: both stay 'running'
    async with opened(url) as store:
        crashed = await store.get(spent.id)
        assert crashed is not None
        assert (crashed.status, crashed.attempts) == (JobStatus.CRASHED, 1)
        assert crashed.error is not None and "no attempts left" in crashed.error.message
        assert crashed.errors == (crashed.error,)
        assert crashed.completed_at is not None
        requeued = await store.get(retryable.id)
        assert requeued is not None
        assert (requeued.status, requeued.attempts) == (JobStatus.QUEUED, 1)
        counts = await store.counts()
        assert (counts[JobStatus.CRASHED], counts[JobStatus.QUEUED]) == (1, 1)
        assert [entry.job_id for entry in (await store.resume(None, 10))[0]] == [retryable.id]
    async with opened(url) as store:  # and it stays so
        assert await store.get(spent.id) == crashed


async def test_sqlite_a_second_store_through_a_symlink_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "a.db"
    (tmp_path / "b.db").symlink_to(real)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "c.db").symlink_to(real)
    async with opened(f"sqlite:///{real}"):
        for alias in (tmp_path / "b.db", tmp_path / "elsewhere" / "c.db"):
            with pytest.raises(StoreLocked) as info:
                async with opened(f"sqlite:///{alias}"):
                    pass  # pragma: no cover
            assert str(real) in str(info.value)


async def test_sqlite_a_second_store_through_a_hard_link_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "a.db"
    async with opened(f"sqlite:///{real}"):
        pass  # the file exists now
    (tmp_path / "b.db").hardlink_to(real)
    async with opened(f"sqlite:///{real}"):
        with pytest.raises(StoreLocked):
            async with opened(f"sqlite:///{tmp_path / 'b.db'}"):
                pass  # pragma: no cover
