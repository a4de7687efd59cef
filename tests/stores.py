"""Helpers for store tests: open a store by URL, make a queued job."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson

from graphnursery import Job, JobStatus
from graphnursery.jobs import new_job_id
from graphnursery.store import Store, open_store

T0 = 1_700_000_000.0


@asynccontextmanager
async def opened(url: str, **options: float) -> AsyncIterator[Store]:
    store = open_store(url, **options)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def as_json(value: Any) -> bytes:
    """A result as the engine hands it to a store: JSON text, as the worker encoded it."""
    return orjson.dumps(value)


def queued(job_input: Any = None, created_at: float = T0, timeout: float = 30.0) -> Job:
    return Job(
        id=new_job_id(),
        input={"n": 1} if job_input is None else job_input,
        status=JobStatus.QUEUED,
        created_at=created_at,
        timeout=timeout,
    )
