"""Cron schedules: expressions, their fire times, and what to fire when a scheduler wakes.

Pure logic on croniter (no Trio, no I/O): a scheduler keeps each schedule's next planned
fire time and asks :func:`due` what to fire whenever it wakes. Times are unix seconds.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

#: What :func:`due` does with fire times a scheduler missed (see there).
MISSED_POLICIES = ("skip", "run_once")

#: How late (seconds) a fire time may be seen and still fire under ``skip``.
DEFAULT_GRACE = 1.0

#: The aliases croniter reads (one field in place of five).
ALIASES = ("@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually")

# Fields split the way croniter splits them (ASCII whitespace only).
_FIELDS = re.compile(r"\S+", re.ASCII)
# 2000-01-01 UTC: where validation looks for a first fire ("0 0 31 2 *" never has one).
_VALIDATE_FROM = 946_684_800.0


@dataclass(frozen=True, slots=True)
class Cron:
    """A cron expression read in a timezone; building one validates both (``ValueError``).

    ``expr`` is five fields (minute hour day-of-month month day-of-week), six with the
    seconds FIRST (``"*/15 * * * * *"``: every 15 s; croniter's own six-field form puts them
    last), or an alias: ``@hourly``, ``@daily``, ``@midnight``, ``@weekly``, ``@monthly``,
    ``@yearly``, ``@annually``. Fields are local time in ``timezone``, an IANA name.

    Fire times are whole seconds. Across DST, croniter fires a daily ``30 2 * * *`` at
    03:00 on the day 02:30 does not exist, and at both 02:30s on the day it exists twice.
    """

    expr: str
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        _zone(self.timezone)
        fields = _FIELDS.findall(self.expr)
        if len(fields) == 1 and fields[0].startswith("@"):
            if fields[0].lower() not in ALIASES:
                raise self._invalid(f"unknown alias, expected one of {', '.join(ALIASES)}")
        elif len(fields) not in (5, 6):
            raise self._invalid(
                f"expected 5 fields (minute first), 6 (seconds first) or an alias such as"
                f" @hourly, got {len(fields)} field(s)"
            )
        # Hashed fields need an id croniter is not given here; random ones would move the
        # fire times on every read of the schedule.
        if any(field[:1].lower() in ("h", "r") for field in fields):
            raise self._invalid("hashed (H) and random (R) fields are not supported")
        try:
            self.next_after(_VALIDATE_FROM)
        except CroniterBadDateError:
            raise self._invalid("it never fires") from None
        except ValueError as exc:  # croniter's parse errors are ValueErrors
            raise self._invalid(str(exc)) from None

    def _invalid(self, problem: str) -> ValueError:
        return ValueError(f"invalid cron expression '{self.expr}': {problem}")

    def _iter(self, t: float) -> croniter[float]:
        # Fire times are whole seconds, so the first one after t is the first one after
        # floor(t); starting from a whole second also keeps datetime's rounding to
        # microseconds from carrying t just below a fire time onto it.
        start = datetime.fromtimestamp(math.floor(t), _zone(self.timezone))
        # second_at_beginning only moves the first of six fields to croniter's seconds slot.
        return croniter(self.expr.strip(), start, ret_type=float, second_at_beginning=True)

    def next_after(self, t: float) -> float:
        """The first fire time strictly after ``t``."""
        return self._iter(t).get_next(float)

    def next_times(self, t: float, count: int) -> list[float]:
        """The first ``count`` fire times strictly after ``t``, ascending."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        times = self._iter(t)
        return [times.get_next(float) for _ in range(count)]

    def fires_between(self, after: float, until: float, limit: int) -> list[float]:
        """The fire times in ``(after, until]``, ascending: the first ``limit`` of them."""
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        found: list[float] = []
        times = self._iter(after)
        while len(found) < limit:
            fire = times.get_next(float)
            if fire > until:
                break
            found.append(fire)
        return found


def parse_cron(expr: str, timezone: str | None = None) -> Cron:
    """Read a cron expression (see :class:`Cron`) in ``timezone`` (default UTC).

    Raises ``ValueError``: "invalid cron expression '...': ..." or "unknown timezone '...'".
    """
    return Cron(expr, "UTC" if timezone is None else timezone)


def due(
    cron: Cron,
    last_planned: float,
    now: float,
    missed: str,
    grace: float = DEFAULT_GRACE,
) -> tuple[list[float], float]:
    """What to fire at ``now``, and the next planned fire time: ``(fires, next_planned)``.

    ``last_planned`` is the schedule's planned fire time not yet fired; the caller stores
    ``next_planned`` in its place. Fires are ascending, in ``[last_planned, now]``, and
    ``next_planned`` is after ``now``, so a fire time is never fired twice.

    - ``now < last_planned``: nothing yet, ``([], last_planned)``.
    - ``last_planned`` is the *current* tick (the next fire time is after ``now``): it fires,
      however late. Nothing tells a late wake-up from a short outage, so under both policies
      a schedule slower than an outage fires the tick that fell inside it, once, at start-up.
    - Otherwise later ticks came too. A tick seen within ``grace`` seconds of its time is
      on time and fires; older ones were *missed*. ``skip`` drops the missed ones; ``run_once``
      fires one at ``last_planned`` standing for all of them, then the on-time ones.

    So a running scheduler never skips or doubles a tick if it calls ``due`` for every tick
    before the next one comes or within ``grace`` of it: one that sleeps until
    ``next_planned`` and wakes with jitter below the period, or one that polls at intervals
    below the period (or up to ``grace``). After an hour down, ``skip`` fires nothing (unless
    a tick is within ``grace`` of ``now``) and ``run_once`` fires exactly once (plus such a
    tick); the next fires come at the next tick. A call fires at most ``grace + 2`` times.
    """
    if missed not in MISSED_POLICIES:
        raise ValueError(f"unknown missed-run policy '{missed}': expected one of {MISSED_POLICIES}")
    if not 0 <= grace < math.inf:
        raise ValueError(f"grace must be a finite number of seconds >= 0, got {grace}")
    if now < last_planned:
        return [], last_planned
    following = cron.next_after(last_planned)
    if following > now:
        return [last_planned], following
    # Whole-second fire times: those after `after` are the ones in [last_planned, now]
    # no more than `grace` old; there are at most floor(grace) + 1 of them.
    after = max(math.ceil(now - grace), last_planned) - 1
    on_time = cron.fires_between(after, now, math.floor(grace) + 1)
    if missed == "run_once" and (not on_time or on_time[0] != last_planned):
        return [last_planned, *on_time], cron.next_after(now)
    return on_time, cron.next_after(now)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)  # zoneinfo caches zones: cheap on every call
    # ValueError: not a key ("", "../x") or not a zone file; OSError: a folder ("Europe").
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown timezone '{name}'") from None
