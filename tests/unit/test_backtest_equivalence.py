"""The backtest replay hands each judgement only its training window's rows; every judgement (expected
value, band, decision, score and everything an explanation says) must be the one the reference replay
gives, which re-filters the last 2 x MAX_TRAINING_POINTS rows at every step."""

from __future__ import annotations

import json
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
    assert_same(
        replay_volume(rows, period, chosen, exact=True), _replay_volume_reference(rows, period, chosen)
    )


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
    assert_same(
        replay_volume(rows, period, chosen, exact=True), _replay_volume_reference(rows, period, chosen)
    )


@settings(max_examples=8, deadline=None)
@given(shapes(timedelta(minutes=15), (150, 400)), st.sampled_from([30, 45]))
def test_the_training_point_cap_applies_alike(shape: Shape, cap: int) -> None:
    """With more rows in the window than MAX_TRAINING_POINTS (made small here) both replays judge on
    the newest ones, and hand over at most twice as many."""
    rows = shape.rows()
    chosen = DetectionSettings(training_window=timedelta(days=30))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(seasonal, "MAX_TRAINING_POINTS", cap)
        assert_same(
            replay_volume(rows, None, chosen, exact=True), _replay_volume_reference(rows, None, chosen)
        )


def test_each_judgement_is_handed_only_its_window(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = Shape(timedelta(hours=1), 24 * 12, 300.0, 0.1, 0.5, 0.0, 0.0, 1.0, 1.0, 0, 1).rows()
    window = timedelta(days=2)
    handed: list[int] = []
    judge = SeasonalStrategy.judge

    def counting(self: SeasonalStrategy, history: Any, *args: Any) -> Any:
        handed.append(len(history))
        return judge(self, history, *args)

    monkeypatch.setattr(SeasonalStrategy, "judge", counting)
    replay_volume(rows, None, DetectionSettings(training_window=window), exact=True)
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


def _reused(replayed: list[Replayed]) -> list[Replayed]:
    """The judgements made by a fit kept from an earlier judgement (not fitted for themselves)."""
    return [r for r in replayed if r[2].fitted is not None and r[2].fitted.at < r[0].timestamp()]


@settings(max_examples=25, deadline=None)
@given(
    shapes(timedelta(hours=1), (60, 24 * 30)),
    detection(training_window=st.sampled_from([timedelta(days=8), timedelta(days=56)])),
)
def test_kept_fits_alert_where_a_full_fit_at_every_point_does(
    shape: Shape, chosen: DetectionSettings
) -> None:
    """Keeping fits changes the cost, not what alerts: a kept fit only judges values plainly normal
    under a fit less than a refit interval old. Differences are bounded here at one judgement plus 1%
    (on degenerate series consecutive full fits can disagree wildly; 60 random series of this shape
    showed 2 of 11,455 judgements differ). Every judgement a kept fit makes is OK, within 60% of
    `sensitivity` and inside its band, under a fit made under the same settings within the interval,
    never while a seasonality is waited for, and says the training window that fit learned from."""
    rows = shape.rows()
    kept = replay_volume(rows, None, chosen)
    full = replay_volume(rows, None, chosen, exact=True)
    differ = sum(a[2].anomaly != b[2].anomaly for a, b in zip(kept, full, strict=True))
    assert differ <= 1 + 0.01 * len(rows)
    refit_after = chosen.training_window.total_seconds() * seasonal._REFIT_SHARE
    for at, value, j in _reused(kept):
        assert j.fitted is not None
        assert j.status == FindingStatus.OK and j.score < 0.6 * chosen.sensitivity
        assert 0 <= at.timestamp() - j.fitted.at < refit_after
        assert j.fitted.fingerprint == seasonal.fingerprint(True, True, None, chosen)
        assert (j.training_start, j.training_end) == (j.fitted.training_start, j.fitted.training_end)
        assert not j.seasonality or at.timestamp() < j.fitted.learns_at  # never once it can be learned
        assert j.lower is not None and j.upper is not None and j.lower <= value <= j.upper


def test_a_steady_hourly_series_is_mostly_judged_by_kept_fits() -> None:
    """What the kept fits are for: after the first two weeks, plainly normal hours reuse the fit of the
    last full judgement (unusual hours and a refit every two days are judged in full)."""
    rows = Shape(timedelta(hours=1), 24 * 28, 300.0, 0.05, 0.6, 0.0, 0.0, 1.0, 1.0, 0, 7).rows()
    kept = replay_volume(rows, None, DetectionSettings())
    after_learning = [r for r in kept if r[0] >= START + timedelta(days=15)]
    assert len(_reused(after_learning)) >= 0.8 * len(after_learning)
    full = replay_volume(rows, None, DetectionSettings(), exact=True)
    assert [j.anomaly for _, _, j in kept] == [j.anomaly for _, _, j in full]


def test_a_fit_reads_back_from_json_equal() -> None:
    rows = Shape(timedelta(hours=1), 24 * 20, 300.0, 0.1, 0.6, 0.0, 0.0, 0.8, 1.8, 2, 8).rows()
    fits = [j.fitted for _, _, j in replay_volume(rows, None, DetectionSettings(calendar="US")) if j.fitted]
    assert fits and any(f.baseline.slot_noise for f in fits) and any(f.calendar for f in fits)
    for fit in fits[::25]:
        assert seasonal.Fitted.from_json(json.loads(json.dumps(fit.to_json()))) == fit
    assert seasonal.Fitted.from_json({"baseline": {}}) is None  # damaged or older: fitted again, not trusted


def test_a_high_count_with_many_empty_periods_keeps_a_finite_band() -> None:
    """Found by the kept-fit test: 25,000 rows an hour with a fifth of the hours empty has log-scale
    noise so wide that its band overflowed a float (OverflowError) and the judgement failed."""
    rows = Shape(timedelta(hours=1), 87, 25_000.0, 0.0, 1.0, 0.0, 0.2, 1.0, 1.0, 0, 104).rows()
    chosen = DetectionSettings(
        sensitivity=2.5,
        direction="spike",
        min_points=3,
        level_shift_confirm_runs=2,
        training_window=timedelta(days=8),
    )
    judged = replay_volume(rows, None, chosen, exact=True)
    assert all(j.upper is None or math.isfinite(j.upper) for _, _, j in judged)
    assert any(j.status == FindingStatus.OK for _, _, j in judged)


def test_a_period_judged_again_is_judged_by_the_fit_made_for_it() -> None:
    """Checks every 15 minutes judge the latest complete hour four times: the fit made for that hour is
    the one a full judgement would make again (same training rows), so it judges the repeats and no
    new fit is written each time; a later row count for the same hour is judged by it too."""
    rows = Shape(timedelta(hours=1), 24 * 28, 300.0, 0.05, 0.6, 0.0, 0.0, 1.0, 1.0, 0, 9).rows()
    chosen = DetectionSettings()
    history = [backtest._point(at, v, j) for at, v, j in replay_volume(rows[:-1], None, chosen, exact=True)]
    strategy = SeasonalStrategy()
    at, value = rows[-1]
    full = strategy.judge(history, at, value, chosen)
    assert full.fitted is not None and full.status == FindingStatus.OK
    again = strategy.reuse(full.fitted, history[-strategy.reuse_tail(chosen) :], at, value + 1, chosen)
    assert again is not None and again.fitted is full.fitted
    assert (again.expected, again.lower, again.upper) == (full.expected, full.lower, full.upper)
