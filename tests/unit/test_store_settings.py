"""The store_unavailable_exit setting: validated, read from the environment, and handed to
the PostgreSQL store by open_store."""

from __future__ import annotations

import pytest

from graphnursery import Config
from graphnursery.errors import ConfigError, StoreError, StoreUnavailable
from graphnursery.store import open_store


def test_store_unavailable_exit_defaults_to_a_minute_and_must_be_positive() -> None:
    assert Config(graph="g.py").store_unavailable_exit == 60.0
    for bad in (0, -1, float("nan"), "60"):
        with pytest.raises(ConfigError) as info:
            Config(graph="g.py", store_unavailable_exit=bad)
        assert info.value.setting == "store_unavailable_exit"


def test_store_unavailable_exit_comes_from_the_environment() -> None:
    environ = {"GRAPHNURSERY_GRAPH": "g.py", "GRAPHNURSERY_STORE_UNAVAILABLE_EXIT": "7.5"}
    assert Config.from_env(environ).store_unavailable_exit == 7.5


def test_open_store_hands_it_to_postgresql_and_the_old_call_still_works() -> None:
    pytest.importorskip("psycopg")
    url = "postgresql://someone@db.example:5433/jobs"
    store = open_store(url, lease_seconds=5.0, unavailable_exit=3.0)
    assert store.available  # not opened: nothing failed yet
    assert store._retrying.unavailable_exit == 3.0  # type: ignore[attr-defined]
    assert open_store(url)._retrying.unavailable_exit == 60.0  # type: ignore[attr-defined]
    assert open_store("memory://").available


def test_store_unavailable_is_a_store_error_saying_where_and_how_long() -> None:
    error = StoreUnavailable("someone@db.example:5433/jobs", 61.2)
    assert isinstance(error, StoreError)
    assert str(error).startswith(
        "the database at someone@db.example:5433/jobs has been unreachable for 61 s"
    )
    assert (error.where, error.seconds) == ("someone@db.example:5433/jobs", 61.2)
