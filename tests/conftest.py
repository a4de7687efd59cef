from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from support import Gate

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
GRAPHS = ROOT / "tests" / "graphs"

# Graph specs in tests are paths relative to the repository root, as a user would type them.
os.chdir(ROOT)
sys.path.insert(0, str(ROOT / "tests"))

from postgres import IN_CI, MISSING_PSYCOPG, SKIPPED  # noqa: E402  (needs the path above)

#: A test module that imports psycopg (or the store that does) when it is imported: every
#: test in it needs PostgreSQL.
IMPORTS_PSYCOPG = re.compile(r"^(import psycopg|from graphnursery\.store\.postgres import)", re.M)
#: The modules left out because psycopg is not installed.
NOT_COLLECTED: list[str] = []


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A working directory for a server subprocess, so its default SQLite store
    (``./graphnursery.db``) lands in the test's temporary directory. Graph paths relative
    to the repository root still resolve there."""
    for name in ("examples", "tests"):
        (tmp_path / name).symlink_to(ROOT / name)
    return tmp_path


@pytest.fixture
def gate(tmp_path: Path) -> Gate:
    """A ``support.Gate`` in the test's temporary directory, closed until the test opens it."""
    from support import Gate

    return Gate(tmp_path / "gate")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL store URL on a schema of the test's own (see ``tests/postgres.py``)."""
    from postgres import postgres_schema

    with postgres_schema() as url:
        yield url


@pytest.fixture
def own_role(postgres_url: str) -> Iterator[tuple[str, str]]:
    """A login role of the test's own in its schema (to lock it out): its store URL and name."""
    from postgres import own_role

    with own_role(postgres_url) as role:
        yield role


def pytest_configure(config: pytest.Config) -> None:
    if MISSING_PSYCOPG is not None and IN_CI:
        raise pytest.UsageError(f"{MISSING_PSYCOPG}: the PostgreSQL tests must run in CI")


def pytest_ignore_collect(collection_path: Path) -> bool | None:
    """Without psycopg, leave out the modules that cannot even be imported (saying so at the
    end), rather than failing their collection with a bare ModuleNotFoundError."""
    if MISSING_PSYCOPG is None or collection_path.suffix != ".py":
        return None
    if IMPORTS_PSYCOPG.search(collection_path.read_text()):
        NOT_COLLECTED.append(str(collection_path.relative_to(ROOT)))
        return True
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses the PostgreSQL server, so ``-m 'not postgres'`` leaves them."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        values = [] if callspec is None else list(callspec.params.values())
        if "postgres_url" in getattr(item, "fixturenames", ()) or "postgres" in values:
            item.add_marker(pytest.mark.postgres)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SKIPPED or NOT_COLLECTED:
        terminalreporter.section("POSTGRESQL TESTS SKIPPED", sep="!", red=True, bold=True)
        if NOT_COLLECTED:
            terminalreporter.write_line(f"{MISSING_PSYCOPG}; not collected:")
            for module in NOT_COLLECTED:
                terminalreporter.write_line(f"  {module}")
        if SKIPPED:
            terminalreporter.write_line(f"{len(SKIPPED)} tests did not run: {SKIPPED[0]}")
        terminalreporter.write_line("In CI (CI=true, CI=1, ...) this is a failure.")


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL of each kind: memory, a SQLite file of the test's own, PostgreSQL (a
    schema of the test's own)."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def _server_setting(name: str, value: object) -> Iterator[None]:
    """``name = value`` for every test server this test starts (see ``support.DEFAULTS``)."""
    import support

    support.DEFAULTS[name] = value
    try:
        yield
    finally:
        support.DEFAULTS.pop(name, None)


@pytest.fixture(params=["engine thread", "one loop"])
def both_engine_loops(request: pytest.FixtureRequest) -> Iterator[None]:
    """Run a test with the engine in a thread of its own (the default) and in the HTTP loop."""
    yield from _server_setting("engine_thread", request.param == "engine thread")


@pytest.fixture(params=["fast path", "quart"])
def both_http_paths(request: pytest.FixtureRequest) -> Iterator[None]:
    """Run a test against the job routes' fast path and against the Quart routes alone."""
    yield from _server_setting("fast_path", request.param == "fast path")
