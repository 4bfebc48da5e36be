"""Backtest replay (the benchmark's interface) and the `driftguard backtest` command."""

from __future__ import annotations

import csv
import io
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from driftguard.cli.backtest import backtest
from driftguard.config import DetectionSettings
from driftguard.detect.backtest import backtest_freshness, backtest_volume

START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday


def hourly(values: list[float]) -> list[tuple[datetime, float]]:
    return [(START + timedelta(hours=i), v) for i, v in enumerate(values)]


def noisy_daily_rhythm(days: int, seed: int = 7, level: float = 300.0) -> list[float]:
    rng = random.Random(seed)
    out = []
    for i in range(days * 24):
        mean = level * (1 + 0.5 * math.sin(2 * math.pi * (i % 24 - 9) / 24))
        out.append(float(round(mean * math.exp(0.05 * rng.gauss(0, 1)))))
    return out


@settings(max_examples=15, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=500), min_size=25, max_size=40),
    st.integers(min_value=16, max_value=23),
    st.integers(min_value=0, max_value=10_000),
)
def test_verdict_i_is_unchanged_when_later_rows_change(values: list[int], cut: int, replacement: int) -> None:
    rows = hourly([float(v) for v in values])
    changed = rows[: cut + 1] + [(ts, float(replacement)) for ts, _ in rows[cut + 1 :]]
    first, second = backtest_volume(rows, timedelta(hours=1)), backtest_volume(changed, timedelta(hours=1))
    assert first[: cut + 1] == second[: cut + 1]


@settings(max_examples=15, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=1, max_size=40))
def test_scores_are_never_negative(values: list[float]) -> None:
    assert all(v.score >= 0 for v in backtest_volume(hourly(values), None))


@settings(max_examples=10, deadline=None)
@given(st.floats(min_value=0, max_value=1e6, allow_nan=False), st.integers(min_value=20, max_value=60))
def test_a_constant_series_never_alerts(value: float, n: int) -> None:
    assert not any(v.anomaly for v in backtest_volume(hourly([value] * n), None))


@settings(max_examples=10, deadline=None)
@given(st.sampled_from([10.0, 1000.0, 0.5]), st.integers(min_value=0, max_value=100))
def test_verdicts_scale_with_the_series(factor: float, seed: int) -> None:
    """Large noisy counts (the Poisson floor never binds): scaling changes no decision."""
    rng = random.Random(seed)
    values = [1e6 * math.exp(0.1 * rng.gauss(0, 1)) for _ in range(40)] + [3e5, 1e6]
    base = backtest_volume(hourly(values), timedelta(hours=1))
    scaled = backtest_volume(hourly([v * factor for v in values]), timedelta(hours=1))
    assert [v.anomaly for v in base] == [v.anomaly for v in scaled]
    assert all(math.isclose(a.score, b.score, rel_tol=1e-6) for a, b in zip(base, scaled, strict=True))


def test_learning_rows_have_no_band_then_judgement_starts() -> None:
    verdicts = backtest_volume(hourly([100.0] * 20), timedelta(hours=1))
    assert all(v.expected is None and v.lower is None for v in verdicts[:14])
    assert all(v.expected == 100.0 for v in verdicts[14:])


def test_spike_and_drop_in_a_daily_rhythm_are_found_without_false_alarms() -> None:
    values = noisy_daily_rhythm(21)
    values[20 * 24 + 10] *= 4  # a spike at 10:00 on day 20
    values[19 * 24 + 15] = values[19 * 24 + 15] * 0.2  # a drop at 15:00 on day 19
    verdicts = backtest_volume(hourly(values), None)
    flagged = {i for i, v in enumerate(verdicts) if v.anomaly and i >= 3 * 24}
    assert flagged == {20 * 24 + 10, 19 * 24 + 15}


def test_the_night_is_not_judged_by_the_day() -> None:
    """The night's low counts are normal for the night; the same count at noon is a drop."""
    values = noisy_daily_rhythm(14)
    night, noon = 13 * 24 + 3, 13 * 24 + 12
    values[noon] = values[night]
    verdicts = backtest_volume(hourly(values), None)
    assert not verdicts[night].anomaly
    assert verdicts[noon].anomaly and verdicts[noon].value < (verdicts[noon].lower or 0)


