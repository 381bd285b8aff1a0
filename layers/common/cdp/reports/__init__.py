"""Reports people look at: lifecycle funnel, transitions, journey, cohorts, segments and data health.

The report job (:mod:`cdp.jobs.report_job`) runs SQL built with sqlglot (:mod:`cdp.reports.queries`)
through the QueryEngine port, folds the rows into small tables (:mod:`cdp.reports.compute`), and
writes them with a self-contained dashboard (:mod:`cdp.reports.dashboard`) under ``reports/run=<id>/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

REPORTS_PREFIX = "reports"
GRANULARITIES = ("day", "week", "month")
#: The range a scheduled run covers, ending today: long enough for cohorts and churn (90 days idle).
DEFAULT_DAYS = 180


def period_start(day: date, granularity: str) -> date:
    """The first day of the period holding ``day``: itself, its ISO week's Monday, or the 1st."""
    if granularity == "day":
        return day
    if granularity == "week":
        return day - timedelta(days=day.weekday())
    if granularity == "month":
        return day.replace(day=1)
    raise ValueError(f"unknown granularity {granularity!r}; expected one of {GRANULARITIES}")


def next_period(start: date, granularity: str) -> date:
    if granularity == "day":
        return start + timedelta(days=1)
    if granularity == "week":
        return start + timedelta(days=7)
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


@dataclass(frozen=True, slots=True)
class ReportRange:
    """Days ``first`` to ``last`` (both included), shown by ``granularity``."""

    first: date
    last: date
    granularity: str = "week"

    def __post_init__(self) -> None:
        if self.granularity not in GRANULARITIES:
            raise ValueError(f"unknown granularity {self.granularity!r}; expected one of {GRANULARITIES}")
        if self.last < self.first:
            raise ValueError(f"the range ends ({self.last}) before it starts ({self.first})")

    def periods(self) -> list[date]:
        """Start of every period that overlaps the range, in order."""
        found, start = [], period_start(self.first, self.granularity)
        while start <= self.last:
            found.append(start)
            start = next_period(start, self.granularity)
        return found

    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]

    def period_of(self, day: date) -> str:
        return period_start(day, self.granularity).isoformat()
