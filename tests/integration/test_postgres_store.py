"""PostgreSQL specifics: claims by several replicas, leases, fencing, notices across replicas."""

from __future__ import annotations

import dataclasses

import psycopg
import pytest
import trio

from graphnursery import JobError, JobStatus
from graphnursery.errors import StoreError
from graphnursery.store._pg_schema import MIGRATIONS
from stores import T0, as_json, opened, queued

LEASE = {"lease_seconds": 30.0}


def expire_leases(url: str, job_id: str | None = None) -> None:
    """What a dead replica's silence leads to, without waiting for it."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(
            "UPDATE graphnursery_jobs SET lease_expires_at = 0"
            " WHERE status = 'running' AND id = coalesce(%s, id)",
            (job_id,),
        )


def lease_expiry(url: str, job_id: str) -> float:
    """When the job's lease runs out (the database's clock, in epoch seconds)."""
    with psycopg.connect(url, autocommit=True) as connection:
        row = connection.execute(
            "SELECT lease_expires_at FROM graphnursery_jobs WHERE id = %s", (job_id,)
        ).fetchone()
    assert row is not None and row[0] is not None, row
    return float(row[0])


async def test_replicas_claiming_at_once_never_take_the_same_job(postgres_url: str) -> None:
    async with opened(postgres_url, **LEASE) as a, opened(postgres_url, **LEASE) as b:
        jobs = [queued() for _ in range(60)]
        for job in jobs:
            await a.add(job)
        claims: dict[str, list[str]] = {"a": [], "b": []}

        async def claim_all(name: str, store) -> None:  # type: ignore[no-untyped-def]
            while claimed := await store.claim(4, T0):
                claims[name] += [job.id for job in claimed]

        async with trio.open_nursery() as nursery:
            nursery.start_soon(claim_all, "a", a)
            nursery.start_soon(claim_all, "b", b)
        assert not set(claims["a"]) & set(claims["b"])
        assert sorted(claims["a"] + claims["b"]) == sorted(job.id for job in jobs)
        assert claims["a"] and claims["b"]
        claimed = await a.get(jobs[0].id)
        assert claimed is not None
        assert (claimed.status, claimed.attempts) == (JobStatus.RUNNING, 1)


async def test_a_result_written_under_a_stale_lease_is_refused(postgres_url: str) -> None:
    async with opened(postgres_url, **LEASE) as a, opened(postgres_url, **LEASE) as b:
        job = dataclasses.replace(queued(), max_attempts=2)  # one left to run again
        await a.add(job)
        [first] = await a.claim(1, T0)
        assert await a.start(job.id, T0) == first
        assert await b.claim(1, T0) == []  # leased to a
        expire_leases(postgres_url)  # a stops renewing (dead, paused or cut off)
        [second] = await b.claim(1, T0 + 5)
        assert second.attempts == 2
        # a comes back and writes its result: fenced off by the lease token
        assert await a.finish(job.id, JobStatus.COMPLETED, T0 + 6, as_json({"by": "a"})) is None
        running = await b.get(job.id)
        assert running is not None and running.status is JobStatus.RUNNING
        assert await b.start(job.id, T0 + 5) == second
        done = await b.finish(job.id, JobStatus.COMPLETED, T0 + 7, as_json({"by": "b"}))
        assert done is not None and done.result == {"by": "b"}
        assert await a.get(job.id) == done


async def test_release_lets_another_replica_claim_at_once(postgres_url: str) -> None:
    async with opened(postgres_url, **LEASE) as a, opened(postgres_url, **LEASE) as b:
        ran, waiting = queued(), queued()
        await a.add(ran)
        await a.add(waiting)
        await a.claim(2, T0)
        await a.start(ran.id, T0)
        await a.release(ran.id)  # it ran (attempt 1 counted) and was interrupted
        await a.release(waiting.id)  # claimed, never started: no attempt counted
        claimed = {job.id: job.attempts for job in await b.claim(5, T0)}
        assert claimed == {ran.id: 2, waiting.id: 1}


class Heard:
    """A StoreEvents that records what the store heard."""

    def __init__(self) -> None:
        self.done: list[str] = []
        self.cancelled: list[str] = []
        self.lost: list[str] = []
        self.events: list[str] = []
        self.work = 0
        self.changed = trio.Event()

    def _heard(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    def job_done(self, job_id: str) -> None:
        self.done.append(job_id)
        self._heard()

    def job_cancelled(self, job_id: str) -> None:
        self.cancelled.append(job_id)
        self._heard()

    def lease_lost(self, job_id: str) -> None:
        self.lost.append(job_id)
        self._heard()

    def work_available(self) -> None:
        self.work += 1
        self._heard()

    def job_events(self, job_id: str) -> None:
        self.events.append(job_id)
        self._heard()

    async def until(self, condition) -> None:  # type: ignore[no-untyped-def]
        with trio.fail_after(10):
            while not condition():
                await self.changed.wait()


async def test_a_replica_hears_submits_results_and_cancels_made_on_another(
    postgres_url: str,
) -> None:
    async with opened(postgres_url, **LEASE) as a, opened(postgres_url, **LEASE) as b:
        heard = Heard()
        async with trio.open_nursery() as nursery:
            await nursery.start(a.run_background, heard)
            job, other = queued(), queued()
            await b.add(job)
            await heard.until(lambda: heard.work >= 1)
            await b.start(job.id, T0)
            await b.finish(job.id, JobStatus.COMPLETED, T0 + 1, as_json(42))
            await heard.until(lambda: job.id in heard.done)
            await b.add(other)
            cancel = JobError("Cancelled", "by a client")
            assert await b.cancel(other.id, T0 + 2, cancel) is not None  # type: ignore[attr-defined]
            await heard.until(lambda: other.id in heard.cancelled)
            nursery.cancel_scope.cancel()


async def test_a_replica_hears_events_appended_on_another(postgres_url: str) -> None:
    async with opened(postgres_url, **LEASE) as a, opened(postgres_url, **LEASE) as b:
        heard = Heard()
        async with trio.open_nursery() as nursery:
            await nursery.start(a.run_background, heard)
            job, quiet = queued(), queued()
            await b.add(job)
            await b.add(quiet)
            assert await b.append_events(job.id, 1, [("tick", b"1")])
            await heard.until(lambda: job.id in heard.events)
            found = await a.read_events(job.id, 0, 10)
            assert found is not None and [event.data for event in found[1]] == [b"1"]
            # all dropped: nothing for a stream to read, nothing to hear
            assert await b.append_events(quiet.id, 1, [("tick", b"2")], limit=-1)
            assert await b.append_events(job.id, 1, [("tick", b"3")])
            await heard.until(lambda: heard.events.count(job.id) == 2)
            nursery.cancel_scope.cancel()
        assert quiet.id not in heard.events


async def test_an_append_after_a_cancel_on_another_replica_is_refused(
    postgres_url: str,
) -> None:
    async with opened(postgres_url, **LEASE) as a, opened(postgres_url, **LEASE) as b:
        job = queued()
        await a.add(job)
        await a.claim(1, T0)
        await a.start(job.id, T0)
        assert await a.append_events(job.id, 1, [("tick", b"1")])
        assert await b.cancel(job.id, T0 + 1, JobError("Cancelled", "by a client"))
        assert not await a.append_events(job.id, 1, [("tick", b"2")])
        found = await a.read_events(job.id, 0, 10)
        assert found is not None
        assert found[0].status is JobStatus.CANCELLED and found[0].events == 1
        assert [event.id for event in found[1]] == [1]


async def test_an_append_waiting_on_a_cancel_in_progress_finds_the_job_ended(
    postgres_url: str,
) -> None:
    """The append takes the job row's lock first: one that comes while a cancel holds it
    waits, and then sees the job cancelled (no event may follow the job's end)."""
    async with opened(postgres_url, **LEASE) as store:
        job = queued()
        await store.add(job)
        with psycopg.connect(postgres_url) as cancelling:
            cancelling.execute(
                "UPDATE graphnursery_jobs SET status = 'cancelled', completed_at = %s"
                " WHERE id = %s",
                (T0 + 1, job.id),
            )
            async with trio.open_nursery() as nursery:
                appended: list[bool] = []

                async def append() -> None:
                    appended.append(await store.append_events(job.id, 1, [("tick", b"1")]))

                nursery.start_soon(append)
                await until_a_backend_waits_on_a_lock(postgres_url)
                cancelling.commit()
        assert appended == [False]
        assert await store.read_events(job.id, 0, 10) == (await store.get(job.id), [])


async def until_a_backend_waits_on_a_lock(url: str) -> None:
    """Return once some session of the database waits for a row lock (PostgreSQL has no
    event to wait for: its activity view is polled)."""
    with trio.fail_after(10):
        while True:
            with psycopg.connect(url, autocommit=True) as connection:
                row = connection.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                ).fetchone()
            if row is not None and row[0]:
                return
            await trio.sleep(0.01)


