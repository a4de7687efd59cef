"""Per-workspace quotas: how many jobs a workspace may have queued and running, how fast it
may submit, and the error a refused submit raises.

Pure and clock-agnostic: no Trio, no I/O; time comes from a ``now`` callable (the engine's
clock, ``trio.current_time``, or a fake one in tests) counting seconds. Fairness between
workspaces that stay within their limits is :mod:`graphnursery.jobqueue`'s business.

    limits = parse_limits({"max_queued": 100, "rate": 5})     # 5 submits/s, bursts of 5
    limiter = RateLimiter(lambda workspace: limits, trio.current_time)
    if (retry_after := limiter.check(workspace)) > 0:
        raise QuotaExceeded("rate", workspace, retry_after)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError, QuotaExceeded

__all__ = [
    "EVICT_AFTER",
    "NO_LIMITS",
    "Limits",
    "QuotaExceeded",
    "Quotas",
    "RateLimiter",
    "TokenBucket",
    "WorkspaceLimits",
    "parse_limits",
]

Clock = Callable[[], float]
#: A workspace's bucket is forgotten once it went unused this long (and is full again).
EVICT_AFTER = 600.0
# A client that waited exactly the Retry-After it was given gets its token despite rounding.
_ROUNDING = 1e-9


class TokenBucket:
    """``burst`` tokens, refilled continuously at ``rate`` per second; it starts full."""

    def __init__(self, rate: float, burst: int, now: Clock) -> None:
        self._now = now
        self.rate, self.burst = _bucket_limits(rate, burst)
        self._tokens = float(self.burst)
        self._refilled_at = self.used_at = now()

    def take(self) -> float:
        """Take a token: 0.0 if there was one, else the seconds until there is (the
        Retry-After; nothing is taken)."""
        self.used_at = self._refill()
        if self._tokens >= 1.0 - _ROUNDING:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate

    @property
    def tokens(self) -> float:
        """Tokens available now (fractional while one refills)."""
        self._refill()
        return self._tokens

    def reconfigure(self, rate: float, burst: int) -> None:
        """New limits from now on: what refilled so far at the old rate is kept, up to the
        new burst."""
        self._refill()
        self.rate, self.burst = _bucket_limits(rate, burst)
        self._tokens = min(self._tokens, float(self.burst))

    def evictable(self, now: float) -> bool:
        """Unused for :data:`EVICT_AFTER` seconds and full: a new bucket would be the same."""
        if now - self.used_at < EVICT_AFTER:
            return False
        return self._tokens + (now - self._refilled_at) * self.rate >= self.burst

    def _refill(self) -> float:
        now = self._now()
        if now > self._refilled_at:  # a clock that steps back refills nothing
            elapsed = now - self._refilled_at
            self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)
            self._refilled_at = now
        return now


def _bucket_limits(rate: float, burst: int) -> tuple[float, int]:
    if not (rate > 0 and math.isfinite(rate)):
        raise ValueError(f"a token bucket's rate must be a positive number, not {rate!r}")
    if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
        raise ValueError(f"a token bucket's burst must be a positive integer, not {burst!r}")
    return float(rate), burst


@dataclass(frozen=True, slots=True)
class WorkspaceLimits:
    """What one workspace may do; 0 means no limit. Invalid values raise
    :class:`~graphnursery.errors.ConfigError` (a ``ValueError``) naming the field."""

    max_running: int = 0  # its jobs running at once
    max_queued: int = 0  # its jobs waiting for a worker (retries backing off included)
    rate: float = 0.0  # submits per second, on average
    burst: int = 0  # submits at once above the rate (0 with a rate: max(1, ceil(rate)))

    def __post_init__(self) -> None:
        for name in ("max_running", "max_queued", "burst"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(name, f"must be 0 or a positive integer, got {value!r}")
        rate = self.rate
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate >= 0:
            raise ConfigError("rate", f"must be 0 or a positive number per second, got {rate!r}")
        if not math.isfinite(rate):
            raise ConfigError("rate", f"must be a finite number per second, got {rate!r}")
        object.__setattr__(self, "rate", float(rate))
        if not rate and self.burst:
            raise ConfigError("burst", f"applies to a rate: give one too (burst={self.burst})")
        if rate and not self.burst:
            object.__setattr__(self, "burst", max(1, math.ceil(rate)))

    @property
    def limited(self) -> bool:
        """Whether any limit is set."""
        return bool(self.max_running or self.max_queued or self.rate)


NO_LIMITS = WorkspaceLimits()
_FIELDS = tuple(f.name for f in dataclasses.fields(WorkspaceLimits))


def parse_limits(mapping: Mapping[str, Any]) -> WorkspaceLimits:
    """Limits from a TOML table (``{"max_queued": 100, "rate": 5.0}``); a missing key is no
    limit. Raises :class:`~graphnursery.errors.ConfigError` (a ``ValueError``) naming the
    unknown key or the bad value."""
    for key in mapping:
        if key not in _FIELDS:
            raise ConfigError(str(key), f"not a workspace limit (those are {', '.join(_FIELDS)})")
    return WorkspaceLimits(**mapping)  # it checks the values' types


class RateLimiter:
    """One token bucket per workspace whose limits set a rate, made on its first submit.

    Bounded: every :data:`EVICT_AFTER` seconds a check also forgets the buckets unused that
    long and full again (one pass over them; a forgotten bucket comes back full, as it was),
    so it keeps the workspaces that submitted in the last 20 minutes, and those refilling
    slower than that. Limits are read on every check: a change applies at once.
    """

    def __init__(self, limits_for: Callable[[str], WorkspaceLimits], now: Clock) -> None:
        self._limits_for = limits_for
        self._now = now
        self._buckets: dict[str, TokenBucket] = {}
        self._sweep_at = now() + EVICT_AFTER

    def __len__(self) -> int:
        """Buckets kept."""
        return len(self._buckets)

    def check(self, workspace: str) -> float:
        """Count one submit: 0.0 if allowed, else the seconds to wait (Retry-After)."""
        now = self._now()
        if now >= self._sweep_at:
            self._buckets = {w: b for w, b in self._buckets.items() if not b.evictable(now)}
            self._sweep_at = now + EVICT_AFTER
        limits = self._limits_for(workspace)
        if not limits.rate:
            self._buckets.pop(workspace, None)
            return 0.0
        bucket = self._buckets.get(workspace)
        if bucket is None:
            bucket = self._buckets[workspace] = TokenBucket(limits.rate, limits.burst, self._now)
        elif (bucket.rate, bucket.burst) != (limits.rate, limits.burst):
            bucket.reconfigure(limits.rate, limits.burst)
        return bucket.take()


class Limits:
    """Each workspace's limits: its own where it has some, else the default's."""

    def __init__(
        self, default: WorkspaceLimits, own: Mapping[str, WorkspaceLimits] | None = None
    ) -> None:
        self.default = default
        self._own = dict(own or {})

    def __call__(self, workspace: str) -> WorkspaceLimits:
        return self._own.get(workspace, self.default)

    @property
    def limited(self) -> bool:
        """Whether any workspace has a limit."""
        return self.default.limited or any(limits.limited for limits in self._own.values())

    def running_caps(self) -> tuple[tuple[str, int], ...]:
        """The workspaces with a max_running of their own, and it."""
        return tuple((name, own.max_running) for name, own in sorted(self._own.items()))

    def max_running(self) -> Callable[[str], int] | None:
        """Each workspace's max_running (for the job queue); None when no workspace has one."""
        if not (self.default.max_running or any(o.max_running for o in self._own.values())):
            return None
        return lambda workspace: self(workspace).max_running


class Quotas:
    """A submit's workspace limits: ``max_queued`` (of the graph it goes to) and the submit
    rate, refused with :class:`QuotaExceeded`. (``max_running`` is the job queue's.)"""

    def __init__(self, limits: Limits, now: Clock) -> None:
        self.limits = limits
        self._rate = RateLimiter(limits, now)

    async def check(
        self,
        workspace: str,
        queued: Callable[[str], Awaitable[int]],
        retry_after: Callable[[], float],
    ) -> None:
        """Raise QuotaExceeded if ``workspace`` may not submit now: ``queued(workspace)``
        of its jobs wait (at its max_queued), or it is past its rate."""
        limits = self.limits(workspace)
        if limits.max_queued and await queued(workspace) >= limits.max_queued:
            raise QuotaExceeded("max_queued", workspace, retry_after())
        if limits.rate and (wait := self._rate.check(workspace)) > 0:
            raise QuotaExceeded("rate", workspace, wait)