def test_no_alert_on_weekends_of_a_weekday_table() -> None:
    """Hourly loads on weekdays, nothing at weekends: after two weeks, weekends are normal."""
    rng = random.Random(3)
    values = []
    for i in range(35 * 24):
        weekend = (START + timedelta(hours=i)).weekday() >= 5
        values.append(0.0 if weekend else float(round(200 * math.exp(0.05 * rng.gauss(0, 1)))))
    verdicts = backtest_volume(hourly(values), timedelta(hours=1))
    late = [i for i, v in enumerate(verdicts) if v.anomaly and i >= 21 * 24]
    assert late == []


def test_small_counts_are_not_five_sigma_events() -> None:
    rng = random.Random(11)
    values = [float(sum(rng.random() < 0.05 for _ in range(140))) for _ in range(24 * 14)]  # ~7 rows an hour
    values[-1] = 3.0
    verdicts = backtest_volume(hourly(values), timedelta(hours=1))
    assert not verdicts[-1].anomaly
    assert sum(v.anomaly for v in verdicts) <= 2


def test_a_lasting_level_shift_becomes_the_new_normal() -> None:
    rng = random.Random(5)
    values = [float(round(500 * math.exp(0.04 * rng.gauss(0, 1)))) for _ in range(24 * 14)]
    values += [float(round(1000 * math.exp(0.04 * rng.gauss(0, 1)))) for _ in range(48)]
    confirm = DetectionSettings().level_shift_confirm_runs
    verdicts = backtest_volume(hourly(values), timedelta(hours=1))
    shift = 24 * 14
    assert verdicts[shift].anomaly
    assert not any(v.anomaly for v in verdicts[shift + confirm + 1 :])


def test_a_repeated_incident_keeps_alerting() -> None:
    """Points that alerted stay out of training: a repeat of the same drop is still a drop."""
    values = [500.0 + (i * 37 % 17) for i in range(24 * 7)]
    for start in (100, 130, 160):
        values[start] = 50.0
    verdicts = backtest_volume(hourly(values), timedelta(hours=1))
    assert all(verdicts[i].anomaly for i in (100, 130, 160))


def test_direction_drop_ignores_spikes() -> None:
    values = [500.0 + (i * 37 % 17) for i in range(40)] + [5000.0, 50.0]
    verdicts = backtest_volume(hourly(values), timedelta(hours=1), DetectionSettings(direction="drop"))
    assert not verdicts[-2].anomaly and verdicts[-2].score == 0
    assert verdicts[-1].anomaly


def test_minimum_effect_size_suppresses_tiny_changes() -> None:
    values = [1000.0] * 30 + [1001.0, 1003.0]
    loose = backtest_volume(
        hourly(values), None, DetectionSettings(min_relative_change=0, min_absolute_change=0)
    )
    strict = backtest_volume(
        hourly(values), None, DetectionSettings(min_absolute_change=5, min_relative_change=0)
    )
    assert strict[-1].anomaly is False
    assert loose[-1].anomaly is False  # the Poisson floor: 3 rows in 1000 is noise
    big = backtest_volume(hourly([*values[:30], 1300.0]), None, DetectionSettings(min_relative_change=0.5))
    assert not big[-1].anomaly and big[-1].score > 4


# --------------------------------------------------------------------------- freshness


def hourly_weekday_updates(weeks: int) -> list[datetime]:
    times = []
    for h in range(weeks * 7 * 24):
        t = START + timedelta(hours=h, minutes=5 + (h * 7 % 10))
        if t.weekday() < 5:
            times.append(t)
    return times


def test_freshness_is_quiet_on_sundays_and_alerts_on_a_stall() -> None:
    updates = hourly_weekday_updates(5)
    stall_from = START + timedelta(weeks=4, days=1, hours=10)  # a Tuesday morning
    updates = [u for u in updates if not (stall_from <= u < stall_from + timedelta(hours=5))]
    evals = [START + timedelta(weeks=3, hours=h) for h in range(2 * 7 * 24)]
    verdicts = backtest_freshness(updates, evals)
    alerts = [v.ts for v in verdicts if v.anomaly]
    assert alerts, "the 5 hour stall must alert"
    assert all(stall_from < t <= stall_from + timedelta(hours=5) for t in alerts)
    assert alerts[0] <= stall_from + timedelta(hours=2)
    sunday = next(v for v in verdicts if v.ts.weekday() == 6 and v.ts.hour == 12)
    assert sunday.lag_seconds is not None and sunday.lag_seconds > 30 * 3600 and not sunday.anomaly


