"""The robust seasonal strategy and its baseline, judged one value at a time."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from driftguard.config import DetectionSettings
from driftguard.detect.baseline import Seasonality, candidate_seasonalities, choose_baseline
from driftguard.detect.seasonal import GrowthStrategy, SeasonalStrategy
from driftguard.detect.strategy import Judgement
from driftguard.model import CheckKey, CheckKind, FindingStatus, MetricPoint, PointLabel

START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
KEY = CheckKey(source="s", table="t", check=CheckKind.VOLUME, metric="rows_per_period")
DEFAULTS = DetectionSettings()


def series(values: list[float], labels: dict[int, PointLabel] | None = None) -> list[MetricPoint]:
    labels = labels or {}
    return [
        MetricPoint(key=KEY, ts=START + timedelta(hours=i), value=v, label=labels.get(i, PointLabel.NONE))
        for i, v in enumerate(values)
    ]


def judge(
    values: list[float], value: float, labels: dict[int, PointLabel] | None = None, **overrides: object
) -> Judgement:
    history = series(values, labels)
    at = START + timedelta(hours=len(values))
    return SeasonalStrategy(period=timedelta(hours=1)).judge(
        history, at, value, DEFAULTS.model_copy(update=overrides)
    )


def flat(n: int, level: float = 500.0, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [float(round(level * math.exp(0.03 * rng.gauss(0, 1)))) for _ in range(n)]


def test_learning_counts_only_clean_points() -> None:
    j = judge([100.0] * 10, 100.0, {1: PointLabel.INCIDENT, 2: PointLabel.ANOMALY})
    assert j.status == FindingStatus.LEARNING
    assert j.training_points == 8 and j.needed_points == 6


def test_operator_labelled_points_never_train() -> None:
    values = flat(100)
    incident = {i: PointLabel.INCIDENT for i in range(50, 100)}
    for i in incident:
        values[i] = 5000.0  # an operator said these were an incident: never the normal
    j = judge(values, 5000.0, incident)
    assert j.status == FindingStatus.ANOMALY and j.training_points == 50


def test_a_minority_of_unlabelled_outliers_does_not_widen_the_band() -> None:
    """Robust statistics: a past incident that was never labelled barely moves the band."""
    values = flat(200)
    clean = judge(values, 500.0)
    for i in range(20, 30):
        values[i] = 3000.0
    polluted = judge(values, 500.0)
    assert polluted.upper is not None and clean.upper is not None
    assert polluted.upper < clean.upper * 1.1


def test_training_window_bounds_what_is_learned() -> None:
    values = [5000.0] * 100 + flat(100)
    j = judge(values, 500.0, training_window=timedelta(hours=100))
    assert j.status == FindingStatus.OK and j.training_points == 100


def test_explanation_fields_are_consistent() -> None:
    j = judge(flat(200), 50.0)
    assert j.status == FindingStatus.ANOMALY and j.direction == "drop"
    assert j.lower is not None and j.upper is not None and j.expected is not None
    assert j.lower <= j.expected <= j.upper and j.observed < j.lower
    assert j.effect == pytest.approx((50.0 - j.expected) / j.expected)
    assert j.training_start == START and j.training_end == START + timedelta(hours=199)


def test_sensitivity_widens_the_band() -> None:
    tight = judge(flat(200), 500.0, sensitivity=2.0, min_relative_change=0.0)
    loose = judge(flat(200), 500.0, sensitivity=8.0, min_relative_change=0.0)
    assert (loose.upper or 0) - (loose.lower or 0) > 3 * ((tight.upper or 0) - (tight.lower or 0))


def test_level_shift_adoption_is_explained() -> None:
    values = flat(200) + flat(12, level=1000.0, seed=2)
    labels = {i: PointLabel.ANOMALY for i in range(200, 212)}
    j = judge(values, 1000.0, labels)
    assert j.status == FindingStatus.OK
    assert "level shift" in j.note and j.expected == pytest.approx(1000.0, rel=0.05)
    assert j.note.startswith(f"new level since {START + timedelta(hours=200):%Y-%m-%d %H:%M}")
    not_yet = judge(values[:205], 1000.0, {i: PointLabel.ANOMALY for i in range(200, 205)})
    assert not_yet.status == FindingStatus.ANOMALY and not_yet.note == ""


def test_an_outage_is_never_adopted() -> None:
    values = flat(200) + [0.0] * 20
    j = judge(values, 0.0, {i: PointLabel.ANOMALY for i in range(200, 220)})
    assert j.status == FindingStatus.ANOMALY and j.note == ""


def test_weekly_rhythm_is_chosen_when_weekends_differ_and_daily_when_they_do_not() -> None:
    rng = random.Random(8)
    secs, weekly, daily = [], [], []
    for h in range(28 * 24):
        t = START + timedelta(hours=h)
        day = 1 + 0.6 * math.sin(2 * math.pi * (t.hour - 9) / 24)
        noise = math.exp(0.03 * rng.gauss(0, 1))
        secs.append(t.timestamp())
        daily.append(400 * day * noise)
        weekly.append(400 * day * noise * (0.3 if t.weekday() >= 5 else 1.0))
    options = candidate_seasonalities(timedelta(hours=1), "auto")
    assert choose_baseline(secs, weekly, options, counts=True).seasonality.name == "weekly"
    assert choose_baseline(secs, daily, options, counts=True).seasonality.name == "daily"
    assert choose_baseline(secs, flat(28 * 24), options, counts=True).seasonality.name == "none"


def test_seasonality_setting_restricts_the_choice() -> None:
    assert [s.name for s in candidate_seasonalities(timedelta(hours=1), "daily")] == ["daily"]
    assert [s.name for s in candidate_seasonalities(timedelta(days=1), "auto")] == [
        "none",
        "weekly",
        "monthly",
    ]
    assert [s.name for s in candidate_seasonalities(timedelta(days=1), "daily")] == ["none"]


@pytest.mark.parametrize(
    ("seasonality", "width", "label"),
    [
        ("weekly", 3600.0, "Mon 08:00"),
        ("weekly", 86400.0, "Mon"),
        ("daily", 3600.0, "08:00"),
        ("monthly", 3600.0, "day 5 of the month 08:00"),
        ("monthly", 86400.0, "day 5 of the month"),
        ("none", 3600.0, None),
    ],
)
def test_slot_labels(seasonality: str, width: float, label: str | None) -> None:
    assert Seasonality(seasonality, width).label(START + timedelta(hours=8, minutes=30)) == label


def test_growth_strategy_reports_totals_and_judges_increments() -> None:
    totals = [1000.0 + 100 * i + (i * 7 % 5) for i in range(40)]
    history = series(totals)
    at = START + timedelta(hours=40)
    ok = GrowthStrategy().judge(history, at, totals[-1] + 100, DEFAULTS)
    assert ok.status == FindingStatus.OK and ok.expected == pytest.approx(totals[-1] + 100, abs=5)
    stalled = GrowthStrategy().judge(history, at, totals[-1], DEFAULTS)
    assert stalled.status == FindingStatus.ANOMALY and stalled.direction == "drop"
    assert stalled.observed == totals[-1]


def test_a_run_of_empty_periods_in_a_rarely_empty_series_alerts() -> None:
    values = [float(1 + (i * 4) % 9) for i in range(100)]  # 1..9 rows, never empty, noisier than Poisson
    one = judge(values, 0.0)
    assert one.status == FindingStatus.OK  # one empty period of such a series is plausible
    two = judge([*values, 0.0], 0.0)
    assert two.status == FindingStatus.ANOMALY and "2 periods in a row without rows" in two.note
    with_empty_history = [0.0 if i % 5 == 0 else v for i, v in enumerate(values)]
    assert judge([*with_empty_history, 0.0], 0.0).status == FindingStatus.OK


def test_a_small_sustained_deviation_alerts_once_it_is_certain() -> None:
    values = [100.0 + (i * 7 % 5) - 2 for i in range(100)]
    strategy = SeasonalStrategy(counts=False, period=timedelta(hours=1))
    settings = DEFAULTS.model_copy(update={"min_relative_change": 0.02})

    def at(history: list[float], value: float) -> Judgement:
        return strategy.judge(series(history), START + timedelta(hours=len(history)), value, settings)

    first = at(values, 94.0)
    assert first.status == FindingStatus.OK and first.score < 4
    later = at([*values, 94.0, 94.0, 94.0, 94.0, 94.0], 94.0)
    assert later.status == FindingStatus.ANOMALY and "periods together are below" in later.note


def test_the_first_normal_value_after_an_adopted_dip_is_not_a_spike() -> None:
    """A whole day at 30% (a holiday) is adopted after a few runs; the next normal value is the dip
    ending, not a spike against the dip's level."""
    values = flat(200) + flat(24, level=150.0, seed=3)
    labels = {i: PointLabel.ANOMALY for i in range(200, 206)}
    back = judge(values, 500.0, labels)
    assert back.status == FindingStatus.OK
    assert "back within the range before that shift" in back.note
    assert back.expected == pytest.approx(150.0, rel=0.1)  # the adopted level is still what it shows
    # a value outside both the adopted and the earlier range still alerts
    far = judge(values, 1500.0, labels)
    assert far.status == FindingStatus.ANOMALY and far.direction == "spike"


