"""The backtest replay hands each judgement only its training window's rows; every judgement (expected
value, band, decision, score and everything an explanation says) must be the one the reference replay
gives, which re-filters the last 2 x MAX_TRAINING_POINTS rows at every step."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftguard.config import DetectionSettings
from driftguard.detect import backtest, seasonal
from driftguard.detect.backtest import Replayed, _replay_volume_reference, backtest_volume, replay_volume
from driftguard.detect.explain import explanation, series_reason
from driftguard.detect.seasonal import SeasonalStrategy
from driftguard.model import FindingStatus

START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday; 2026-01-19 and 2026-02-16 are US holidays


@dataclass(frozen=True)
class Shape:
    """A series with what real ones do: a daily and weekly rhythm, noise, gaps, empty periods, a level
    shift, spikes and drops."""

    step: timedelta
    points: int
    level: float
    noise: float
    weekend: float
    gap_share: float
    zero_share: float
    shift_at: float  # share of the series after which the level is multiplied by shift
    shift: float
    spikes: int
    seed: int

    def rows(self) -> list[tuple[datetime, float]]:
        rng = random.Random(self.seed)
        out = []
        for i in range(self.points):
            ts = START + i * self.step
            if rng.random() < self.gap_share:
                continue
            hour = ts.hour + ts.minute / 60
            mean = self.level * (1 + 0.5 * math.sin(2 * math.pi * (hour - 8) / 24))
            mean *= self.weekend if ts.weekday() >= 5 else 1.0
            mean *= self.shift if i >= self.shift_at * self.points else 1.0
            value = max(0.0, round(mean * math.exp(self.noise * rng.gauss(0, 1))))
            if rng.random() < self.zero_share:
                value = 0.0
            out.append((ts, float(value)))
        for _ in range(self.spikes):
            j = rng.randrange(len(out))
            out[j] = (out[j][0], out[j][1] * rng.choice([0.05, 4.0, 10.0]))
        return out


def shapes(step: timedelta, points: tuple[int, int]) -> st.SearchStrategy[Shape]:
    return st.builds(
        Shape,
        step=st.just(step),
        points=st.integers(*points),
        level=st.sampled_from([0.5, 4.0, 60.0, 900.0, 25_000.0]),
        noise=st.sampled_from([0.0, 0.03, 0.15, 0.6]),
        weekend=st.sampled_from([1.0, 0.4, 0.0]),
        gap_share=st.sampled_from([0.0, 0.0, 0.05, 0.3]),
        zero_share=st.sampled_from([0.0, 0.0, 0.02, 0.2]),
        shift_at=st.floats(0.3, 1.0),
        shift=st.sampled_from([1.0, 0.3, 2.5]),
        spikes=st.integers(0, 4),
        seed=st.integers(0, 10_000),
    )


def detection(**overrides: Any) -> st.SearchStrategy[DetectionSettings]:
    return st.builds(
        DetectionSettings,
        sensitivity=st.sampled_from([2.5, 4.0]),
        direction=st.sampled_from(["both", "both", "drop", "spike"]),
        min_points=st.sampled_from([3, 14]),
        seasonality=st.sampled_from(["auto", "auto", "none", "daily", "weekly"]),
        level_shift_confirm_runs=st.sampled_from([2, 6]),
        calendar=st.sampled_from([None, "US"]),
        special_days=st.sampled_from([(), (datetime(2026, 1, 9).date(),)]),
        **overrides,
    )


def assert_same(fast: list[Replayed], reference: list[Replayed]) -> None:
    assert len(fast) == len(reference)
    for (at, value, j), (ref_at, ref_value, ref) in zip(fast, reference, strict=True):
        assert (at, value) == (ref_at, ref_value)
        assert j == ref, at  # every field: status, expected, lower, upper, score, p, window, slot, notes
        assert explanation(j, series_reason("rows", j)) == explanation(ref, series_reason("rows", ref))


@settings(max_examples=20, deadline=None)
@given(
    shapes(timedelta(hours=1), (60, 24 * 17)),
    detection(training_window=st.sampled_from([timedelta(days=3), timedelta(days=8), timedelta(days=56)])),
    st.booleans(),
)
def test_hourly_replay_equals_the_reference(
    shape: Shape, chosen: DetectionSettings, given_period: bool
) -> None:
    rows = shape.rows()
    period = shape.step if given_period else None
    assert_same(replay_volume(rows, period, chosen), _replay_volume_reference(rows, period, chosen))


@settings(max_examples=20, deadline=None)
@given(
    shapes(timedelta(days=1), (20, 160)),
    detection(training_window=st.sampled_from([timedelta(days=21), timedelta(days=56), timedelta(days=400)])),
    st.booleans(),
)
def test_daily_replay_equals_the_reference(
    shape: Shape, chosen: DetectionSettings, given_period: bool
) -> None:
    rows = shape.rows()
    period = shape.step if given_period else None
    assert_same(replay_volume(rows, period, chosen), _replay_volume_reference(rows, period, chosen))


@settings(max_examples=8, deadline=None)
@given(shapes(timedelta(minutes=15), (150, 400)), st.sampled_from([30, 45]))
def test_the_training_point_cap_applies_alike(shape: Shape, cap: int) -> None:
    """With more rows in the window than MAX_TRAINING_POINTS (made small here) both replays judge on
    the newest ones, and hand over at most twice as many."""
    rows = shape.rows()
    chosen = DetectionSettings(training_window=timedelta(days=30))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(seasonal, "MAX_TRAINING_POINTS", cap)
        assert_same(replay_volume(rows, None, chosen), _replay_volume_reference(rows, None, chosen))


def test_each_judgement_is_handed_only_its_window(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = Shape(timedelta(hours=1), 24 * 12, 300.0, 0.1, 0.5, 0.0, 0.0, 1.0, 1.0, 0, 1).rows()
    window = timedelta(days=2)
    handed: list[int] = []
    judge = SeasonalStrategy.judge

    def counting(self: SeasonalStrategy, history: Any, *args: Any) -> Any:
        handed.append(len(history))
        return judge(self, history, *args)

    monkeypatch.setattr(SeasonalStrategy, "judge", counting)
    replay_volume(rows, None, DetectionSettings(training_window=window))
    assert handed == [min(i, 48) for i in range(len(rows))]  # two days of hourly rows, the first one included


def test_rows_out_of_order_are_replayed_as_the_reference_does() -> None:
    rows = Shape(timedelta(hours=1), 24 * 4, 300.0, 0.1, 1.0, 0.0, 0.0, 1.0, 1.0, 2, 3).rows()
    shuffled = rows[:40] + rows[50:70] + rows[40:50] + rows[70:] + [rows[60]]  # late rows and a duplicate
    chosen = DetectionSettings()
    fast = replay_volume(shuffled, None, chosen)
    assert_same(fast, _replay_volume_reference(shuffled, None, chosen))
    assert [v.ts for v in backtest_volume(shuffled, None)] == [at for at, _, _ in fast]


def test_verdicts_are_the_judgements_without_a_band_while_learning() -> None:
    rows = Shape(timedelta(hours=1), 60, 300.0, 0.1, 1.0, 0.0, 0.0, 1.0, 1.0, 1, 4).rows()
    verdicts = backtest.backtest_volume(rows, None)
    judged = replay_volume(rows, None, DetectionSettings())
    for verdict, (_, _, j) in zip(verdicts, judged, strict=True):
        learning = j.status == FindingStatus.LEARNING
        assert verdict.expected == (None if learning else j.expected)
        assert (verdict.anomaly, verdict.score) == (j.anomaly, j.score)
    assert verdicts[0].expected is None and verdicts[-1].expected is not None
