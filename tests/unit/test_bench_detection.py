"""The detection benchmark: its labels, its scoring and its reference detectors."""

from __future__ import annotations

import itertools
import json
import math
import statistics
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from bench.detection import runner
from bench.detection.reallike import US_HOLIDAYS, late_arrivals, negative_binomial
from bench.detection.references import (
    DeequOnlineNormal,
    ElementaryZScore,
    ReDataModifiedZScore,
    RollingThreeSigma,
    SeasonalMedianMAD,
)
from bench.detection.scenarios import (
    CADENCES,
    CLEAN_FAMILIES,
    FAMILIES,
    FRESHNESS_FAMILIES,
    HELDOUT_SEEDS,
    TRAIN_SEEDS,
    Event,
    Rng,
    Scenario,
    scenario,
    seeds,
)
from bench.detection.scoring import Tally, score_series, total

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
ALL_SEEDS = [*TRAIN_SEEDS, *HELDOUT_SEEDS]


def rows_of(values: list[float], period: timedelta = DAY) -> list[tuple[datetime, float]]:
    return [(T0 + i * period, v) for i, v in enumerate(values)]


def week_ago(s: Scenario, i: int, weeks: int) -> float:
    return s.values[i - weeks * round(timedelta(weeks=1) / s.period)]


def reference_level(s: Scenario, i: int) -> float:
    """The same slot one and two weeks before: what the point would have been without the anomaly."""
    return statistics.mean([week_ago(s, i, 1), week_ago(s, i, 2)])


# --------------------------------------------------------------------------- generators and labels


@pytest.mark.parametrize("family", FAMILIES)
def test_every_series_is_a_pure_function_of_family_and_seed(family: str) -> None:
    assert scenario(family, 3) == scenario(family, 3)
    assert scenario(family, 3).rows != scenario(family, 4).rows


def test_training_and_held_out_seeds_never_overlap() -> None:
    assert not set(TRAIN_SEEDS) & set(HELDOUT_SEEDS)
    assert list(seeds("train", "spike")) == list(TRAIN_SEEDS)
    assert list(seeds("heldout", "spike")) == list(HELDOUT_SEEDS)


def test_quick_mode_takes_one_series_per_family_and_still_covers_both_granularities() -> None:
    for split, split_seeds in (("train", TRAIN_SEEDS), ("heldout", HELDOUT_SEEDS)):
        chosen = {f: list(seeds(split, f, quick=True)) for f in FAMILIES}
        assert all(len(s) == 1 and s[0] in split_seeds for s in chosen.values())
        volume = {scenario(f, s[0]).granularity for f, s in chosen.items() if f not in FRESHNESS_FAMILIES}
        assert volume == {"hourly", "daily"}


@pytest.mark.parametrize("family", FAMILIES)
def test_events_lie_after_the_warm_up_and_inside_the_series(family: str) -> None:
    for seed in ALL_SEEDS:
        s = scenario(family, seed)
        assert (not s.events) == (family in CLEAN_FAMILIES), s.name
        for e in s.events:
            assert s.warmup <= e.onset <= e.end < len(s.rows), (s.name, e)
        starts = sorted(e.onset for e in s.events)
        ends = sorted(e.end for e in s.events)
        assert all(end < start for end, start in zip(ends, starts[1:], strict=False)), s.name


def test_volume_values_are_non_negative_counts_on_a_regular_grid() -> None:
    for seed in (0, 1):
        s = scenario("volatile", seed)
        assert all(v >= 0 and v == int(v) for v in s.values)
        assert all(b[0] - a[0] == s.period for a, b in zip(s.rows, s.rows[1:], strict=False))


def test_a_labeled_spike_stands_far_above_its_slot_in_earlier_weeks() -> None:
    for seed in ALL_SEEDS:
        s = scenario("spike", seed)
        for e in s.events:
            assert s.values[e.onset] > 1.8 * reference_level(s, e.onset), (s.name, e)
            assert s.values[e.onset - 1] < 1.5 * reference_level(s, e.onset - 1), (s.name, e)


def test_labeled_drops_and_holidays_are_far_below_their_slots_and_zeros_are_zero() -> None:
    for seed in ALL_SEEDS:
        for family in ("drop", "holiday"):
            s = scenario(family, seed)
            for e in s.events:
                for i in range(e.onset, e.end + 1):
                    assert s.values[i] < 0.6 * reference_level(s, i), (s.name, e, i)
        s = scenario("zero", seed)
        for e in s.events:
            assert all(s.values[i] == 0 for i in range(e.onset, e.end + 1)), (s.name, e)
            assert s.values[e.onset - 1] > 0 and s.values[e.end + 1] > 0, (s.name, e)