def test_an_outage_with_a_stray_row_is_still_not_adopted() -> None:
    values = flat(200) + [0.0] * 11 + [1.0] + [0.0] * 8
    labels = {i: PointLabel.ANOMALY for i in range(200, 220)}
    still_down = judge(values, 0.0, labels)
    assert still_down.status == FindingStatus.ANOMALY and "level shift" not in still_down.note
    recovered = judge(values, 500.0, labels)
    assert recovered.status == FindingStatus.OK and recovered.expected == pytest.approx(500.0, rel=0.1)


def volatile(n: int, level: float = 40_000.0, sigma: float = 0.35, seed: int = 4) -> list[float]:
    """Counts with wide multiplicative noise: a symmetric band would reach below zero."""
    rng = random.Random(seed)
    return [float(round(level * math.exp(sigma * rng.gauss(0, 1)))) for _ in range(n)]


def test_wide_count_noise_is_judged_on_a_log_scale() -> None:
    values = volatile(300)
    typical_high = judge(values, 40_000.0 * math.exp(2.5 * 0.35))  # 2.5 sigma above, 2.4x
    assert typical_high.status == FindingStatus.OK
    assert typical_high.lower is not None and typical_high.lower > 0  # a log band stays above zero
    empty = judge(values, 0.0)  # no rows at all in a table of ~40,000 a period
    assert empty.status == FindingStatus.ANOMALY and empty.direction == "drop"
    burst = judge(values, 40_000.0 * 10)
    assert burst.status == FindingStatus.ANOMALY and burst.direction == "spike"


