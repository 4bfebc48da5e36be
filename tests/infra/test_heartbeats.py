"""The heartbeat's window: a schedule's longest real gap between firings, not its smallest."""

from __future__ import annotations

from datetime import timedelta

import pytest
import stack_helpers  # noqa: F401  (puts the repository on sys.path)
from infra.constructs.monitoring import GRACE, Cadence, longest_gap

from driftguard.config import Schedule


@pytest.mark.parametrize(
    ("schedule", "gap"),
    [
        ({"rate": "15m"}, timedelta(minutes=15)),
        ({"cron": "*/30 * * * *"}, timedelta(minutes=30)),
        ({"cron": "0 6 * * 1-5"}, timedelta(hours=72)),  # Friday to Monday
        ({"cron": "0 6 * * 1-5", "timezone": "Europe/Berlin"}, timedelta(hours=73)),  # + the October hour
        ({"cron": "0 6 * * *", "timezone": "Asia/Tokyo"}, timedelta(hours=24)),  # no daylight saving time
        ({"cron": "0 0 1 * *"}, timedelta(days=31)),  # monthly: the long months
        ({"cron": "0 0 1 1,7 *"}, timedelta(days=184)),  # July to January
    ],
)
def test_longest_gap(schedule: dict[str, str], gap: timedelta) -> None:
    assert longest_gap(Schedule.model_validate(schedule)) == gap


def test_the_nominal_period_is_not_the_longest_gap() -> None:
    """What the heartbeat used to wait (two nominal periods, 48 h) alarmed every weekend."""
    weekdays = Schedule.model_validate({"cron": "0 6 * * 1-5"})
    assert 2 * weekdays.period < longest_gap(weekdays)


def test_the_window_adds_the_flexible_window_and_grace_in_whole_minutes() -> None:
    schedule = Schedule.model_validate({"rate": "15m", "flexible_window": "5m"})
    assert Cadence("c", schedule, 1).window == timedelta(minutes=20) + GRACE