def test_holidays_are_whole_weekdays() -> None:
    for seed in ALL_SEEDS:
        s = scenario("holiday", seed)
        for e in s.events:
            first, last = s.rows[e.onset][0], s.rows[e.end][0]
            assert first.weekday() < 5 and first.hour == 0 and last.date() == first.date(), (s.name, e)
            assert last + s.period - first == DAY


def test_a_level_shift_persists_after_its_onset() -> None:
    for seed in ALL_SEEDS:
        s = scenario("level_shift", seed)
        (e,) = s.events
        week = round(timedelta(weeks=1) / s.period)
        before = statistics.mean(s.values[e.onset - week : e.onset])
        after = statistics.mean(s.values[e.onset : e.onset + week])
        last_week = statistics.mean(s.values[-week:])
        assert not 0.7 < after / before < 1.5, (s.name, after / before)
        assert 0.8 < last_week / after < 1.25, s.name  # the new level stays (only trend and noise move it)
        assert e.end - e.onset + 1 == 1 + (24 if s.granularity == "hourly" else 7)  # the step + allowance


def test_a_labeled_stall_has_no_update_inside_it_and_updates_resume_after_it() -> None:
    for seed in ALL_SEEDS:
        s = scenario("freshness_stall", seed)
        (e,) = s.events
        cadence = next(c for c in CADENCES if c.name == s.granularity)
        lags = s.values
        assert lags[e.onset] > cadence.interval.total_seconds(), s.name
        step = s.period.total_seconds()
        assert all(lags[i + 1] - lags[i] == pytest.approx(step) for i in range(e.onset, e.end)), s.name
        if e.end + 1 < len(lags):
            assert lags[e.end + 1] < lags[e.end], s.name  # the resuming update arrived
        assert lags[e.onset - 1] <= (cadence.interval + cadence.max_lateness).total_seconds() + step, s.name


def test_clean_freshness_series_on_weekdays_only_have_weekend_gaps_and_nothing_else() -> None:
    s = scenario("freshness_clean", 1)  # seed 1: hourly on weekdays
    assert s.granularity == "hourly on weekdays"
    long_gaps = [ts for ts, lag in s.rows if lag > 2 * 3600]
    assert all(ts.weekday() >= 5 or (ts.weekday() == 0 and ts.hour == 0) for ts in long_gaps)
    assert max(s.values) > 48 * 3600


# --------------------------------------------------------------------------- scoring


def test_a_detected_spike_and_one_false_run_of_alerts() -> None:
    alerts = [False, False, True, False, False, True, True, False, False, False]
    tally = score_series(alerts, [Event("spike", 2, 2)], warmup=0, period=HOUR)
    assert (tally.events, tally.detected, tally.false_alerts, tally.delays) == (1, 1, 1, (0,))
    assert tally.precision == 0.5 and tally.recall == 1.0
    assert tally.f1 == pytest.approx(2 / 3)


def test_an_alert_in_the_grace_point_after_an_event_detects_it_one_period_late() -> None:
    alerts = [False, False, False, True, False, False]
    tally = score_series(alerts, [Event("drop", 2, 2)], warmup=0, period=HOUR)
    assert (tally.detected, tally.false_alerts, tally.delays) == (1, 0, (1,))
    too_late = score_series([False, False, False, False, True, False], [Event("drop", 2, 2)], 0, HOUR)
    assert (too_late.detected, too_late.false_alerts) == (0, 1)


def test_a_missed_event_has_no_precision_and_zero_f1() -> None:
    tally = score_series([False] * 8, [Event("zero", 4, 5)], warmup=2, period=DAY)
    assert (tally.detected, tally.false_alerts) == (0, 0)
    assert tally.precision is None and tally.recall == 0.0 and tally.f1 == 0.0 and tally.mean_delay is None


def test_alerts_in_the_warm_up_are_not_counted_and_separate_runs_are_separate_false_alerts() -> None:
    alerts = [True, True, False, True, False, True, True]
    tally = score_series(alerts, [], warmup=2, period=HOUR)
    assert tally.false_alerts == 2
    assert tally.scored_days == pytest.approx(5 / 24)
    assert tally.f1 is None and tally.recall is None


def test_false_alerts_per_30_days_and_pooled_tallies() -> None:
    one = score_series([False] * 47 + [True], [], warmup=0, period=HOUR)  # 1 false alert in 2 days
    assert one.false_alerts_per_30_days == pytest.approx(15.0)
    two = score_series([False, True, False, False], [Event("spike", 1, 1)], warmup=0, period=DAY)
    pooled = total([one, two])
    assert pooled == one + two
    assert (pooled.events, pooled.detected, pooled.false_alerts) == (1, 1, 1)
    assert pooled.scored_days == pytest.approx(6.0)
    assert Tally() + Tally() == Tally()


