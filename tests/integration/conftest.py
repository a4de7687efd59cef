from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from graphnursery.store import Store
from stores import opened


def _url_for(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every store's URL, one test each."""
    return _url_for(request.param, tmp_path, request)


@pytest.fixture(params=["sqlite", "postgres"])
def durable_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The durable stores' URLs."""
    return _url_for(request.param, tmp_path, request)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    async with opened(store_url) as opened_store:
        yield opened_store
