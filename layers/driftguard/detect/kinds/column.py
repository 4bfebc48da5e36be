"""Column metrics: null rate, distinct count, mean, min, max and quantiles of one column, each its
own series (`null_rate`, `distinct_count`, `mean`, `min`, `max`, `p50` ...) judged per run; the
evaluator controls false discoveries across them (Benjamini-Hochberg)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from driftguard.config import ColumnCheck, TableChecks
from driftguard.detect.explain import explanation, number, series_reason
from driftguard.detect.kinds.base import Judged, KeyOf, Run, TableCheckKind
from driftguard.detect.seasonal import SeasonalStrategy
from driftguard.model import (
    CheckKey,
    CheckKind,
    ColumnProfile,
    Finding,
    FindingStatus,
    MetricPoint,
    Severity,
    TableSnapshot,
)


class Column(TableCheckKind[ColumnCheck]):
    kind = CheckKind.COLUMN
    config_key = "columns"
    has_series = True

    def configured(self, checks: TableChecks) -> Sequence[ColumnCheck]:
        return checks.columns

    def keys(self, key_of: KeyOf, check: ColumnCheck) -> list[tuple[CheckKey, Severity]]:
        return [(key_of(self.kind, metric, check.name), check.severity) for metric in check.metrics]

    def judge(self, run: Run, table: str, check: ColumnCheck, snap: TableSnapshot) -> None:
        settings = run.settings(check.detection)
        profile = next((p for p in snap.profiles or [] if p.column == check.name), None)
        for metric in check.metrics:
            for name, value in _metric_values(metric, profile):
                key = run.key(table, self.kind, name, check.name)
                subject = f"{table}.{check.name} {name.replace('_', ' ')}"
                if profile is None or profile.row_count == 0 or value is None:
                    why = "has no rows to profile" if profile is not None else "was not profiled"
                    run.status(
                        key,
                        FindingStatus.NO_DATA,
                        check.severity,
                        f"{subject} cannot be judged: the column {why}",
                    )
                    continue
                strategy = SeasonalStrategy(counts=name == "distinct_count", non_negative=name != "mean")
                judgement = run.judge_series(key, strategy, run.at, value, settings, run.run_period)
                p_value: float | None = (
                    judgement.p_value if judgement.status != FindingStatus.LEARNING else None
                )
                if name == "null_rate" and check.max_null_rate is not None and value > check.max_null_rate:
                    judgement = replace(
                        judgement,
                        status=FindingStatus.ANOMALY,
                        method="hard limit",
                        upper=check.max_null_rate,
                        note=f"above the configured max_null_rate of {number(check.max_null_rate)}",
                    )
                    p_value = None  # a hard limit is not a test: no false-alarm control applies
                finding = Finding(
                    key=key,
                    ts=run.at,
                    status=judgement.status,
                    severity=check.severity,
                    explanation=explanation(judgement, series_reason(subject, judgement)),
                )
                point = MetricPoint(key=key, ts=run.at, value=value)
                run.add(Judged(finding, [point], p_value=p_value, settings=settings))


def _metric_values(metric: str, profile: ColumnProfile | None) -> list[tuple[str, float | None]]:
    if metric == "quantiles":
        return [
            (name, value) for name, value in sorted(((profile.quantiles if profile else None) or {}).items())
        ]
    if profile is None:
        return [(metric, None)]
    raw = {
        "null_rate": profile.null_rate,
        "distinct_count": profile.distinct_count,
        "mean": profile.mean,
        "min": profile.min,
        "max": profile.max,
    }[metric]
    return [(metric, float(raw) if isinstance(raw, int | float) else None)]
