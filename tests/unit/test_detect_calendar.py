"""Holidays and special days: kept out of training, judged against their own kind of day, said."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest
from pydantic import ValidationError

from driftguard.config import DetectionOverrides, DetectionSettings
from driftguard.detect.calendar import calendar_of, check_calendar
from driftguard.detect.explain import explanation
from driftguard.detect.seasonal import SeasonalStrategy
from driftguard.detect.strategy import Judgement
from driftguard.model import CheckKey, CheckKind, FindingStatus, MetricPoint

START = datetime(2026, 9, 7, tzinfo=UTC)  # Labor Day, a Monday
KEY = CheckKey(source="s", table="t", check=CheckKind.VOLUME, metric="rows_per_period")
DAY = timedelta(days=1)
WEEKDAY, SUNDAY = 10_000.0, 4_000.0
US_HOLIDAYS = {date(2026, 9, 7), date(2026, 10, 12), date(2026, 11, 11), date(2026, 11, 26)}


def daily(days: int, holiday_level: float, seed: int = 3) -> list[MetricPoint]:
    """Weekdays at 10,000 rows, weekends at 4,000, US holidays at `holiday_level`, 3% noise."""
    rng = random.Random(seed)
    points = []
    for i in range(days):
        day = START + i * DAY
        level = SUNDAY if day.weekday() >= 5 else WEEKDAY
        if day.date() in US_HOLIDAYS:
            level = holiday_level
        points.append(MetricPoint(key=KEY, ts=day, value=round(level * (1 + 0.03 * rng.gauss(0, 1)))))
    return points


def judge(history: list[MetricPoint], at: datetime, value: float, **settings: object) -> Judgement:
    return SeasonalStrategy(period=DAY).judge(history, at, value, DetectionSettings.model_validate(settings))


THANKSGIVING = datetime(2026, 11, 26, tzinfo=UTC)  # a Thursday, day 80


def test_a_holiday_at_a_sundays_level_alerts_without_a_calendar_and_not_with_one() -> None:
    history = [p for p in daily(80, SUNDAY) if p.ts < THANKSGIVING]
    without = judge(history, THANKSGIVING, SUNDAY)
    assert without.status == FindingStatus.ANOMALY and without.calendar == ""
    with_calendar = judge(history, THANKSGIVING, SUNDAY, calendar="US")
    assert with_calendar.status == FindingStatus.OK
    assert with_calendar.expected is not None and abs(with_calendar.expected - SUNDAY) < 0.15 * SUNDAY
    # three earlier holidays were seen (and kept out of the weekday training): judged against them
    assert "Thanksgiving" in with_calendar.note and "past holidays" in with_calendar.note
    # an outage on the holiday still alerts
    assert judge(history, THANKSGIVING, 300.0, calendar="US").status == FindingStatus.ANOMALY


def test_a_holiday_without_past_holidays_is_judged_as_a_sunday() -> None:
    history = [p for p in daily(80, SUNDAY) if p.ts.date() not in US_HOLIDAYS and p.ts < THANKSGIVING]
    j = judge(history, THANKSGIVING, SUNDAY, calendar="US")
    assert j.status == FindingStatus.OK
    assert "judged as a Sunday (no past holiday" in j.note


def test_past_holidays_set_their_own_level() -> None:
    """Holidays here run at half a Sunday: a holiday at a Sunday's level is a spike against them."""
    history = [p for p in daily(80, SUNDAY / 2) if p.ts < THANKSGIVING]
    j = judge(history, THANKSGIVING, SUNDAY / 2, calendar="US")
    assert j.status == FindingStatus.OK and j.expected is not None
    assert abs(j.expected - SUNDAY / 2) < 0.15 * SUNDAY / 2
    assert judge(history, THANKSGIVING, SUNDAY * 1.6, calendar="US").status == FindingStatus.ANOMALY


def test_holidays_are_kept_out_of_ordinary_training_and_the_rule_is_explained() -> None:
    history = daily(81, SUNDAY)
    ordinary = START + 81 * DAY  # Friday 27 November, the day after Thanksgiving
    j = judge(history, ordinary, WEEKDAY, calendar="US")
    assert j.status == FindingStatus.OK
    window = [p for p in history if p.ts >= ordinary - DetectionSettings().training_window]
    ordinary_days = [p for p in window if p.ts.date() not in US_HOLIDAYS]
    assert len(ordinary_days) < len(window)
    assert j.training_points == len(ordinary_days)  # the holidays did not train the weekday profile
    assert j.calendar == "US holidays kept out of training"
    details = explanation(j, "reason").details
    assert details["calendar"] == j.calendar and details["noise"] == j.noise and j.noise


def test_special_days_count_as_holidays() -> None:
    history = [p for p in daily(80, SUNDAY) if p.ts.date() not in US_HOLIDAYS and p.ts < THANKSGIVING]
    j = judge(history, THANKSGIVING, SUNDAY, special_days=[THANKSGIVING.date()])
    assert j.status == FindingStatus.OK and "special day" in j.note
    assert j.calendar.startswith("special day: judged as a Sunday")


def test_calendar_names_are_checked_with_a_clear_message() -> None:
    check_calendar("US")
    check_calendar("de-by")
    assert DetectionSettings(calendar="de-by").calendar == "DE-BY"
    with pytest.raises(ValueError, match="unknown holiday calendar 'XX'"):
        check_calendar("XX")
    with pytest.raises(ValidationError, match="unknown subdivision 'ZZ' of DE"):
        DetectionSettings(calendar="DE-ZZ")
    with pytest.raises(ValidationError, match="unknown holiday calendar"):
        DetectionOverrides(calendar="Narnia")
    with pytest.raises(ValidationError, match="unknown time zone"):
        DetectionSettings(calendar="US", calendar_timezone="Mars/Olympus")


def test_holidays_are_dates_in_the_calendar_time_zone() -> None:
    local = calendar_of(DetectionSettings(calendar="US", calendar_timezone="America/New_York"))
    utc = calendar_of(DetectionSettings(calendar="US"))
    assert local is not None and utc is not None
    # 02:00 UTC on 27 November is still Thanksgiving evening in New York
    t = datetime(2026, 11, 27, 2, tzinfo=UTC).timestamp()
    assert local.holiday(t) == "Thanksgiving Day" and utc.holiday(t) is None
    assert calendar_of(DetectionSettings()) is None
