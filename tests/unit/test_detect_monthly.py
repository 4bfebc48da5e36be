"""Monthly seasonality: day of month, with the month end counted from the end, chosen from the data
when the history holds two months or more."""

from __future__ import annotations

import calendar
import math
import random
from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from driftguard.config import DetectionSettings
from driftguard.detect.baseline import Seasonality, learnable_seasonalities, month_position
from driftguard.detect.seasonal import SeasonalStrategy
from driftguard.model import CheckKey, CheckKind, FindingStatus, MetricPoint

DAY = timedelta(days=1)
KEY = CheckKey(source="s", table="t", check=CheckKind.VOLUME, metric="rows_per_period")


def _at(d: date) -> float:
    return datetime(d.year, d.month, d.day, 12, tzinfo=UTC).timestamp()


def test_month_ends_share_their_slots_in_every_month() -> None:
    assert month_position(_at(date(2026, 1, 31))) == 30
    assert month_position(_at(date(2026, 2, 28))) == 30  # February's last day is a month end too
    assert month_position(_at(date(2026, 4, 30))) == 30
    assert month_position(_at(date(2026, 1, 29))) == 28
    assert month_position(_at(date(2026, 2, 26))) == 28
    assert month_position(_at(date(2026, 1, 28))) == 27
    assert month_position(_at(date(2026, 2, 25))) == 24
    assert month_position(_at(date(2026, 3, 1))) == 0
    assert Seasonality("monthly", 86400.0).label(datetime(2026, 2, 28, tzinfo=UTC)) == "last day of the month"


@given(st.dates(min_value=date(1971, 1, 1), max_value=date(2100, 12, 31)))
def test_every_day_has_one_slot_and_the_last_three_count_from_the_end(day: date) -> None:
    position = month_position(_at(day))
    days_in_month = calendar.monthrange(day.year, day.month)[1]
    assert 0 <= position <= 30
    if day.day > days_in_month - 3:
        assert position == 30 - (days_in_month - day.day)
    else:
        assert position == day.day - 1


def test_the_default_window_never_waits_for_a_monthly_rhythm() -> None:
    window = timedelta(days=56).total_seconds()
    options, waiting = learnable_seasonalities(DAY, "auto", timedelta(days=55).total_seconds(), window)
    assert [s.name for s in options] == ["none", "weekly"] and waiting == ""
    # asked for by name with a window too short for it: said, and not guessed
    options, waiting = learnable_seasonalities(DAY, "monthly", timedelta(days=55).total_seconds(), window)
    assert [s.name for s in options] == ["none"]
    assert waiting == "monthly seasonality needs a training window of 61 days, has 56"
    # a long window that the history does not fill yet waits for it
    long = timedelta(days=200).total_seconds()
    _, waiting = learnable_seasonalities(DAY, "auto", timedelta(days=40).total_seconds(), long)
    assert waiting == "monthly seasonality not learned yet: needs 61 days of history, has 40.0"


def _month_end_series(days: int, seed: int) -> list[MetricPoint]:
    """Daily counts around 10,000 whose last day of each month runs at 3x (a billing run)."""
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    points = []
    for i in range(days):
        ts = start + i * DAY
        month_end = ts.day == calendar.monthrange(ts.year, ts.month)[1]
        value = 10_000.0 * (3.0 if month_end else 1.0) * math.exp(rng.gauss(0.0, 0.03))
        points.append(MetricPoint(key=KEY, ts=ts, value=round(value)))
    return points


def test_a_month_end_run_is_learned_when_the_history_holds_it() -> None:
    history = _month_end_series(211, 1)  # 2026-01-01 .. 2026-07-30: seven month ends
    at = datetime(2026, 7, 31, tzinfo=UTC)  # the next month end
    settings = DetectionSettings(training_window=timedelta(days=210))
    j = SeasonalStrategy(period=DAY).judge(history, at, 30_000.0, settings)
    assert j.status == FindingStatus.OK
    assert "monthly seasonality" in j.method and j.slot == "last day of the month"
    assert j.expected is not None and 25_000 < j.expected < 35_000
    # an ordinary day at that level is still a spike, and the month end without its run a drop
    assert SeasonalStrategy(period=DAY).judge(history, at - DAY, 30_000.0, settings).anomaly
    assert SeasonalStrategy(period=DAY).judge(history, at, 10_000.0, settings).anomaly
    # without the monthly rhythm the month end alerts every month
    weekly = settings.model_copy(update={"seasonality": "weekly"})
    assert SeasonalStrategy(period=DAY).judge(history, at, 30_000.0, weekly).anomaly
