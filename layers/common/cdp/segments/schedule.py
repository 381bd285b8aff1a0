"""Per-segment schedules on one scheduler tick.

The segment function runs on the template's schedule (SegmentSchedule, e.g. every 15 minutes); each
definition may declare its own EventBridge expression, and a tick runs only the definitions that are
due: ``rate(N unit)`` once N units have passed since the last completed run, ``cron(...)`` when a
fire time falls after the last completed run. A definition without a schedule runs on every tick.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from cdp.times import as_utc

_RATE_RE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNITS = {"minute": 60, "hour": 3600, "day": 86400}
_MONTHS = {
    m: i
    for i, m in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], start=1
    )
}
_DAYS = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], start=1)}
# A rate is due a little early so that a tick arriving a few seconds before the exact interval
# does not postpone the run by a whole tick.
RATE_TOLERANCE = timedelta(minutes=1)
# How far back a cron's fire times are searched (a longer silence runs the segment once).
CRON_LOOKBACK = timedelta(days=7)


class ScheduleError(ValueError):
    """The expression is not an EventBridge rate() or supported cron() expression."""


@dataclass(frozen=True, slots=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int] | None  # day of month; None = any ('?' or '*')
    months: frozenset[int]
    weekdays: frozenset[int] | None  # 1 = Sunday ... 7 = Saturday; None = any
    years: frozenset[int] | None

    def matches(self, moment: datetime) -> bool:
        weekday = (moment.isoweekday() % 7) + 1  # Monday=1..Sunday=7 -> Sunday=1..Saturday=7
        return (
            moment.minute in self.minutes
            and moment.hour in self.hours
            and moment.month in self.months
            and (self.days is None or moment.day in self.days)
            and (self.weekdays is None or weekday in self.weekdays)
            and (self.years is None or moment.year in self.years)
        )


def rate_interval(expression: str) -> timedelta | None:
    match = _RATE_RE.match(expression.strip())
    if not match:
        return None
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2).rstrip("s")])


def parse_cron(expression: str) -> Cron:
    """Parse ``cron(min hour day-of-month month day-of-week year)`` as EventBridge writes it."""
    text = expression.strip()
    if not (text.startswith("cron(") and text.endswith(")")):
        raise ScheduleError(f"not a cron() expression: {expression!r}")
    fields = text[5:-1].split()
    if len(fields) != 6:
        raise ScheduleError("cron() needs 6 fields: minutes hours day-of-month month day-of-week year")
    minute, hour, dom, month, dow, year = fields
    if (dom == "?") == (dow == "?"):
        raise ScheduleError("cron(): exactly one of day-of-month and day-of-week must be '?'")
    return Cron(
        minutes=_field(minute, 0, 59, {}, "minutes"),
        hours=_field(hour, 0, 23, {}, "hours"),
        days=None if dom in ("?", "*") else _field(dom, 1, 31, {}, "day-of-month"),
        months=_field(month, 1, 12, _MONTHS, "month"),
        weekdays=None if dow in ("?", "*") else _field(dow, 1, 7, _DAYS, "day-of-week"),
        years=None if year == "*" else _field(year, 1970, 2199, {}, "year"),
    )


def _field(text: str, low: int, high: int, names: dict[str, int], label: str) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            if not step_text.isdigit() or int(step_text) < 1:
                raise ScheduleError(f"cron() {label}: bad step {step_text!r}")
            step = int(step_text)
        if part == "*":
            start, end = low, high
        elif "-" in part:
            a, b = part.split("-", 1)
            start, end = _value(a, names, label), _value(b, names, label)
        else:
            start = _value(part, names, label)
            end = high if step > 1 else start
        if not (low <= start <= high and low <= end <= high and start <= end):
            raise ScheduleError(f"cron() {label}: {part!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def _value(text: str, names: dict[str, int], label: str) -> int:
    if text.upper() in names:
        return names[text.upper()]
    if not text.isdigit():
        raise ScheduleError(f"cron() {label}: unsupported value {text!r} (L, W and # are not supported)")
    return int(text)


def validate_schedule(expression: str) -> None:
    if rate_interval(expression) is None:
        parse_cron(expression)


def is_due(schedule: str | None, *, now: datetime, last_run_at: datetime | None) -> bool:
    """Whether a definition with ``schedule`` should run on the tick at ``now``."""
    if schedule is None or last_run_at is None:
        return True
    now, last_run_at = as_utc(now), as_utc(last_run_at)
    interval = rate_interval(schedule)
    if interval is not None:
        return now - last_run_at >= interval - RATE_TOLERANCE
    cron = parse_cron(schedule)
    moment = now.replace(second=0, microsecond=0)
    earliest = max(last_run_at, now - CRON_LOOKBACK)
    while moment > earliest:
        if cron.matches(moment):
            return True
        moment -= timedelta(minutes=1)
    return False