def test_an_event_inside_the_warm_up_is_a_bug_in_the_scenario() -> None:
    with pytest.raises(ValueError, match="warm-up"):
        score_series([False] * 5, [Event("spike", 1, 1)], warmup=3, period=HOUR)


def test_a_lasting_alert_past_its_window_costs_one_false_alert() -> None:
    alerts = [False, True, True, True, True, True, True]
    tally = score_series(alerts, [Event("level_shift", 1, 2)], warmup=0, period=DAY)
    assert (tally.detected, tally.false_alerts) == (1, 1)  # the window is points 1..3 with the grace


# --------------------------------------------------------------------------- reference detectors


def test_elementary_includes_the_judged_point_which_caps_its_own_z_score() -> None:
    # 13 equal days then a huge value: inside a 14-point window the z-score of the outlier is
    # (n - 1) / sqrt(n) whatever its size, because it is part of its own mean and stddev.
    verdicts = ElementaryZScore().backtest(rows_of([100.0] * 13 + [1e9]), DAY)
    assert verdicts[-1].score == pytest.approx(13 / math.sqrt(14))
    assert verdicts[-1].anomaly
    assert all(v.expected is None for v in verdicts[:-1])  # min_training_set_size 14


def test_elementary_misses_a_spike_that_an_out_of_sample_window_catches() -> None:
    values = [90.0 if i % 2 else 110.0 for i in range(20)] + [140.0]
    elementary = ElementaryZScore().backtest(rows_of(values), DAY)[-1]
    rolling = RollingThreeSigma().backtest(rows_of(values), DAY)[-1]
    assert rolling.anomaly and rolling.score > 3
    assert not elementary.anomaly and elementary.score < 3


def test_elementary_judges_freshness_on_spikes_only() -> None:
    values = [1000.0 if i % 2 else 1100.0 for i in range(20)] + [10.0]
    assert ElementaryZScore().backtest(rows_of(values), DAY)[-1].anomaly
    assert not ElementaryZScore(direction="spike").backtest(rows_of(values), DAY)[-1].anomaly


def test_elementary_forgets_points_older_than_days_back() -> None:
    values = [1e6] + [100.0 if i % 2 else 102.0 for i in range(20)] + [200.0]
    verdicts = ElementaryZScore().backtest(rows_of(values), DAY)
    assert verdicts[-1].anomaly  # the first point left the 14-day window long ago


def test_deequ_ignores_its_start_percentage_of_the_whole_history() -> None:
    # An outlier at index 15 is flagged (and kept out of the statistics) while the history is short;
    # once the history exceeds 150 points it falls into the ignored first 10% and inflates the stddev.
    values = [99.0 if i % 2 else 101.0 for i in range(200)]
    values[15] = 10_000.0
    values[199] = 130.0
    verdicts = DeequOnlineNormal().backtest(rows_of(values), DAY)
    assert verdicts[15].anomaly
    assert not verdicts[199].anomaly
    assert DeequOnlineNormal(ignore_start_percentage=0.0).backtest(rows_of(values), DAY)[199].anomaly
    assert not any(
        v.anomaly for v in DeequOnlineNormal(ignore_start_percentage=1.0).backtest(rows_of(values), DAY)
    )


def test_deequ_replay_equals_rerunning_the_strategy_over_every_history() -> None:
    s = scenario("volatile", 3)
    rows = s.rows[:150]
    deequ = DeequOnlineNormal()
    rerun = [list(deequ.run(rows[:n], math.ceil(n * 0.1)))[-1] for n in range(1, len(rows) + 1)]
    assert deequ.backtest(rows, s.period) == rerun
    assert any(v.anomaly for v in rerun)


def test_deequ_never_adopts_a_level_shift_because_anomalies_stay_out_of_its_statistics() -> None:
    values = [99.0 if i % 2 else 101.0 for i in range(50)] + [199.0 if i % 2 else 201.0 for i in range(50)]
    verdicts = DeequOnlineNormal().backtest(rows_of(values), DAY)
    assert all(v.anomaly for v in verdicts[50:])
    adopting = DeequOnlineNormal(ignore_anomalies=False).backtest(rows_of(values), DAY)
    assert not all(v.anomaly for v in adopting[50:])


