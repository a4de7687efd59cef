"""Cron schedules: expressions, fire times across zones and DST, and the missed-run policy."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from graphnursery.cron import MISSED_POLICIES, Cron, due, parse_cron

BERLIN = ZoneInfo("Europe/Berlin")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()


def local(t: float, zone: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(t, zone)


def test_six_fields_put_the_seconds_first() -> None:
    every_15_s = parse_cron("*/15 * * * * *")
    assert every_15_s.next_times(utc(2026, 1, 1, 12, 0, 7), 4) == [
        utc(2026, 1, 1, 12, 0, 15),
        utc(2026, 1, 1, 12, 0, 30),
        utc(2026, 1, 1, 12, 0, 45),
        utc(2026, 1, 1, 12, 1, 0),
    ]
    assert parse_cron("0 */5 * * * *").next_times(utc(2026, 1, 1, 12, 3, 20), 2) == [
        utc(2026, 1, 1, 12, 5),
        utc(2026, 1, 1, 12, 10),
    ]
    start = utc(2026, 1, 1, 12) + 0.5
    assert parse_cron("*/1 * * * * *").next_times(start, 2) == [start + 0.5, start + 1.5]
    # Second 5 of minute 0 of every hour (croniter's own order would read minute 5, hour 0).
    assert parse_cron("5 0 * * * *").next_after(utc(2026, 1, 1, 12, 0, 7)) == utc(
        2026, 1, 1, 13, 0, 5
    )


def test_five_fields_start_at_the_minute() -> None:
    assert parse_cron("30 8 * * *").next_after(utc(2026, 1, 1, 12)) == utc(2026, 1, 2, 8, 30)
    assert parse_cron("*/20 * * * *").next_times(utc(2026, 1, 1, 12, 0, 1), 3) == [
        utc(2026, 1, 1, 12, 20),
        utc(2026, 1, 1, 12, 40),
        utc(2026, 1, 1, 13, 0),
    ]


def test_fields_are_local_time_in_the_timezone() -> None:
    weekdays_at_9 = parse_cron("0 9 * * 1-5", "America/New_York")
    # Friday 2026-01-02, 10:00 EST: next Monday and Tuesday at 09:00 EST (14:00 UTC).
    assert weekdays_at_9.next_times(utc(2026, 1, 2, 15), 2) == [
        utc(2026, 1, 5, 14),
        utc(2026, 1, 6, 14),
    ]
    # New York moves to EDT on Sunday 2026-03-08: Friday's 09:00 is 14:00 UTC, Monday's 13:00.
    assert weekdays_at_9.next_times(utc(2026, 3, 6, 12), 2) == [
        utc(2026, 3, 6, 14),
        utc(2026, 3, 9, 13),
    ]
    assert parse_cron("0 9 * * 1-5").timezone == "UTC"


def test_aliases() -> None:
    assert parse_cron("@hourly").next_after(utc(2026, 1, 1, 12, 34, 56)) == utc(2026, 1, 1, 13)
    assert parse_cron("@HOURLY").next_after(utc(2026, 1, 1, 12)) == utc(2026, 1, 1, 13)
    # Midnight in Berlin (CET, +01:00) is 23:00 UTC.
    assert parse_cron("@daily", "Europe/Berlin").next_after(utc(2026, 1, 1, 12)) == utc(
        2026, 1, 1, 23
    )
    # 2026-01-01 is a Thursday; @weekly is Sunday 00:00.
    assert parse_cron("@weekly").next_after(utc(2026, 1, 1)) == utc(2026, 1, 4)


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("* * *", "got 3 field"),
        ("* * * * * * *", "got 7 field"),  # croniter's year form
        ("", "got 0 field"),
        ("61 * * * *", "out of range"),
        ("a b c d e", "not acceptable"),
        ("0 0 31 2 *", "never fires"),
        ("R * * * *", "random"),
        ("H * * * *", "hashed"),
        ("@reboot", "unknown alias"),
    ],
)
def test_invalid_expressions_are_named(expr: str, problem: str) -> None:
    with pytest.raises(
        ValueError, match=rf"^invalid cron expression {re.escape(repr(expr))}: .*{problem}"
    ):
        parse_cron(expr)


@pytest.mark.parametrize("zone", ["Mars/Olympus", "utc", "Europe", "", "../etc"])
def test_unknown_timezones_are_named(zone: str) -> None:
    with pytest.raises(ValueError, match=rf"^unknown timezone {re.escape(repr(zone))}$"):
        parse_cron("* * * * *", zone)
    with pytest.raises(ValueError, match="unknown timezone"):
        Cron("* * * * *", zone)  # building one directly validates it too


def test_next_after_is_strictly_after() -> None:
    every_15_s = parse_cron("*/15 * * * * *")
    fire = utc(2026, 1, 1, 12, 0, 15)
    assert every_15_s.next_after(fire) == fire + 15
    assert every_15_s.next_after(fire - 0.001) == fire
    # Just below a fire time, closer than datetime's microseconds: still before it.
    assert every_15_s.next_after(fire - 4e-7) == fire
    assert every_15_s.next_times(fire, 0) == []


def test_fires_between_is_half_open_and_limited() -> None:
    every_15_s = parse_cron("*/15 * * * * *")
    noon = utc(2026, 1, 1, 12)
    assert every_15_s.fires_between(noon, noon + 60, 10) == [noon + s for s in (15, 30, 45, 60)]
    assert every_15_s.fires_between(noon, noon + 60, 2) == [noon + 15, noon + 30]
    assert every_15_s.fires_between(noon, noon + 60, 0) == []
    assert every_15_s.fires_between(noon + 15, noon + 29, 10) == []
    with pytest.raises(ValueError, match="limit"):
        every_15_s.fires_between(noon, noon + 60, -1)


def test_a_day_whose_fire_time_does_not_exist_fires_once() -> None:
    # Berlin skips 02:00-03:00 on 2026-03-29.
    fires = parse_cron("30 2 * * *", "Europe/Berlin").next_times(utc(2026, 3, 27), 4)
    assert fires == sorted(set(fires))
    days = [local(t, BERLIN).date().isoformat() for t in fires]
    assert days == ["2026-03-27", "2026-03-28", "2026-03-29", "2026-03-30"]
    # croniter 7.0 fires at 03:00 CEST, as the hour jumps.
    assert local(fires[2], BERLIN).hour == 3


def test_a_day_whose_fire_time_repeats_stays_monotonic() -> None:
    # Berlin repeats 02:00-03:00 on 2026-10-25; croniter 7.0 fires at both 02:30s.
    fires = parse_cron("30 2 * * *", "Europe/Berlin").next_times(utc(2026, 10, 24), 4)
    assert fires == sorted(set(fires))
    assert all((local(t, BERLIN).hour, local(t, BERLIN).minute) == (2, 30) for t in fires)
    on_the_day = [t for t in fires if local(t, BERLIN).date().isoformat() == "2026-10-25"]
    assert len(on_the_day) in (1, 2)


EVERY_SECOND = parse_cron("* * * * * *")
EVERY_MINUTE = parse_cron("* * * * *")
NOON = utc(2026, 1, 1, 12)


@pytest.mark.parametrize("missed", MISSED_POLICIES)
def test_due_on_time_late_and_early(missed: str) -> None:
    every_15_s = parse_cron("*/15 * * * * *")
    planned = NOON + 15
    assert due(every_15_s, planned, planned, missed) == ([planned], planned + 15)
    assert due(every_15_s, planned, planned + 0.3, missed) == ([planned], planned + 15)
    assert due(every_15_s, planned, planned - 0.2, missed) == ([], planned)
    # Later than the grace, but no later tick came: a late wake-up, still fired.
    assert due(parse_cron("@hourly"), NOON, NOON + 3, missed) == ([NOON], NOON + 3600)


def test_down_for_an_hour_skip_fires_nothing_then_the_next_tick() -> None:
    back = NOON + 3600 + 30
    assert due(EVERY_MINUTE, NOON, back, "skip") == ([], NOON + 3660)
    assert due(EVERY_MINUTE, NOON + 3660, NOON + 3660.2, "skip") == ([NOON + 3660], NOON + 3720)
    # A per-second schedule's latest tick is always within the grace: that one fires.
    assert due(EVERY_SECOND, NOON, NOON + 3600.5, "skip") == ([NOON + 3600], NOON + 3601)


def test_down_for_an_hour_run_once_fires_once_for_everything_missed() -> None:
    assert due(EVERY_MINUTE, NOON, NOON + 3630, "run_once") == ([NOON], NOON + 3660)


def test_a_stall_longer_than_the_grace() -> None:
    assert due(EVERY_SECOND, NOON, NOON + 3.5, "skip") == ([NOON + 3], NOON + 4)
    assert due(EVERY_SECOND, NOON, NOON + 3.5, "run_once") == ([NOON, NOON + 3], NOON + 4)
    assert due(EVERY_SECOND, NOON, NOON + 3.5, "skip", grace=5) == (
        [NOON + s for s in range(4)],
        NOON + 4,
    )


@pytest.mark.parametrize("missed", MISSED_POLICIES)
def test_ticks_within_the_grace_all_fire(missed: str) -> None:
    assert due(EVERY_SECOND, NOON, NOON + 1.0, missed) == ([NOON, NOON + 1], NOON + 2)


@pytest.mark.parametrize("missed", MISSED_POLICIES)
def test_polled_every_quarter_second_a_per_second_schedule_fires_each_second_once(
    missed: str,
) -> None:
    polls = [NOON + 0.25 * k for k in range(1, 21)]  # 5 s
    planned = EVERY_SECOND.next_after(NOON)
    fired: list[float] = []
    for now in polls:
        fires, planned = due(EVERY_SECOND, planned, now, missed)
        fired += fires
    assert fired == [NOON + s for s in range(1, 6)]


@pytest.mark.parametrize("missed", MISSED_POLICIES)
def test_a_scheduler_waking_with_jitter_fires_every_tick_once(missed: str) -> None:
    jitter = random.Random(17)
    planned = NOON + 1
    fired: list[float] = []
    for _ in range(300):
        fires, planned = due(EVERY_SECOND, planned, planned + jitter.uniform(0, 0.95), missed)
        fired += fires
    assert fired == [NOON + s for s in range(1, 301)]


@pytest.mark.parametrize("missed", MISSED_POLICIES)
def test_polled_about_every_second_within_the_grace_fires_every_tick_once(missed: str) -> None:
    jitter = random.Random(23)
    now, planned = NOON, NOON + 1
    fired: list[float] = []
    while now < NOON + 300:
        now += jitter.uniform(0.5, 1.5)
        fires, planned = due(EVERY_SECOND, planned, now, missed, grace=1.5)
        fired += fires
    assert fired == [NOON + s for s in range(1, int(now - NOON) + 1)]


def test_due_refuses_unknown_policies_and_bad_graces() -> None:
    with pytest.raises(ValueError, match="unknown missed-run policy 'catch_up'"):
        due(EVERY_SECOND, NOON, NOON, "catch_up")
    for grace in (-1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="grace"):
            due(EVERY_SECOND, NOON, NOON, "skip", grace)
