"""The PostgreSQL store's claims: a replica leasing queued jobs (or jobs whose lease
expired) to run, in submit order or fairly between workspaces (see ``Store.claim``)."""

from __future__ import annotations

import abc
import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ..jobs import Job
from ._pg_leases import Leases
from ._pg_notices import Notice
from ._pg_schema import Connection
from ._pg_sql import (
    CLAIM_EXPIRED,
    CLAIM_FAIR,
    CLAIM_LOCK,
    CLAIM_QUEUED,
    CLAIMED_BEFORE,
    CRASH_EXPIRED,
)
from ._rows import LEASE_EXPIRED, LEASE_EXPIRED_NO_ATTEMPTS_LEFT, dump_error, row_to_job
from .base import Shares

T = TypeVar("T")

log = logging.getLogger("graphnursery.store.postgres")


class Claims(abc.ABC):
    """``claim``, for :class:`~graphnursery.store.postgres.PostgresStore`."""

    owner: str
    lease_seconds: float
    _leases: Leases

    @abc.abstractmethod
    async def _run(
        self,
        fn: Callable[[Connection], T],
        *,
        engine: bool = False,
        again: Callable[[Connection], T] | None = None,
    ) -> T: ...

    @abc.abstractmethod
    def _notify(self, connection: Connection, notice: Notice, job_id: str) -> None: ...

    async def claim(
        self,
        limit: int,
        started_at: float,
        graphs: Sequence[str] | None = None,
        shares: Shares | None = None,
    ) -> list[Job]:
        """Lease up to ``limit`` jobs to this replica: expired leases first, then the queue.

        A job whose lease expired with no attempts left is not claimed: it ends ``crashed``
        (at ``started_at``), and long-polls on it wake on every replica.
        """
        params: dict[str, Any] = {
            "limit": limit,
            "started_at": started_at,
            "ended_at": started_at,
            "owner": self.owner,
            "lease": self.lease_seconds,
            "lease_expired": dump_error(LEASE_EXPIRED),
            "no_attempts_left": dump_error(LEASE_EXPIRED_NO_ATTEMPTS_LEFT),
            "claim": uuid.uuid4().hex,  # in each lease token, for a retry to find them
            "graphs": None if graphs is None else list(graphs),
        }
        if shares is not None:
            params["default_cap"] = shares.default
            params["caps"] = [name for name, _ in shares.caps]
            params["cap_values"] = [cap for _, cap in shares.caps]
        claim_queued = CLAIM_QUEUED if shares is None else CLAIM_FAIR
        crashed: list[str] = []

        def claim(connection: Connection) -> list[tuple[Any, ...]]:
            # In the claim's transaction, so no other replica claims these meanwhile; the
            # notices are sent when it commits.
            ended = [job_id for (job_id,) in connection.execute(CRASH_EXPIRED, params)]
            for job_id in ended:
                self._notify(connection, Notice.DONE, job_id)
            crashed[:] = ended  # for the log: the last try that got this far
            rows = connection.execute(CLAIM_EXPIRED, {**params, "limit": limit}).fetchall()
            if len(rows) < limit:
                more = {**params, "limit": limit - len(rows)}
                if shares is not None:  # one fair claim at a time: each counts the others'
                    connection.execute(CLAIM_LOCK)
                rows += connection.execute(claim_queued, more).fetchall()
            return sorted(rows)

        def again(connection: Connection) -> list[tuple[Any, ...]]:
            # A first try that committed leased these here: never claim past them.
            before = connection.execute(CLAIMED_BEFORE, params).fetchall()
            return sorted(before) if before else claim(connection)

        jobs = []
        for row in await self._run(claim, engine=True, again=again):
            job = row_to_job(row[2:])
            self._leases.tokens[job.id] = row[1]
            self._leases.claimed[job.id] = job
            jobs.append(job)
        if any(job.attempts > 1 for job in jobs):
            log.warning(
                "re-running %d jobs whose replica's lease expired",
                sum(job.attempts > 1 for job in jobs),
            )
        if crashed:
            log.warning(
                "%d jobs whose replica's lease expired had no attempts left; they ended crashed",
                len(crashed),
            )
        return jobs