def test_re_data_scores_with_median_and_mad() -> None:
    verdict = ReDataModifiedZScore().backtest(rows_of([1.0, 2.0, 3.0, 4.0, 100.0]), DAY)[-1]
    # median 3, absolute deviations [2, 1, 0, 1, 97] -> MAD 1: modified z = 0.6745 * 97 / 1
    assert verdict.expected == 3.0
    assert verdict.score == pytest.approx(0.6745 * 97, rel=1e-6)
    assert verdict.anomaly


def test_re_data_falls_back_to_the_mean_absolute_deviation_when_mad_is_zero() -> None:
    verdict = ReDataModifiedZScore().backtest(rows_of([5.0, 5.0, 5.0, 5.0, 9.0]), DAY)[-1]
    # MAD 0; mean 5.8, mean absolute deviation 1.28: (9 - 5) / (1.253314 * 1.28)
    assert verdict.score == pytest.approx(4 / (1.253314 * 1.28), rel=1e-6)
    assert not verdict.anomaly


def test_re_data_looks_back_thirty_days() -> None:
    values = [1000.0] * 20 + [10.0 if i % 2 else 12.0 for i in range(40)] + [1000.0]
    verdicts = ReDataModifiedZScore().backtest(rows_of(values), DAY)
    assert verdicts[-1].anomaly  # the early 1000s are older than 30 days by then


def test_rolling_three_sigma_judges_out_of_sample_after_a_full_window() -> None:
    values = [99.0 if i % 2 else 101.0 for i in range(24)] + [130.0]
    verdicts = RollingThreeSigma().backtest(rows_of(values, HOUR), HOUR)
    assert all(v.expected is None for v in verdicts[:24])
    assert verdicts[24].expected == 100.0 and verdicts[24].anomaly
    daily = RollingThreeSigma().backtest(rows_of(values, DAY), DAY)
    assert daily[14].expected is not None and daily[13].expected is None


def test_slot_median_mad_expects_the_median_of_the_same_slot_in_the_last_four_weeks() -> None:
    # one point a day: the same weekday 1-4 weeks back are the slot; residuals of the last 4 weeks
    values = [100.0 + (i % 7) * 10 + (1.0 if i % 2 else -1.0) for i in range(70)]
    values[5 * 7] = 1000.0  # an old outlier in the slot 5 weeks back: outside the 4 weeks
    verdicts = SeasonalMedianMAD().backtest(rows_of([*values, 100.0, 125.0]), DAY)
    assert all(v.expected is None for v in verdicts[:28])  # 2 weeks for a median, 14 residuals
    last = verdicts[70]
    assert last.expected == pytest.approx(100.0, abs=1.0) and not last.anomaly
    flagged = verdicts[71]  # 125 against ~110, residuals of about +-1: beyond 4 x MAD
    assert flagged.anomaly and flagged.upper is not None and flagged.upper - flagged.expected < 10


@pytest.mark.parametrize(
    "detector", [ElementaryZScore(), DeequOnlineNormal(), ReDataModifiedZScore(), SeasonalMedianMAD()]
)
def test_every_reference_returns_one_verdict_per_point(detector: runner.Detector) -> None:
    s = scenario("spike", 1)
    verdicts = detector.backtest(s.rows, s.period)
    assert [v.ts for v in verdicts] == [ts for ts, _ in s.rows]


# --------------------------------------------------------------------------- targets and output


def results(dg: dict[str, Tally], ref: dict[str, Tally], error: str | None = None) -> runner.Results:
    families = tuple(dg)
    contenders = ([runner.DRIFTGUARD] if error is None else []) + ["Elementary"]
    tallies = {f: ({runner.DRIFTGUARD: dg[f]} if error is None else {}) | {"Elementary": ref[f]} for f in dg}
    seconds = dict.fromkeys(contenders, 0.0)
    return runner.Results("abc1234", "heldout", True, families, contenders, error, tallies, seconds)


GOOD = Tally(events=10, detected=10, false_alerts=0, scored_days=30.0, delays=(0,) * 10)
CLEAN = Tally(scored_days=60.0, false_alerts=1)
WEAK = Tally(events=10, detected=5, false_alerts=5, scored_days=30.0, delays=(3,) * 5)


QUIET = Tally(scored_days=120.0, false_alerts=1)  # 0.25 per 30 days


