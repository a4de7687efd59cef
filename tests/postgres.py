"""A real PostgreSQL for tests: each test gets a schema of its own, dropped afterwards.

The server is ``GRAPHNURSERY_TEST_POSTGRES`` (default ``postgresql://postgres@127.0.0.1:5432/test``).
In CI (``CI`` set to anything but ``0``/``false``/``no``/``off``: ``CI=true``, ``CI=1``, ...) an
unreachable server, or psycopg not installed, fails the run; elsewhere the tests skip, saying why.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

try:
    import psycopg
except ImportError as exc:  # the 'postgres' extra (part of the 'test' extra) is not installed
    MISSING_PSYCOPG: str | None = (
        f"psycopg is not installed ({exc}): install the test extras, pip install -e '.[test]'"
    )
else:
    MISSING_PSYCOPG = None

BASE_URL = os.environ.get("GRAPHNURSERY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")

#: Whether this run is CI's, where the PostgreSQL tests must run: ``CI`` as CI services set
#: it (``true``, ``1``, ``yes``...), not unset, empty or ``0``/``false``/``no``/``off``.
IN_CI = os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no", "off"}


#: Why the PostgreSQL tests were skipped, for the end-of-run banner (see conftest.py).
SKIPPED: list[str] = []


def _cannot_run(message: str, hint: str) -> None:
    if IN_CI:
        pytest.fail(f"{message}: the PostgreSQL tests must run in CI")
    SKIPPED.append(message)
    pytest.skip(f"SKIPPING POSTGRESQL TESTS: {message}; {hint}")


def _unreachable(reason: str) -> None:
    message = f"PostgreSQL at {BASE_URL} is unreachable ({reason})"
    _cannot_run(message, "set GRAPHNURSERY_TEST_POSTGRES")


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A store URL whose tables live in a fresh schema; the schema is dropped on exit."""
    if MISSING_PSYCOPG is not None:
        _cannot_run(MISSING_PSYCOPG, "the PostgreSQL server was not tried")
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


def terminate(application_name: str) -> int:
    """Terminate the server's connections of this application; how many there were."""
    with psycopg.connect(BASE_URL, autocommit=True) as connection:
        row = connection.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = %s AND pid <> pg_backend_pid()",
            (application_name,),
        ).fetchone()
    return 0 if row is None else int(row[0])


def allow_login(role: str, allowed: bool) -> None:
    with psycopg.connect(BASE_URL, autocommit=True) as connection:
        connection.execute(f"ALTER ROLE {role} {'LOGIN' if allowed else 'NOLOGIN'}")


@contextmanager
def own_role(postgres_url: str) -> Iterator[tuple[str, str]]:
    """A login role of the test's own, allowed into its schema: its store URL and name."""
    role = f"gn_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        row = connection.execute("SELECT current_schema()").fetchone()
        assert row is not None
        connection.execute(f"CREATE ROLE {role} LOGIN")
        connection.execute(f"GRANT ALL ON SCHEMA {row[0]} TO {role}")
    try:
        yield _as_role(postgres_url, role), role
    finally:
        with psycopg.connect(BASE_URL, autocommit=True) as connection:
            connection.execute(f"ALTER ROLE {role} NOLOGIN")
            terminate(role)
            connection.execute(f"DROP OWNED BY {role} CASCADE")
            connection.execute(f"DROP ROLE {role}")


def _as_role(url: str, role: str) -> str:
    """``url`` (postgresql://user@host/db?...) logging in as ``role``, named as its
    application too (so its connections can be found and cut)."""
    parts = urlsplit(url)
    netloc = f"{role}@{parts.netloc.rpartition('@')[2]}"
    query = f"{parts.query}&application_name={role}" if parts.query else f"application_name={role}"
    return urlunsplit(parts._replace(netloc=netloc, query=query))
