"""Store URLs: ``memory://``, ``sqlite:///relative.db``, ``sqlite:////abs.db``, ``postgresql://...``.

Parsing imports no driver, so a config can be checked without them installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import ConfigError

StoreKind = Literal["memory", "sqlite", "postgresql"]


@dataclass(frozen=True, slots=True)
class StoreURL:
    kind: StoreKind
    #: the database file (sqlite) or the libpq connection URI (postgresql); "" for memory
    target: str


def parse_store_url(url: str) -> StoreURL:
    """Check a store URL; raises :class:`ConfigError` naming ``store`` if it is not one.

    SQLite paths follow SQLAlchemy: three slashes then a relative path
    (``sqlite:///./graphnursery.db``), four for an absolute one (``sqlite:////var/gn.db``).
    """
    if url in ("memory://", "memory:"):
        return StoreURL("memory", "")
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if not path or path.endswith("/"):
            raise ConfigError(
                "store", f"give the SQLite database file, e.g. sqlite:///./jobs.db, not {url!r}"
            )
        return StoreURL("sqlite", path)
    if url.startswith(("postgresql://", "postgres://")):
        return StoreURL("postgresql", url)
    raise ConfigError(
        "store",
        f"expected memory://, sqlite:///path/to/file.db or postgresql://..., got {url!r}",
    )