def test_a_run_that_has_ended_does_not_alert_as_sustained() -> None:
    values = [100.0 + (i * 7 % 5) - 2 for i in range(100)]
    strategy = SeasonalStrategy(counts=False, period=timedelta(hours=1))
    settings = DEFAULTS.model_copy(update={"min_relative_change": 0.02})
    history = series([*values, 94.0, 94.0, 94.0, 94.0, 94.0])
    at = START + timedelta(hours=len(history))
    assert strategy.judge(history, at, 94.0, settings).status == FindingStatus.ANOMALY
    # just below expectation, the same side as the run, but well within the noise: the run has ended
    ended = strategy.judge(history, at, 99.5, settings)
    assert ended.status == FindingStatus.OK and ended.score < 1


def _negative_binomial(rng: random.Random, mean: float, dispersion: float) -> float:
    """A count with variance `dispersion` x mean (gamma-Poisson), Poisson drawn by its normal
    approximation (the means here are large)."""
    shape = mean / (dispersion - 1)
    rate = rng.gammavariate(shape, mean / shape)
    return float(max(0, round(rng.gauss(rate, math.sqrt(rate)))))


def test_a_weekend_effect_on_overdispersed_counts_is_learned() -> None:
    """Weekends are 2 days in 7: a median residual barely notices them under heavy noise, so the
    choice compares mean absolute residuals and weekly seasonality wins."""
    rng = random.Random(5)
    secs, values = [], []
    for h in range(28 * 24):
        t = START + timedelta(hours=h)
        mean = 150 * (1 + 0.7 * math.cos(2 * math.pi * (t.hour - 15) / 24)) * (0.5 if t.weekday() >= 5 else 1)
        secs.append(t.timestamp())
        values.append(_negative_binomial(rng, mean, 30.0))
    options = candidate_seasonalities(timedelta(hours=1), "auto")
    assert choose_baseline(secs, values, options, counts=True).seasonality.name == "weekly"


def test_noise_is_measured_per_time_of_day_slot() -> None:
    """Night hours three times noisier than day hours at the same level: each slot's band follows."""
    rng = random.Random(11)
    secs, values = [], []
    for h in range(35 * 24):
        t = START + timedelta(hours=h)
        noisy = t.hour < 6
        secs.append(t.timestamp())
        values.append(500 * math.exp((0.15 if noisy else 0.05) * rng.gauss(0, 1)))
    baseline = choose_baseline(
        secs, values, candidate_seasonalities(timedelta(hours=1), "daily"), counts=False
    )
    night = baseline.scale(secs[-24 + 2])
    day = baseline.scale(secs[-24 + 14])
    assert night > 2 * day
    assert baseline.slot_noise and max(baseline.slot_noise.values()) > 1.5


def test_too_little_history_for_a_seasonality_is_said() -> None:
    values = [400.0 * (1 + 0.5 * math.sin(2 * math.pi * h / 24)) for h in range(9 * 24)]
    j = judge(values, 400.0)
    assert j.seasonality == "weekly seasonality not learned yet: needs 14 days of history, has 9.0"
    assert "daily seasonality" in j.method
    asked = judge(values[:36], 400.0, seasonality="daily")
    assert asked.seasonality.startswith("daily seasonality not learned yet: needs 2 days")
    assert "seasonality" not in asked.method  # judged without it rather than guessed
    assert judge(flat(15 * 24), 500.0).seasonality == ""


def test_overdispersed_counts_get_a_skewed_negative_binomial_band() -> None:
    rng = random.Random(2)
    values = [_negative_binomial(rng, 50.0, 20.0) for _ in range(28 * 24)]
    j = judge(values, 50.0)
    assert j.noise.startswith("negative binomial counts, variance")
    assert j.lower is not None and j.upper is not None and j.expected is not None
    assert j.upper - j.expected > 2 * (j.expected - j.lower)  # counts are skewed: the upper tail is long
    assert judge(values, 6 * j.expected).status == FindingStatus.ANOMALY
    # an empty hour happens now and then at this much noise: one alone is not an anomaly
    assert judge(values, 0.0).status == FindingStatus.OK
