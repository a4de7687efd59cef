"""The engine's clock: wall-clock timestamps that advance with Trio's clock."""

from __future__ import annotations

import time

import trio


class Clock:
    """Wall-clock timestamps that advance with Trio's clock.

    Timestamps stay real dates, yet tests driving Trio's ``autojump_clock`` move them too,
    so TTLs and durations are testable without waiting.
    """

    def __init__(self) -> None:
        self._wall_start = time.time()
        self._trio_start = trio.current_time()

    def now(self) -> float:
        return self._wall_start + (trio.current_time() - self._trio_start)