def test_freshness_learns_first_and_max_age_applies_anyway() -> None:
    updates = [START + timedelta(hours=h) for h in range(3)]
    evals = [START + timedelta(hours=h, minutes=30) for h in range(10)]
    learning = backtest_freshness(updates, evals)
    assert all(v.expected_max_lag is None and not v.anomaly for v in learning)
    limited = backtest_freshness(updates, evals, max_age=timedelta(hours=4))
    assert [v.anomaly for v in limited] == [
        v.lag_seconds is not None and v.lag_seconds > 4 * 3600 for v in limited
    ]
    assert any(v.anomaly for v in limited)


def test_freshness_uses_only_updates_up_to_each_evaluation() -> None:
    updates = hourly_weekday_updates(3)
    evals = [START + timedelta(weeks=2, hours=h) for h in range(48)]
    full = backtest_freshness(updates, evals)
    cut = evals[24]
    partial = backtest_freshness([u for u in updates if u <= cut], evals[:25])
    assert full[:25] == partial


# --------------------------------------------------------------------------- the command


def write_csv(path: Path, header: str, lines: list[str]) -> Path:
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


def test_volume_command_round_trip(tmp_path: Path) -> None:
    values = noisy_daily_rhythm(15)
    values[-5] = 5.0
    rows = [f"{ts.isoformat().replace('+00:00', '')},{v}" for ts, v in hourly(values)]
    src = write_csv(tmp_path / "series.csv", "timestamp,value", rows)
    out = tmp_path / "verdicts.csv"
    result = CliRunner().invoke(backtest, ["--check", "volume", "--input", str(src), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert f"{len(values)} rows" in result.output
    with out.open() as f:
        parsed = list(csv.DictReader(f))
    assert list(parsed[0]) == ["timestamp", "value", "expected", "lower", "upper", "score", "anomaly"]
    assert len(parsed) == len(values)
    expected = backtest_volume(hourly(values), None)
    for row, verdict in zip(parsed, expected, strict=True):
        assert datetime.fromisoformat(row["timestamp"]) == verdict.ts
        assert row["anomaly"] == str(int(verdict.anomaly))
        assert (row["expected"] == "") == (verdict.expected is None)
    assert parsed[-5]["anomaly"] == "1"
    assert parsed[0]["expected"] == ""


def test_freshness_command_writes_one_row_per_evaluation(tmp_path: Path) -> None:
    updates = [START + timedelta(hours=h) for h in range(48)]
    src = write_csv(tmp_path / "updates.csv", "timestamp", [u.isoformat() for u in updates])
    result = CliRunner().invoke(
        backtest, ["--check", "freshness", "--input", str(src), "--eval-every", "30m", "--max-age", "3h"]
    )
    assert result.exit_code == 0, result.output
    body = [line for line in result.stdout.splitlines() if line]
    assert body[0] == "timestamp,lag_seconds,expected_max_lag,score,anomaly"
    assert (
        len(body) - 1 == 2 * 47 + 1
    )  # every 30 minutes, from 30 minutes after the first update to 30 after the last
    first = next(csv.DictReader(io.StringIO("\n".join(body))))
    assert float(first["lag_seconds"]) == 1800 and first["expected_max_lag"] == "10800"


def test_bad_csv_names_the_line(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "bad.csv", "timestamp,value", ["2026-01-01T00:00:00,1", "yesterday,2"])
    result = CliRunner().invoke(backtest, ["--check", "volume", "--input", str(src)])
    assert result.exit_code == 2
    assert f"{src}:3" in result.output and "ISO 8601" in result.output


def test_missing_column_and_unsorted_rows_are_explained(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "cols.csv", "time,count", ["2026-01-01T00:00:00,1"])
    result = CliRunner().invoke(backtest, ["--check", "volume", "--input", str(src)])
    assert result.exit_code == 2 and "timestamp, value" in result.output
    src = write_csv(
        tmp_path / "order.csv", "timestamp,value", ["2026-01-01T01:00:00,1", "2026-01-01T00:00:00,2"]
    )
    result = CliRunner().invoke(backtest, ["--check", "volume", "--input", str(src)])
    assert result.exit_code == 2 and ":3:" in result.output and "sort the file" in result.output
    src = write_csv(tmp_path / "value.csv", "timestamp,value", ["2026-01-01T00:00:00,many"])
    result = CliRunner().invoke(backtest, ["--check", "volume", "--input", str(src)])
    assert result.exit_code == 2 and "'many' is not a number" in result.output


def test_bad_period_is_a_usage_error(tmp_path: Path) -> None:
    src = write_csv(tmp_path / "s.csv", "timestamp,value", ["2026-01-01T00:00:00,1"])
    result = CliRunner().invoke(backtest, ["--check", "volume", "--input", str(src), "--period", "often"])
    assert result.exit_code == 2 and "not a duration" in result.output
