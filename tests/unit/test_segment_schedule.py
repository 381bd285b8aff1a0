"""Per-segment schedules: rate() and cron() decide which definitions run on a scheduler tick."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cdp.segments.schedule import ScheduleError, is_due, parse_cron

T0 = datetime(2024, 3, 31, 6, 0, tzinfo=UTC)  # a Sunday


def test_a_definition_without_schedule_runs_on_every_tick():
    assert is_due(None, now=T0, last_run_at=T0 - timedelta(minutes=1))


def test_a_definition_never_run_is_due():
    assert is_due("rate(1 day)", now=T0, last_run_at=None)


def test_a_rate_is_not_due_before_its_interval():
    assert not is_due("rate(1 hour)", now=T0, last_run_at=T0 - timedelta(minutes=45))


def test_a_rate_is_due_once_its_interval_passed():
    assert is_due("rate(1 hour)", now=T0, last_run_at=T0 - timedelta(minutes=60))


def test_a_tick_a_few_seconds_early_still_runs_a_rate():
    assert is_due("rate(15 minutes)", now=T0, last_run_at=T0 - timedelta(minutes=14, seconds=58))


def test_a_cron_is_due_when_a_fire_time_passed_since_the_last_run():
    assert is_due("cron(0 6 * * ? *)", now=T0 + timedelta(minutes=3), last_run_at=T0 - timedelta(minutes=15))


def test_a_cron_is_not_due_twice_for_one_fire_time():
    assert not is_due(
        "cron(0 6 * * ? *)", now=T0 + timedelta(minutes=15), last_run_at=T0 + timedelta(seconds=5)
    )


def test_a_cron_with_a_weekday_runs_only_that_day():
    monday_only = "cron(0 6 ? * MON *)"

    assert not is_due(monday_only, now=T0, last_run_at=T0 - timedelta(minutes=15))
    assert is_due(monday_only, now=T0 + timedelta(days=1), last_run_at=T0 + timedelta(days=1, minutes=-15))


def test_cron_fields_accept_lists_ranges_and_steps():
    cron = parse_cron("cron(0/15 8-10,20 ? JAN-MAR 2-6 *)")

    assert cron.minutes == {0, 15, 30, 45}
    assert cron.hours == {8, 9, 10, 20}
    assert cron.months == {1, 2, 3}
    assert cron.weekdays == {2, 3, 4, 5, 6}


@pytest.mark.parametrize(
    "expression",
    [
        "cron(0 6 * * * *)",
        "cron(0 6 ? * ? *)",
        "cron(0 25 * * ? *)",
        "cron(0 6 L * ? *)",
        "cron(0 6 * *)",
        "every day",
    ],
)
def test_unsupported_cron_expressions_are_refused(expression: str):
    with pytest.raises(ScheduleError):
        parse_cron(expression)
