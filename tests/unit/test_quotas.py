"""Workspace quotas: token buckets, limits from TOML tables, the per-workspace rate limiter."""

from __future__ import annotations

import math

import pytest

from graphnursery.errors import ConfigError, GraphNurseryError
from graphnursery.quotas import (
    EVICT_AFTER,
    QuotaExceeded,
    RateLimiter,
    TokenBucket,
    WorkspaceLimits,
    parse_limits,
)


class FakeClock:
    def __init__(self) -> None:
        self.time = 1000.0

    def __call__(self) -> float:
        return self.time

    def advance(self, seconds: float) -> None:
        self.time += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# -- token bucket ---------------------------------------------------------------------------


def test_a_bucket_starts_full_and_gives_its_burst_at_once(clock: FakeClock) -> None:
    bucket = TokenBucket(rate=2.0, burst=3, now=clock)
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == pytest.approx(0.5)  # one token per 0.5 s at 2/s


def test_retry_after_is_the_time_until_the_next_token(clock: FakeClock) -> None:
    bucket = TokenBucket(rate=4.0, burst=1, now=clock)
    assert bucket.take() == 0.0
    assert bucket.take() == pytest.approx(0.25)
    clock.advance(0.1)
    assert bucket.take() == pytest.approx(0.15)  # a refused take takes nothing
    clock.advance(0.15)  # exactly the Retry-After it was given
    assert bucket.take() == 0.0


def test_a_bucket_refills_continuously_up_to_its_burst(clock: FakeClock) -> None:
    bucket = TokenBucket(rate=1.0, burst=5, now=clock)
    for _ in range(5):
        bucket.take()
    clock.advance(2.5)
    assert bucket.tokens == pytest.approx(2.5)
    assert [bucket.take() for _ in range(2)] == [0.0, 0.0]
    assert bucket.take() == pytest.approx(0.5)
    clock.advance(3600)
    assert bucket.tokens == 5  # never more than the burst


def test_the_average_rate_holds_over_time(clock: FakeClock) -> None:
    bucket = TokenBucket(rate=10.0, burst=10, now=clock)
    allowed = 0
    for _ in range(1001):  # try every 10 ms for 10 s (both ends): 100 tries per second
        allowed += bucket.take() == 0.0
        clock.advance(0.01)
    assert allowed == 10 + 100  # the burst, then 10 per second


def test_a_clock_stepping_back_refills_nothing(clock: FakeClock) -> None:
    bucket = TokenBucket(rate=1.0, burst=1, now=clock)
    bucket.take()
    clock.advance(-10)
    assert bucket.take() == pytest.approx(1.0)


def test_reconfiguring_keeps_what_refilled_up_to_the_new_burst(clock: FakeClock) -> None:
    bucket = TokenBucket(rate=1.0, burst=10, now=clock)
    bucket.reconfigure(rate=2.0, burst=3)
    assert bucket.tokens == 3
    for _ in range(3):
        bucket.take()
    assert bucket.take() == pytest.approx(0.5)


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (math.inf, 1), (1, 0), (1, 1.5)])
def test_a_bucket_needs_a_positive_rate_and_burst(
    clock: FakeClock, rate: float, burst: int
) -> None:
    with pytest.raises(ValueError, match="rate" if rate <= 0 or rate == math.inf else "burst"):
        TokenBucket(rate, burst, clock)


# -- limits ---------------------------------------------------------------------------------


def test_limits_default_to_none_and_burst_to_the_rate_rounded_up() -> None:
    assert not WorkspaceLimits().limited
    assert WorkspaceLimits(rate=2.5).burst == 3
    assert WorkspaceLimits(rate=0.2).burst == 1
    assert WorkspaceLimits(rate=2, burst=10).burst == 10
    assert parse_limits({}) == WorkspaceLimits()
    limits = parse_limits({"max_running": 2, "max_queued": 50, "rate": 5})
    assert limits == WorkspaceLimits(max_running=2, max_queued=50, rate=5.0, burst=5)
    assert limits.limited and isinstance(limits.rate, float)


