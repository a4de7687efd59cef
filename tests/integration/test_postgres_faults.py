"""PostgreSQL losing connections: operations retry, nothing runs or finishes twice, and
past ``unavailable_exit`` they raise StoreUnavailable. Against the real server."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
import trio

from graphnursery import Config, JobError, JobStatus, open_engine
from graphnursery.errors import StoreUnavailable
from graphnursery.store import _pg_retry
from graphnursery.store.postgres import PostgresStore
from postgres import allow_login, terminate
from stores import T0, as_json, queued


@pytest.fixture
def app_url(postgres_url: str) -> tuple[str, str]:
    """The test's store URL with an application_name of its own, and that name."""
    name = f"gn_test_{uuid.uuid4().hex[:12]}"
    separator = "&" if "?" in postgres_url else "?"
    return f"{postgres_url}{separator}application_name={name}", name


@pytest.fixture
def lose_commit_answers(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Arm it, and the next transaction commits, then fails as a broken connection would
    before the answer arrives."""
    armed: list[bool] = []
    in_transaction = _pg_retry._in_transaction

    def committing_then_failing(*args: Any) -> Any:
        value = in_transaction(*args)
        if armed:
            armed.clear()
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return value

    monkeypatch.setattr(_pg_retry, "_in_transaction", committing_then_failing)
    return lambda: armed.append(True)


async def test_a_retry_recognises_what_its_first_try_committed(
    postgres_url: str, lose_commit_answers: Callable[[], None]
) -> None:
    store = PostgresStore(postgres_url)
    await store.open()
    try:
        claimed_job, started_job = queued(created_at=T0), queued(created_at=T0 + 1)
        lose_commit_answers()
        assert await store.add(claimed_job) == claimed_job  # not "already exists"
        with pytest.raises(ValueError, match="already exists"):  # a second add still is
            await store.add(claimed_job)
        lose_commit_answers()
        [claimed] = await store.claim(1, T0)  # not an empty claim, the job leased unseen
        assert (claimed.id, claimed.attempts) == (claimed_job.id, 1)
        assert await store.start(claimed_job.id, T0) == claimed
        lose_commit_answers()
        done = await store.finish(claimed_job.id, JobStatus.COMPLETED, T0 + 2, as_json({"ok": 1}))
        assert done is not None and done.result == {"ok": 1}  # not refused as a lost lease

        await store.add(started_job)
        lose_commit_answers()
        running = await store.start(started_job.id, T0 + 3)
        assert running is not None and running.attempts == 1
        lose_commit_answers()
        cancelled = await store.cancel(started_job.id, T0 + 4, JobError("Cancelled", "by me"))
        assert cancelled is not None and cancelled.status is JobStatus.CANCELLED
        assert await store.get(claimed_job.id) == done
        assert await store.get(started_job.id) == cancelled
        assert store.available
    finally:
        await store.close()


async def test_a_retried_append_recognises_the_events_its_first_try_committed(
    postgres_url: str, lose_commit_answers: Callable[[], None]
) -> None:
    store = PostgresStore(postgres_url)
    await store.open()
    try:
        job = queued()
        await store.add(job)
        assert await store.append_events(job.id, 1, [("tick", b"1")])
        lose_commit_answers()
        assert await store.append_events(job.id, 1, [("tick", b"2"), ("tick", b"3")], limit=2)
        lose_commit_answers()
        assert await store.append_events(job.id, 1, [("tick", b"2")])  # the same again: kept
        found = await store.read_events(job.id, 0, 10)
        assert found is not None
        read, events = found
        assert [(event.id, event.data) for event in events] == [(1, b"1"), (2, b"2"), (3, b"2")]
        assert (read.events, read.events_dropped) == (3, 1)
        await store.cancel(job.id, T0, JobError("Cancelled", "by me"))
        lose_commit_answers()
        assert not await store.append_events(job.id, 1, [("tick", b"4")])
    finally:
        await store.close()


async def test_a_database_away_past_unavailable_exit_raises_store_unavailable(
    own_role: tuple[str, str],
) -> None:
    url, role = own_role
    store = PostgresStore(url, unavailable_exit=1.0)
    await store.open()
    try:
        job = queued()
        await store.add(job)
        assert store.available
        await trio.to_thread.run_sync(allow_login, role, False)
        assert await trio.to_thread.run_sync(terminate, role) >= 1
        with pytest.raises(StoreUnavailable) as info:
            await store.get(job.id)
        assert "has been unreachable for" in str(info.value)
        assert role in str(info.value)  # where: the role, host and database
        assert not store.available
        await trio.to_thread.run_sync(allow_login, role, True)
        assert await store.get(job.id) == job
        assert store.available
    finally:
        await store.close()


async def test_jobs_go_through_once_each_while_connections_are_terminated(
    app_url: tuple[str, str],
) -> None:
    url, name = app_url
    store = PostgresStore(url)
    config = Config(graph="examples/echo.py", workers=2, store=url)
    terminated = 0
    async with open_engine(config, store) as engine:
        ids = []
        for i in range(50):
            ids.append((await engine.submit({"i": i})).id)
            if i % 5 == 0:
                terminated += await trio.to_thread.run_sync(terminate, name)
        jobs = []
        for job_id in ids:  # each result read with the connections cut after the one before
            jobs.append(await engine.wait(job_id, 60))
            terminated += await trio.to_thread.run_sync(terminate, name)
        metrics = engine.metrics.render().decode()
    assert terminated >= 50
    # recorded once each: a retried finish is recognised, not refused nor counted twice
    assert 'graphnursery_jobs_finished_total{graph="echo",status="completed"} 50.0' in metrics
    assert [job.status for job in jobs] == [JobStatus.COMPLETED] * 50
    assert [job.result for job in jobs] == [{"echo": {"i": i}} for i in range(50)]
    assert [(job.attempts, job.errors) for job in jobs] == [(1, ())] * 50