def event_rows(url: str) -> list[tuple[str, int, str]]:
    with psycopg.connect(url, autocommit=True) as connection:
        return connection.execute(
            "SELECT job_id, seq, data FROM graphnursery_job_events ORDER BY job_id, seq"
        ).fetchall()


async def test_a_logs_rows_keep_the_text_and_go_with_their_job(postgres_url: str) -> None:
    async with opened(postgres_url, **LEASE) as store:
        evicted, removed, deleted, kept = queued(), queued(), queued(), queued()
        for job in (evicted, removed, deleted, kept):
            await store.add(job)
            await store.append_events(job.id, 1, [("tick", b'{"a" :  1}'), ("tick", b"2")])
        await store.finish(evicted.id, JobStatus.COMPLETED, T0 + 1, as_json(1))
        assert await store.evict(T0 + 2) == 1
        await store.remove(removed.id)
        with psycopg.connect(postgres_url, autocommit=True) as connection:
            # as a replica of the version before the event log deletes a job
            connection.execute("DELETE FROM graphnursery_jobs WHERE id = %s", (deleted.id,))
        assert event_rows(postgres_url) == [(kept.id, 1, '{"a" :  1}'), (kept.id, 2, "2")]


async def test_a_database_of_the_first_schema_migrates_and_keeps_its_jobs(
    postgres_url: str,
) -> None:
    job = queued()
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        # as a replica of the version before made it
        connection.execute("CREATE TABLE graphnursery_schema_version (version integer NOT NULL)")
        for statement in MIGRATIONS[0].split(";"):
            if statement.strip():
                connection.execute(statement)
        connection.execute("INSERT INTO graphnursery_schema_version (version) VALUES (1)")
        connection.execute(
            "INSERT INTO graphnursery_jobs (id, status, input, timeout, created_at)"
            " VALUES (%s, 'queued', '{\"n\": 1}', %s, %s)",
            (job.id, job.timeout, job.created_at),
        )
    async with opened(postgres_url, **LEASE) as store:
        assert await store.get(job.id) == job
        assert await store.append_events(job.id, 1, [("tick", b"1")], limit=1, dropped=1)
        [claimed] = await store.claim(1, T0)
        assert (claimed.stream_mode, claimed.events, claimed.events_dropped) == (None, 1, 1)
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        row = connection.execute("SELECT max(version) FROM graphnursery_schema_version").fetchone()
        assert row == (len(MIGRATIONS),) == (5,)


