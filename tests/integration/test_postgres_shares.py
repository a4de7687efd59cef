"""PostgreSQL claims shared between workspaces: round-robin, and each workspace's
max_running held across replicas (two stores on one database are two replicas)."""

from __future__ import annotations

import trio

from graphnursery import JobStatus
from graphnursery.store import Shares, Store
from stores import T0, opened, queued


async def add(store: Store, workspace: str, count: int, start: float) -> list[str]:
    ids = []
    for n in range(count):
        job = queued(created_at=start + n).replace(workspace=workspace)
        await store.add(job)
        ids.append(job.id)
    return ids


async def test_a_fair_claim_takes_the_workspaces_in_turn(postgres_url: str) -> None:
    async with opened(postgres_url) as store:
        a = await add(store, "a", 5, T0)
        b = await add(store, "b", 2, T0 + 10)  # queued after all of a's
        claimed = await store.claim(4, T0 + 20, shares=Shares())
        assert {job.id for job in claimed} == {a[0], b[0], a[1], b[1]}  # not a's first four
        # In submit order, without shares: a's first.
        rest = await store.claim(2, T0 + 21)
        assert [job.id for job in rest] == [a[2], a[3]]


async def test_max_running_holds_across_replicas(postgres_url: str) -> None:
    async with opened(postgres_url) as one, opened(postgres_url) as two:
        await add(one, "a", 6, T0)
        b = await add(one, "b", 1, T0 + 10)
        shares = Shares(default=2, caps=(("b", 1),))
        claimed: list[list[str]] = []

        async def claim(store: Store) -> None:
            claimed.append([job.workspace for job in await store.claim(5, T0 + 20, shares=shares)])

        async with trio.open_nursery() as nursery:  # both replicas at once
            nursery.start_soon(claim, one)
            nursery.start_soon(claim, two)
        taken = [workspace for each in claimed for workspace in each]
        assert sorted(taken) == ["a", "a", "b"]  # a at its 2, b at its 1, across both

        # Nothing more while they run; one of a's ends: one more of a's may run.
        assert await two.claim(5, T0 + 21, shares=shares) == []
        running = [job for job in (await one.list_jobs(workspace="a"))[0] if job.attempts]
        done = running[0]
        holder = one if done.id in one._leases.tokens else two  # type: ignore[attr-defined]
        await holder.start(done.id, T0 + 22)
        await holder.finish(done.id, JobStatus.COMPLETED, T0 + 23, b"1")
        again = await two.claim(5, T0 + 24, shares=shares)
        assert [job.workspace for job in again] == ["a"]
        assert b[0] not in [job.id for job in again]
