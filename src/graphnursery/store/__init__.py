"""Job stores: the interface, its implementations, and :func:`open_store` to pick one by URL."""

from __future__ import annotations

from .base import Backlogged, Shares, Store, StoreEvents
from .catalog import FlowInfo, FlowVersion, Schedule
from .memory import MemoryStore
from .url import StoreURL, parse_store_url


def open_store(
    url: str | StoreURL, *, lease_seconds: float = 30.0, unavailable_exit: float = 60.0
) -> Store:
    """The store a URL names (not yet opened: the engine calls :meth:`Store.open`).

    ``memory://``, ``sqlite:///relative/file.db``, ``sqlite:////absolute/file.db`` or
    ``postgresql://user@host:port/database``, or a URL :func:`parse_store_url` already
    checked. A bad URL raises :class:`~graphnursery.errors.ConfigError` naming the
    ``store`` setting. ``lease_seconds`` and ``unavailable_exit`` (how long a database may
    stay unreachable: the ``store_unavailable_exit`` setting) apply to PostgreSQL.
    """
    parsed = url if isinstance(url, StoreURL) else parse_store_url(url)
    if parsed.kind == "memory":
        return MemoryStore()
    if parsed.kind == "sqlite":
        from .sqlite import SQLiteStore

        return SQLiteStore(parsed.target)
    try:
        from .postgres import PostgresStore
    except ImportError as exc:  # the driver is an optional extra
        from ..errors import ConfigError

        raise ConfigError(
            "store",
            f"a postgresql:// store needs psycopg: pip install 'graphnursery[postgres]' ({exc})",
        ) from None
    return PostgresStore(
        parsed.target, lease_seconds=lease_seconds, unavailable_exit=unavailable_exit
    )


__all__ = [
    "Backlogged",
    "FlowInfo",
    "FlowVersion",
    "MemoryStore",
    "Schedule",
    "Shares",
    "Store",
    "StoreEvents",
    "StoreURL",
    "open_store",
    "parse_store_url",
]