async def test_the_heartbeat_renews_leases_and_reports_lost_ones(postgres_url: str) -> None:
    # heartbeat every 0.5 s: a busy machine may be 1 s late before a held lease lapses
    lease = {"lease_seconds": 1.5}
    async with opened(postgres_url, **lease) as a, opened(postgres_url, **lease) as b:
        heard = Heard()
        kept, lost = queued(), dataclasses.replace(queued(), max_attempts=2)
        await a.add(kept)
        await a.add(lost)
        async with trio.open_nursery() as nursery:
            await nursery.start(a.run_background, heard)
            await a.claim(2, T0)
            await a.start(kept.id, T0)
            await a.start(lost.id, T0)
            # one lease lapses (a paused too long) and b takes the job over: a's next renewal
            # finds it is no longer a's to run
            expire_leases(postgres_url, lost.id)
            [taken] = await b.claim(1, T0)
            assert taken.id == lost.id
            await heard.until(lambda: lost.id in heard.lost)
            await b.start(lost.id, T0)
            assert await b.finish(lost.id, JobStatus.COMPLETED, T0 + 1, as_json("by b")) is not None
            # the other outlives two lease periods because a keeps renewing it
            first_expiry = lease_expiry(postgres_url, kept.id)
            for _ in range(2):
                await trio.sleep(1.5)  # a lease period passes; nothing to wait on but time
                assert await b.claim(1, T0) == []
            assert lease_expiry(postgres_url, kept.id) > first_expiry + 1.5  # renewed, again
            nursery.cancel_scope.cancel()
        assert heard.lost == [lost.id]


