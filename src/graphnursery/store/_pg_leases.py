"""The PostgreSQL store's leases: what this replica holds, and the heartbeat that renews it.

A claim leases a job to one replica until an expiry; the heartbeat renews every lease held
here three times a lease period. A lease the database no longer renews was
taken away (the job was cancelled, or expired and was claimed by another replica): the
engine hears of it through :meth:`StoreEvents.lease_lost` and stops the job.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import NoReturn

import psycopg
import trio

from ..jobs import Job
from .base import StoreEvents

log = logging.getLogger("graphnursery.store.postgres")


class Leases:
    """The leases this replica holds, bounded by the jobs it runs and has claimed.

    Used on the Trio thread only.
    """

    def __init__(self) -> None:
        #: job id -> lease token: a job's result is written only under its token.
        self.tokens: dict[str, str] = {}
        #: Claimed here, not yet handed to a runner by ``start()``.
        self.claimed: dict[str, Job] = {}

    def forget(self, job_id: str) -> str | None:
        """Drop whatever this replica holds of a job; returns the lease token it had."""
        self.claimed.pop(job_id, None)
        return self.tokens.pop(job_id, None)


async def heartbeat(
    leases: Leases,
    events: StoreEvents,
    interval: float,
    renew: Callable[[list[str]], Awaitable[set[str]]],
) -> NoReturn:
    """Every ``interval`` seconds, renew the leases held; report those it could not.

    ``renew(tokens)`` extends the leases with these tokens that are still current and
    returns their jobs' ids. A database error skips one round (the next may succeed before
    the leases lapse). Runs until cancelled.
    """
    while True:
        await trio.sleep(interval)
        held = dict(leases.tokens)
        if not held:
            continue
        try:
            renewed = await renew(list(held.values()))
        except psycopg.Error as exc:
            log.warning("could not renew leases: %s", exc)
            continue
        for job_id, lease_token in held.items():
            if job_id not in renewed and leases.tokens.get(job_id) == lease_token:
                # Cancelled elsewhere, or expired and claimed by another replica.
                leases.forget(job_id)
                events.lease_lost(job_id)
