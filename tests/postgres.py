"""A real PostgreSQL for tests: each test gets a schema of its own, dropped afterwards.

The server is ``GRAPHNURSERY_TEST_POSTGRES`` (default ``postgresql://postgres@127.0.0.1:5432/test``).
In CI (``CI=true``) an unreachable server fails the test; elsewhere it skips, saying why.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import pytest

BASE_URL = os.environ.get("GRAPHNURSERY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


#: Why the PostgreSQL tests were skipped, for the end-of-run banner (see conftest.py).
SKIPPED: list[str] = []


def _unreachable(reason: str) -> None:
    message = f"PostgreSQL at {BASE_URL} is unreachable ({reason})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}: the PostgreSQL tests must run in CI")
    SKIPPED.append(message)
    pytest.skip(f"SKIPPING POSTGRESQL TESTS: {message}; set GRAPHNURSERY_TEST_POSTGRES")


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A store URL whose tables live in a fresh schema; the schema is dropped on exit."""
    try:
        import psycopg
    except ImportError as exc:
        _unreachable(f"psycopg is not installed: {exc}")
        raise
    schema = f"gn_test_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(BASE_URL, autocommit=True, connect_timeout=3) as connection:
            connection.execute(f"CREATE SCHEMA {schema}")
    except psycopg.OperationalError as exc:
        _unreachable(str(exc).strip())
    separator = "&" if "?" in BASE_URL else "?"
    try:
        yield f"{BASE_URL}{separator}options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(BASE_URL, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")