#: The error of a job whose lease expired with no attempts left (see the next tests).
NO_ATTEMPTS_LEFT = JobError(
    "LeaseExpired",
    "the replica running the job stopped renewing its lease, and the job has no attempts left",
)
#: The error of one whose lease expired and that another replica ran again.
RAN_AGAIN = JobError(
    "LeaseExpired", "the replica running the job stopped renewing its lease; it ran again"
)
SHORT_LEASE = {"lease_seconds": 0.5}  # the dead replica's; its leases are expired at once


async def test_an_expired_lease_with_no_attempts_left_ends_crashed_not_claimed_again(
    postgres_url: str,
) -> None:
    async with (
        opened(postgres_url, **SHORT_LEASE) as a,
        opened(postgres_url, **LEASE) as b,
        opened(postgres_url, **LEASE) as watcher,
    ):
        heard = Heard()
        async with trio.open_nursery() as nursery:
            await nursery.start(watcher.run_background, heard)  # a long-poll's replica
            job = queued()  # max_attempts 1
            await a.add(job)
            [claimed] = await a.claim(1, T0)
            await a.start(job.id, T0)
            assert claimed.attempts == 1
            expire_leases(postgres_url)  # a died while the job ran
            assert await b.claim(1, T0 + 5) == []  # not run a second time
            crashed = await b.get(job.id)
            assert crashed is not None
            assert (crashed.status, crashed.attempts) == (JobStatus.CRASHED, 1)
            assert crashed.completed_at == T0 + 5
            assert crashed.error == NO_ATTEMPTS_LEFT
            assert crashed.errors == (NO_ATTEMPTS_LEFT,)
            await heard.until(lambda: job.id in heard.done)  # long-polls elsewhere wake
            assert await b.claim(1, T0 + 6) == [] and await a.claim(1, T0 + 6) == []
            # its lease is gone: a's result, should it come back, is refused
            assert await a.finish(job.id, JobStatus.COMPLETED, T0 + 7, as_json("late")) is None
            assert await b.get(job.id) == crashed
            nursery.cancel_scope.cancel()
        assert heard.done == [job.id]


async def test_an_expired_lease_with_attempts_left_is_claimed_again_until_none_are_left(
    postgres_url: str,
) -> None:
    async with opened(postgres_url, **SHORT_LEASE) as a, opened(postgres_url, **LEASE) as b:
        job = dataclasses.replace(queued(), max_attempts=2)
        await a.add(job)
        await a.claim(1, T0)
        await a.start(job.id, T0)
        expire_leases(postgres_url)
        [again] = await b.claim(1, T0 + 5)
        assert (again.id, again.status, again.attempts) == (job.id, JobStatus.RUNNING, 2)
        assert again.errors == (RAN_AGAIN,)
        await b.start(job.id, T0 + 5)
        expire_leases(postgres_url)  # b dies too: the job has had both its attempts
        assert await a.claim(1, T0 + 10) == []
        crashed = await a.get(job.id)
        assert crashed is not None
        assert (crashed.status, crashed.attempts) == (JobStatus.CRASHED, 2)
        assert crashed.errors == (RAN_AGAIN, NO_ATTEMPTS_LEFT)


async def test_a_claim_ends_exhausted_jobs_and_still_takes_what_may_run(
    postgres_url: str,
) -> None:
    async with opened(postgres_url, **SHORT_LEASE) as a, opened(postgres_url, **LEASE) as b:
        exhausted, retried = queued(), dataclasses.replace(queued(), max_attempts=3)
        waiting = queued()
        for job in (exhausted, retried):
            await a.add(job)
        await a.claim(2, T0)
        await a.add(waiting)
        expire_leases(postgres_url)
        claimed = {job.id: job.attempts for job in await b.claim(2, T0 + 5)}
        assert claimed == {retried.id: 2, waiting.id: 1}
        ended = await b.get(exhausted.id)
        assert ended is not None and ended.status is JobStatus.CRASHED


async def test_an_unreachable_database_is_a_store_error_with_the_servers_words() -> None:
    with pytest.raises(StoreError, match=r"cannot connect to PostgreSQL at .*:1/test.*refused"):
        async with opened("postgresql://postgres@127.0.0.1:1/test"):
            pass  # pragma: no cover