@pytest.mark.parametrize(
    ("table", "key", "shown"),
    [
        ({"max_runing": 2}, "max_runing", "not a workspace limit"),
        ({"max_running": -1}, "max_running", "-1"),
        ({"max_queued": 2.5}, "max_queued", "2.5"),
        ({"max_queued": "10"}, "max_queued", "'10'"),
        ({"max_running": True}, "max_running", "True"),
        ({"rate": -0.5}, "rate", "-0.5"),
        ({"rate": "fast"}, "rate", "'fast'"),
        ({"rate": math.nan}, "rate", "nan"),
        ({"rate": math.inf}, "rate", "inf"),
        ({"burst": 5}, "burst", "give one too"),
        ({"rate": 1, "burst": 1.5}, "burst", "1.5"),
    ],
)
def test_parse_errors_name_the_key_and_the_value(
    table: dict[str, object], key: str, shown: str
) -> None:
    with pytest.raises(ValueError) as info:
        parse_limits(table)
    assert isinstance(info.value, ConfigError) and info.value.setting == key
    assert repr(key) in str(info.value) and shown in str(info.value)


# -- rate limiter ---------------------------------------------------------------------------


def test_workspaces_have_buckets_of_their_own(clock: FakeClock) -> None:
    limits = {"a": WorkspaceLimits(rate=1, burst=2), "b": WorkspaceLimits(rate=10)}
    limiter = RateLimiter(lambda workspace: limits.get(workspace, WorkspaceLimits()), clock)
    assert [limiter.check("a") for _ in range(2)] == [0.0, 0.0]
    assert limiter.check("a") == pytest.approx(1.0)
    assert [limiter.check("b") for _ in range(10)] == [0.0] * 10  # a's refusal is not b's
    assert limiter.check("b") == pytest.approx(0.1)
    assert all(limiter.check("unlimited") == 0.0 for _ in range(1000))
    assert len(limiter) == 2  # no bucket for a workspace without a rate
    clock.advance(1.0)
    assert limiter.check("a") == 0.0 and limiter.check("a") == pytest.approx(1.0)


def test_a_changed_limit_applies_at_once(clock: FakeClock) -> None:
    limits = {"a": WorkspaceLimits(rate=1, burst=1)}
    limiter = RateLimiter(lambda workspace: limits["a"], clock)
    assert limiter.check("a") == 0.0 and limiter.check("a") == pytest.approx(1.0)
    limits["a"] = WorkspaceLimits(rate=4, burst=1)
    assert limiter.check("a") == pytest.approx(0.25)
    limits["a"] = WorkspaceLimits()
    assert limiter.check("a") == 0.0 and len(limiter) == 0


def test_idle_full_buckets_are_forgotten(clock: FakeClock) -> None:
    limits = WorkspaceLimits(rate=1, burst=5)
    limiter = RateLimiter(lambda workspace: limits, clock)
    for i in range(100):
        limiter.check(f"ws{i}")
    clock.advance(EVICT_AFTER / 2)
    limiter.check("recent")
    clock.advance(EVICT_AFTER / 2)
    limiter.check("recent")  # the first check past EVICT_AFTER sweeps
    assert len(limiter) == 1  # ws0..ws99 unused for EVICT_AFTER; "recent" used just now
    clock.advance(EVICT_AFTER)
    limiter.check("other")
    assert len(limiter) == 1


def test_a_bucket_still_refilling_is_kept_past_the_idle_time(clock: FakeClock) -> None:
    """A slow rate: forgetting the bucket would hand back its burst early."""
    limits = WorkspaceLimits(rate=1 / 60, burst=20)  # full again after 20 minutes
    limiter = RateLimiter(lambda workspace: limits, clock)
    for _ in range(20):
        assert limiter.check("slow") == 0.0
    clock.advance(EVICT_AFTER)
    limiter.check("other")
    assert len(limiter) == 2
    assert [limiter.check("slow") == 0.0 for _ in range(11)] == [True] * 10 + [False]
    clock.advance(2 * EVICT_AFTER)  # full again after 20 minutes unused
    limiter.check("other")
    assert len(limiter) == 1


# -- the error ------------------------------------------------------------------------------


def test_quota_exceeded_names_the_limit_and_the_workspace() -> None:
    error = QuotaExceeded("max_queued", "acme", 2.5)
    assert isinstance(error, GraphNurseryError)
    assert (error.limit, error.workspace, error.retry_after) == ("max_queued", "acme", 2.5)
    assert "max_queued" in str(error) and "'acme'" in str(error) and "2.5 s" in str(error)
    with pytest.raises(ValueError, match="not a workspace limit"):
        QuotaExceeded("speed", "acme", 1.0)  # type: ignore[arg-type]