def test_targets_are_met_only_when_driftguard_earns_them() -> None:
    ours = {"spike": GOOD, "clean": CLEAN, "rl_clean": QUIET, "level_shift": GOOD}
    theirs = {"spike": WEAK, "clean": CLEAN, "rl_clean": CLEAN, "level_shift": WEAK}
    met = runner.targets(results(ours, theirs))
    assert [t.met for t in met] == [True] * 6
    worse = {
        "spike": WEAK,
        "clean": GOOD,
        "rl_clean": Tally(scored_days=30.0, false_alerts=1),
        "level_shift": WEAK,
    }
    missed = runner.targets(
        results(worse, {"spike": GOOD, "clean": CLEAN, "rl_clean": CLEAN, "level_shift": GOOD})
    )
    assert [t.met for t in missed] == [False, False, True, False, False, False]
    assert "spike: 0.50 < Elementary 1.00" in missed[0].detail
    assert missed[4].detail == "rl_clean 1.00" and missed[5].detail == "level_shift 0.50"


def test_without_driftguard_every_target_is_not_met_and_the_reason_is_printed() -> None:
    error = "DriftGuard: not available (ImportError: no module)"
    res = results({"spike": GOOD}, {"spike": WEAK}, error=error)
    assert all(not t.met and t.detail == error for t in runner.targets(res))
    text = runner.report(res)
    assert f"!! {error}" in text and "NOT MET" in text
    figures = json.loads(json.dumps(runner.as_json(res)))
    assert figures["driftguard_error"] == error and figures["detectors"] == ["Elementary"]


def test_the_benchmark_runs_end_to_end_in_quick_mode(tmp_path: Path) -> None:
    """CI's smoke run of `python -m bench.detection --quick` (two families keep it short): every
    detector is replayed and scored, and the figures are written; never what they are."""
    out = tmp_path / "figures.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.detection",
            "--quick",
            "--family",
            "spike",
            "--family",
            "freshness_stall",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "DriftGuard" in result.stdout and "Elementary" in result.stdout and "Targets:" in result.stdout
    figures = json.loads(out.read_text())
    assert figures  # written, whatever the numbers are


# --------------------------------------------------------------------------- real-like series


def test_negative_binomial_counts_have_the_asked_overdispersion() -> None:
    rng = Rng("test", 1)
    for mean, dispersion in ((200.0, 20.0), (40.0, 5.0)):
        draws = [negative_binomial(rng, mean, dispersion) for _ in range(4000)]
        assert statistics.mean(draws) == pytest.approx(mean, rel=0.05)
        assert statistics.variance(draws) / mean == pytest.approx(dispersion, rel=0.15)


def test_the_listed_us_holidays_are_the_holidays_librarys() -> None:
    import holidays

    first, last = min(US_HOLIDAYS), max(US_HOLIDAYS)
    library = {
        d
        for d in holidays.country_holidays("US", years=range(first.year, last.year + 1))
        if first <= d <= last
    }
    assert library == set(US_HOLIDAYS)


def test_real_like_holidays_run_at_a_weekend_level_and_are_not_labeled() -> None:
    s = scenario("rl_holiday_week", 1)  # daily, from Labor Day 2026 into 2027
    assert s.calendar == "US"
    by_day = {ts.date(): v for ts, v in s.rows}
    holidays_seen = [d for d in by_day if d in US_HOLIDAYS]
    assert len(holidays_seen) >= 6
    labeled = {s.rows[i][0].date() for e in s.events for i in range(e.onset, e.end + 1)}
    assert not labeled & set(holidays_seen)
    weekdays = statistics.median(v for d, v in by_day.items() if d.weekday() < 5 and d not in US_HOLIDAYS)
    assert all(by_day[d] < 0.8 * weekdays for d in holidays_seen)


def test_missing_periods_leave_the_series_and_events_stay_on_reported_periods() -> None:
    for seed in (0, 1):
        s = scenario("rl_missing", seed)
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(s.rows)]
        assert sum(g > s.period for g in gaps) >= 5 and all(g >= s.period for g in gaps)
        for e in s.events:
            assert (s.rows[e.end][0] - s.rows[e.onset][0]) == (e.end - e.onset) * s.period


def test_late_rows_are_counted_in_the_next_period_and_none_are_lost() -> None:
    counts = [100.0] * 50
    moved = late_arrivals(counts, Rng("test", 2))
    assert moved != counts and moved[0] < 100.0  # some rows of the first period arrived late
    # every late row lands in the next period: only the last period's late rows are still to come
    assert 0 <= sum(counts) - sum(moved) <= counts[-1]


def test_a_real_like_step_persists_to_the_end() -> None:
    for seed in (0, 1):
        s = scenario("rl_step", seed)
        (e,) = s.events
        before = statistics.median(s.values[e.onset - 14 * s_per_day(s) : e.onset])
        after = statistics.median(s.values[-7 * s_per_day(s) :])
        assert after > 1.4 * before or after < 0.7 * before, s.name


def s_per_day(s: Scenario) -> int:
    return round(DAY / s.period)
