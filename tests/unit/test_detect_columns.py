"""Column distribution drift and false-alarm control across many column metrics."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from driftguard.config import parse_config
from driftguard.detect import Evaluation, evaluate_snapshot
from driftguard.detect.stats import benjamini_hochberg
from driftguard.model import (
    CheckKey,
    CheckKind,
    ColumnProfile,
    FindingStatus,
    MetricPoint,
    PointLabel,
    Snapshot,
    TableSnapshot,
)

AT = datetime(2026, 3, 2, 12, tzinfo=UTC)
COLUMNS = [f"c{i}" for i in range(12)]
CONFIG = parse_config(
    """
sources:
  - name: s
    kind: sqlite
    connection: {path: x.db}
    schedule: {rate: 1d}
    detection: {min_relative_change: 0}
    tables:
      - name: t
        checks:
          columns:
"""
    + "".join(f"            - {{name: {c}, metrics: [mean, quantiles]}}\n" for c in COLUMNS)
)


def history_of(means: dict[str, list[float]]) -> dict[CheckKey, list[MetricPoint]]:
    points: dict[CheckKey, list[MetricPoint]] = defaultdict(list)
    for column, values in means.items():
        key = CheckKey(source="s", table="t", check=CheckKind.COLUMN, metric="mean", column=column)
        n = len(values)
        points[key] = [
            MetricPoint(key=key, ts=AT - timedelta(days=n - i), value=v) for i, v in enumerate(values)
        ]
    return points


def evaluate(means_now: dict[str, float], past: dict[CheckKey, list[MetricPoint]]) -> Evaluation:
    profiles = [
        ColumnProfile(column=c, row_count=1000, null_count=0, mean=m, quantiles={"p50": 1.0})
        for c, m in means_now.items()
    ]
    snap = Snapshot(
        source="s", scheduled_time=AT, collected_at=AT, tables=[TableSnapshot(table="t", profiles=profiles)]
    )
    return evaluate_snapshot(
        CONFIG, CONFIG.source("s"), snap, lambda k, before, limit: past.get(k, [])[-limit:], lambda t: None
    )


def test_benjamini_hochberg_rejects_by_rank() -> None:
    p = [0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216]
    assert benjamini_hochberg(p, 0.05) == [True, True] + [False] * 8
    assert benjamini_hochberg(p, 0.2) == [True] * 7 + [False] * 3


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=30), st.floats(0.001, 0.5))
def test_benjamini_hochberg_is_monotone_and_never_rejects_a_larger_p_alone(p: list[float], q: float) -> None:
    rejected = benjamini_hochberg(p, q)
    kept = [x for x, r in zip(p, rejected, strict=True) if not r]
    taken = [x for x, r in zip(p, rejected, strict=True) if r]
    assert not taken or not kept or max(taken) <= min(kept)
    assert all(r for x, r in zip(p, rejected, strict=True) if x <= q / len(p))  # Bonferroni implies BH


def test_false_alarms_across_many_columns_stay_rare() -> None:
    """Pure noise in 12 columns over many runs: the run-wide correction keeps alerts rare."""
    rng = random.Random(2)
    alerts = 0
    runs = 30
    for _ in range(runs):
        means = {c: [100 + rng.gauss(0, 1) for _ in range(40)] for c in COLUMNS}
        now = {c: 100 + rng.gauss(0, 1) for c in COLUMNS}
        ev = evaluate(now, history_of(means))
        alerts += sum(f.status == FindingStatus.ANOMALY for f in ev.findings)
    assert alerts <= 1


def test_a_real_shift_survives_the_correction_and_its_point_is_labelled() -> None:
    rng = random.Random(4)
    means = {c: [100 + rng.gauss(0, 1) for _ in range(40)] for c in COLUMNS}
    now = {c: 100 + rng.gauss(0, 1) for c in COLUMNS}
    now["c3"] = 160.0
    ev = evaluate(now, history_of(means))
    anomalies = [f for f in ev.findings if f.status == FindingStatus.ANOMALY]
    assert [f.key.column for f in anomalies] == ["c3"]
    assert anomalies[0].explanation.direction == "spike"
    labels = {p.key.column: p.label for p in ev.points if p.key.metric == "mean"}
    assert labels["c3"] == PointLabel.ANOMALY and labels["c4"] == PointLabel.NONE


def test_a_marginal_deviation_among_many_is_demoted_with_a_reason() -> None:
    """Just beyond its band as a single test, but not significant once 12 metrics were tested."""
    rng = random.Random(9)
    means = {c: [100 + rng.gauss(0, 1) for _ in range(60)] for c in COLUMNS}
    past = history_of(means)
    now = {c: 100.0 for c in COLUMNS}
    probe = next(f for f in evaluate(now, past).findings if f.key.column == "c0" and f.key.metric == "mean")
    expected, upper = float(probe.explanation.expected or 0), float(probe.explanation.upper or 0)
    now["c0"] = upper + 0.05 * (upper - expected)  # 4.2 scale units: p ~ 3e-5, beyond the 6e-5 of one test
    c0 = next(f for f in evaluate(now, past).findings if f.key.column == "c0" and f.key.metric == "mean")
    assert c0.explanation.score > 4
    assert c0.status == FindingStatus.OK
    assert "Benjamini-Hochberg" in c0.explanation.reason
    alone = evaluate({"c0": now["c0"]}, past)  # the same value tested alone does alert
    assert [f.status for f in alone.findings if f.key.metric == "mean" and f.key.column == "c0"] == [
        FindingStatus.ANOMALY
    ]


def test_quantiles_are_separate_series() -> None:
    ev = evaluate({c: 100.0 for c in COLUMNS}, {})
    metrics = {f.key.metric for f in ev.findings}
    assert metrics == {"mean", "p50"}
    assert all(f.status == FindingStatus.LEARNING for f in ev.findings)
