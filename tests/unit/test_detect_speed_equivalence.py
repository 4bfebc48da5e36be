"""Detection verdicts are pinned: speed work on detect/ must not change a single one.

The golden file was generated from the code before the speed work (run this module with
REGENERATE_DETECT_GOLDEN=1 to regenerate it, only on purpose). Every Verdict field is compared:
expected, lower, upper and score to 9 significant digits, anomaly exactly.
"""

from __future__ import annotations

import json
import math
import os
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from driftguard.config import DetectionSettings
from driftguard.detect.backtest import backtest_freshness, backtest_volume
from driftguard.detect.seasonal import SeasonalStrategy
from driftguard.model import CheckKey, CheckKind, MetricPoint, PointLabel

GOLDEN = Path(__file__).parent / "data" / "detect_golden.json"
START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def _rows(values: list[float], step: timedelta) -> list[tuple[datetime, float]]:
    return [(START + i * step, v) for i, v in enumerate(values)]


def _seasonal_hourly(n: int, seed: int, level: float = 400.0) -> list[float]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        weekend = 0.4 if (i // 24) % 7 >= 5 else 1.0
        mean = level * weekend * (1 + 0.6 * math.sin(2 * math.pi * (i % 24 - 8) / 24))
        out.append(float(max(0, round(rng.gauss(mean, 0.08 * mean + 2)))))
    return out


def _small_counts(n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        mean = 3.0 + 2.0 * math.sin(2 * math.pi * (i % 24) / 24)
        # Poisson by inversion (deterministic with the seeded generator)
        k, p, u = 0, math.exp(-mean), rng.random()
        cdf = p
        while u > cdf:
            k += 1
            p *= mean / k
            cdf += p
        out.append(float(k))
    # a burst and an 8-hour outage: pure Poisson noise alone should (and does) raise nothing
    out[n * 3 // 4] = 30.0
    out[n * 7 // 8 : n * 7 // 8 + 8] = [0.0] * 8
    return out


def _level_shift(n: int, seed: int) -> list[float]:
    values = _seasonal_hourly(n, seed, level=200.0)
    return [v * 1.8 if i >= n * 2 // 3 else v for i, v in enumerate(values)]


def _spikes_and_outage(n: int, seed: int) -> list[float]:
    values = _seasonal_hourly(n, seed, level=250.0)
    rng = random.Random(seed + 1)
    for i in rng.sample(range(200, n), 6):
        values[i] *= rng.choice([0.1, 3.0, 5.0])
    for i in range(n - 40, n - 30):
        values[i] = 0.0
    return values


def _daily(n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [
        float(round(rng.gauss(5000 * (0.5 if i % 7 >= 5 else 1.0) * (1 + 0.002 * i), 150))) for i in range(n)
    ]


def _volume_cases() -> dict[str, tuple[list[tuple[datetime, float]], timedelta | None, DetectionSettings]]:
    default = DetectionSettings()
    return {
        "seasonal_hourly": (_rows(_seasonal_hourly(700, 1), HOUR), HOUR, default),
        "seasonal_hourly_detected_period": (_rows(_seasonal_hourly(300, 2), HOUR), None, default),
        "small_counts": (_rows(_small_counts(400, 3), HOUR), HOUR, default),
        "level_shift": (_rows(_level_shift(500, 4), HOUR), HOUR, default),
        "spikes_and_outage": (_rows(_spikes_and_outage(450, 5), HOUR), HOUR, default),
        "daily": (_rows(_daily(200, 6), DAY), DAY, default),
        "drop_only_weekly": (
            _rows(_spikes_and_outage(400, 7), HOUR),
            HOUR,
            DetectionSettings(direction="drop", seasonality="weekly", sensitivity=3.0, min_points=24),
        ),
    }


def _freshness_case() -> tuple[list[datetime], list[datetime]]:
    """Hourly loads on weekdays, a few per day at weekends, jittered, with a 9-hour stall."""
    rng = random.Random(8)
    updates = []
    t = START
    end = START + timedelta(days=30)
    while t < end:
        stalled = START + timedelta(days=20, hours=3) <= t < START + timedelta(days=20, hours=12)
        if not stalled and (t.weekday() < 5 or t.hour % 6 == 0):
            updates.append(t + timedelta(minutes=rng.uniform(0, 20)))
        t += HOUR
    evals = [START + timedelta(minutes=30 * i) for i in range(30 * 48)]
    return updates, evals


def _additive_judgements() -> list[dict[str, Any]]:
    """Non-count metrics (additive season, no noise floor), judged directly at a few points,
    with alerted points in the history."""
    key = CheckKey(source="s", table="t", check=CheckKind.COLUMN, metric="mean", column="c")
    rng = random.Random(9)
    history = []
    for i in range(500):
        v = 20.0 + 5 * math.sin(2 * math.pi * (i % 24) / 24) + rng.gauss(0, 0.7) - (8.0 if i > 470 else 0.0)
        label = PointLabel.ANOMALY if i % 97 == 13 else PointLabel.NONE
        history.append(MetricPoint(key=key, ts=START + i * HOUR, value=v, label=label))
    strategy = SeasonalStrategy(counts=False, non_negative=False)
    out = []
    for n in (30, 120, 300, 476, 490, 500):
        at = START + n * HOUR
        for value in (20.0, 12.0, 40.0):
            j = strategy.judge(history[:n], at, value, DetectionSettings())
            out.append(
                {
                    "expected": j.expected,
                    "lower": j.lower,
                    "upper": j.upper,
                    "score": j.score,
                    "anomaly": j.anomaly,
                    "note": j.note,
                }
            )
    return out


def _sig(x: float | None) -> float | None:
    return None if x is None else float(f"{x:.9g}")


def _rounded(row: dict[str, Any]) -> dict[str, Any]:
    return {k: _sig(v) if isinstance(v, float) else v for k, v in row.items()}


def current() -> dict[str, list[dict[str, Any]]]:
    result: dict[str, list[dict[str, Any]]] = {}
    for name, (rows, period, settings) in _volume_cases().items():
        result[name] = [
            _rounded(v.model_dump(include={"expected", "lower", "upper", "score", "anomaly"}))
            for v in backtest_volume(rows, period, settings, exact=True)
        ]
    updates, evals = _freshness_case()
    result["freshness_stall"] = [
        _rounded(v.model_dump(include={"lag_seconds", "expected_max_lag", "score", "anomaly"}))
        for v in backtest_freshness(updates, evals, max_age=timedelta(hours=30))
    ]
    result["additive_direct"] = [_rounded(r) for r in _additive_judgements()]
    return result


def test_verdicts_match_the_golden_file() -> None:
    got = current()
    if os.environ.get("REGENERATE_DETECT_GOLDEN"):
        GOLDEN.write_text(json.dumps(got, indent=0, sort_keys=True) + "\n")
        pytest.skip("golden file regenerated")
    golden = json.loads(GOLDEN.read_text())
    assert set(got) == set(golden)
    for name, rows in golden.items():
        assert len(got[name]) == len(rows), name
        for i, (want, have) in enumerate(zip(rows, got[name], strict=True)):
            assert have == want, f"{name}[{i}]"


def test_the_golden_file_exercises_alerts_and_learning() -> None:
    """The cases must cover anomalies, learning rows and an adopted level shift, or they prove little."""
    golden = json.loads(GOLDEN.read_text())
    for name in ("spikes_and_outage", "level_shift", "small_counts", "freshness_stall", "drop_only_weekly"):
        assert any(r["anomaly"] for r in golden[name]), name
    assert any(r["expected"] is None for r in golden["seasonal_hourly"])
    assert any("level shift" in r["note"] for r in golden["additive_direct"])


def test_kept_fits_alert_where_the_golden_file_does() -> None:
    """The golden file pins full judgements; the replay `driftguard backtest` runs keeps fits between
    plainly normal values (SeasonalStrategy.reuse) and must alert on exactly the same points."""
    golden = json.loads(GOLDEN.read_text())
    for name, (rows, period, settings) in _volume_cases().items():
        kept = [v.anomaly for v in backtest_volume(rows, period, settings)]
        assert kept == [r["anomaly"] for r in golden[name]], name
