"""Judge one snapshot of one source: a finding for every configured check, the new points of every
numeric series, and the schemas learned on first sight.

Series written and read (CheckKey.metric):
- volume:    `rows_per_period` (one point per complete period, at the period's start) when the
             check has a timestamp column, else `row_count` (the table total, per run)
- freshness: `last_modified` (epoch seconds of max(column), per run; what detection learns from)
             and `lag_seconds` (per run; for display), the finding is keyed `lag_seconds`
- column:    `null_rate`, `distinct_count`, `mean`, `min`, `max` and one per quantile (`p50` ...)
- sql:       the check's name (its `actual`, when numeric)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from driftguard.config import (
    ColumnCheck,
    Config,
    DetectionOverrides,
    DetectionSettings,
    FreshnessCheck,
    SchemaCheck,
    Source,
    SqlCheck,
    TableConfig,
    VolumeCheck,
)
from driftguard.detect.base import Evaluation, HistoryReader, SchemaBaselineReader
from driftguard.detect.explain import explanation, learning_reason, number, series_reason
from driftguard.detect.freshness import CadenceStrategy, describe_seconds
from driftguard.detect.schema import diff_columns, expected_schema
from driftguard.detect.seasonal import MAX_TRAINING_POINTS, GrowthStrategy, SeasonalStrategy
from driftguard.detect.stats import benjamini_hochberg, normal_sf
from driftguard.detect.strategy import Judgement, Strategy
from driftguard.model import (
    CheckKey,
    CheckKind,
    ColumnProfile,
    Explanation,
    Finding,
    FindingStatus,
    MetricPoint,
    PointLabel,
    SchemaBaseline,
    Severity,
    Snapshot,
    TableHistory,
    TableSnapshot,
)

ROWS_PER_PERIOD = "rows_per_period"
ROW_COUNT = "row_count"
LAST_MODIFIED = "last_modified"
LAG_SECONDS = "lag_seconds"
SCHEMA = "schema"
_MAX_FRESHNESS_POINTS = 20000


@dataclass
class _Judged:
    """A finding and the points it judged (labelled ANOMALY if the finding ends up ANOMALY)."""

    finding: Finding
    points: list[MetricPoint] = field(default_factory=list)  # labelled by the finding's final status
    judged_earlier: list[MetricPoint] = field(default_factory=list)  # already labelled by their own judgement
    p_value: float | None = None  # set for column metrics judged by a baseline (FDR control)
    settings: DetectionSettings | None = None


def _status_finding(
    key: CheckKey, at: datetime, status: FindingStatus, severity: Severity, reason: str
) -> Finding:
    return Finding(key=key, ts=at, status=status, severity=severity, explanation=Explanation(reason=reason))


def _history_limit(settings: DetectionSettings, period: timedelta, cap: int = MAX_TRAINING_POINTS) -> int:
    runs = int(settings.training_window / period) if period.total_seconds() > 0 else cap
    return max(settings.min_points, min(cap, runs + 1))


class _Evaluator:
    def __init__(
        self,
        config: Config,
        source: Source,
        snapshot: Snapshot,
        history: HistoryReader,
        schema_baseline: SchemaBaselineReader,
    ) -> None:
        self.config = config
        self.source = source
        self.snapshot = snapshot
        self.at = snapshot.scheduled_time
        self.history = history
        self.schema_baseline = schema_baseline
        self.run_period = config.schedule_of(source).period
        self.judged: list[_Judged] = []
        self.baselines: list[SchemaBaseline] = []

    def key(self, table: str, check: CheckKind, metric: str, column: str | None = None) -> CheckKey:
        return CheckKey(source=self.source.name, table=table, check=check, metric=metric, column=column)

    def settings(self, overrides: DetectionOverrides) -> DetectionSettings:
        return self.config.detection_for(self.source, overrides)

    # ------------------------------------------------------------------ series judgement

    def judge_series(
        self,
        key: CheckKey,
        strategy: Strategy,
        at: datetime,
        value: float,
        settings: DetectionSettings,
        period: timedelta,
        earlier: list[MetricPoint] | None = None,
        cap: int = MAX_TRAINING_POINTS,
    ) -> Judgement:
        past = self.history(key, at, _history_limit(settings, period, cap)) + (earlier or [])
        return strategy.judge(past, at, value, settings)

    def add(self, judged: _Judged) -> None:
        self.judged.append(judged)

    # ------------------------------------------------------------------ tables

    def table(self, cfg: TableConfig) -> None:
        snap = self.snapshot.table(cfg.name)
        if snap is None or snap.error:
            what = (
                f"collecting {cfg.name} failed ({snap.error_kind or 'error'}): {snap.error}"
                if snap is not None
                else f"{cfg.name} was not collected in this run"
            )
            for key, severity in check_keys(self.source.name, cfg):
                self.add(_Judged(_status_finding(key, self.at, FindingStatus.ERROR, severity, what)))
            return
        checks = cfg.checks
        if checks.freshness:
            self.freshness(cfg.name, checks.freshness, snap)
        if checks.volume:
            self.volume(cfg.name, checks.volume, snap)
        if checks.schema_:
            self.schema(cfg.name, checks.schema_, snap)
        for column in checks.columns:
            self.columns(cfg.name, column, snap)

    def freshness(self, table: str, check: FreshnessCheck, snap: TableSnapshot) -> None:
        key = self.key(table, CheckKind.FRESHNESS, LAG_SECONDS)
        if snap.last_modified is None:
            reason = f"{table} has no rows with a {check.column} value, so its freshness cannot be judged"
            self.add(_Judged(_status_finding(key, self.at, FindingStatus.NO_DATA, check.severity, reason)))
            return
        settings = self.settings(check.detection)
        modified = snap.last_modified.timestamp()
        judgement = self.judge_series(
            self.key(table, CheckKind.FRESHNESS, LAST_MODIFIED),
            CadenceStrategy(),
            self.at,
            modified,
            settings,
            self.run_period,
            cap=_MAX_FRESHNESS_POINTS,
        )
        judgement = _apply_max_age(judgement, check)
        subject = f"{table} was last updated {describe_seconds(judgement.observed)} ago"
        reason = freshness_reason(subject, judgement)
        finding = Finding(
            key=key,
            ts=self.at,
            status=judgement.status,
            severity=check.severity,
            explanation=explanation(judgement, reason, {"last_modified": snap.last_modified.isoformat()}),
        )
        points = [
            MetricPoint(key=self.key(table, CheckKind.FRESHNESS, LAST_MODIFIED), ts=self.at, value=modified),
            MetricPoint(key=key, ts=self.at, value=judgement.observed),
        ]
        self.add(_Judged(finding, points))

    def volume(self, table: str, check: VolumeCheck, snap: TableSnapshot) -> None:
        settings = self.settings(check.detection)
        period = check.effective_period
        if period is None:
            key = self.key(table, CheckKind.VOLUME, ROW_COUNT)
            if snap.row_count is None:
                reason = f"the row count of {table} was not collected"
                self.add(
                    _Judged(_status_finding(key, self.at, FindingStatus.NO_DATA, check.severity, reason))
                )
                return
            judgement = self.judge_series(
                key, GrowthStrategy(), self.at, snap.row_count, settings, self.run_period
            )
            point = MetricPoint(key=key, ts=self.at, value=snap.row_count)
            if snap.row_count == 0 and not judgement.anomaly:
                reason = f"{table} is empty: there is nothing to judge yet"
                empty = _status_finding(key, self.at, FindingStatus.NO_DATA, check.severity, reason)
                self.add(_Judged(empty, [point]))
                return
            self.add(
                self.volume_finding(
                    key, check, judgement, [point], f"{table} has {number(snap.row_count)} rows"
                )
            )
            return
        key = self.key(table, CheckKind.VOLUME, ROWS_PER_PERIOD)
        if not snap.period_counts:
            reason = (
                f"{table} has no complete {describe_seconds(period.total_seconds())} period with rows yet"
            )
            self.add(_Judged(_status_finding(key, self.at, FindingStatus.NO_DATA, check.severity, reason)))
            return
        known = self.history(key, self.at, 1)
        newest = known[-1].ts if known else None
        fresh = [
            pc for pc in snap.period_counts if newest is None or pc.start > newest
        ] or snap.period_counts[-1:]
        strategy = SeasonalStrategy(period=period)
        earlier: list[MetricPoint] = []
        for i, pc in enumerate(fresh):
            judgement = self.judge_series(key, strategy, pc.start, pc.count, settings, period, earlier)
            end = pc.start + period
            subject = (
                f"{table} received {number(pc.count)} rows in the {describe_seconds(period.total_seconds())} "
                f"to {end:%a %H:%M}"
            )
            judged = self.volume_finding(
                key, check, judgement, [MetricPoint(key=key, ts=pc.start, value=pc.count)], subject
            )
            if i == len(fresh) - 1:
                judged.judged_earlier = earlier
                self.add(judged)
            else:
                earlier.append(_labelled(judged.points[0], judged.finding.status))

    def volume_finding(
        self, key: CheckKey, check: VolumeCheck, judgement: Judgement, points: list[MetricPoint], subject: str
    ) -> _Judged:
        judgement = _apply_row_limits(judgement, check)
        severity = check.severity
        if judgement.anomaly and judgement.observed == 0 and (judgement.expected or 0) >= 1:
            severity = Severity.CRITICAL  # a normally non-zero series dropped to nothing
        finding = Finding(
            key=key,
            ts=self.at,
            status=judgement.status,
            severity=severity,
            explanation=explanation(judgement, series_reason(subject, judgement)),
        )
        return _Judged(finding, points)

    def schema(self, table: str, check: SchemaCheck, snap: TableSnapshot) -> None:
        key = self.key(table, CheckKind.SCHEMA, SCHEMA)
        severity = check.severity
        if snap.columns is None:
            reason = f"the columns of {table} were not collected"
            self.add(_Judged(_status_finding(key, self.at, FindingStatus.NO_DATA, Severity.WARNING, reason)))
            return
        accepted = self.schema_baseline(table)
        expected = expected_schema(check.expected, accepted)
        if expected is None:
            self.baselines.append(
                SchemaBaseline(
                    source=self.source.name,
                    table=table,
                    columns=snap.columns,
                    accepted_at=self.at,
                    accepted_by="learned",
                )
            )
            reason = f"first sight of {table}: its {len(snap.columns)} columns are now the accepted schema"
            explained = Explanation(observed=len(snap.columns), method="schema diff", reason=reason)
            self.add(
                _Judged(
                    Finding(
                        key=key,
                        ts=self.at,
                        status=FindingStatus.OK,
                        severity=Severity.INFO,
                        explanation=explained,
                    )
                )
            )
            return
        changes = diff_columns(snap.columns, expected, severity)
        against = "the configured schema" if check.expected is not None else "the accepted schema"
        details: dict[str, object] = {"changes": [c.as_dict() for c in changes], "compared_with": against}
        if check.expected is None and accepted is not None:
            details["accepted_at"] = accepted.accepted_at.isoformat()
            details["accepted_by"] = accepted.accepted_by
        if changes:
            worst = max((c.severity for c in changes), key=lambda s: s.rank)
            listed = "; ".join(c.describe() for c in changes)
            reason = f"{table} no longer matches {against}: {listed}. Fix the table or accept the new schema."
            status = FindingStatus.ANOMALY
        else:
            worst = Severity.INFO
            reason = f"{table} matches {against} ({len(snap.columns)} columns)"
            status = FindingStatus.OK
        explained = Explanation(
            observed=len(snap.columns),
            expected=len(expected),
            score=float(len(changes)),
            method="schema diff",
            reason=reason,
            details=details,
        )
        self.add(_Judged(Finding(key=key, ts=self.at, status=status, severity=worst, explanation=explained)))

    def columns(self, table: str, check: ColumnCheck, snap: TableSnapshot) -> None:
        settings = self.settings(check.detection)
        profile = next((p for p in snap.profiles or [] if p.column == check.name), None)
        for metric in check.metrics:
            for name, value in _metric_values(metric, profile):
                key = self.key(table, CheckKind.COLUMN, name, check.name)
                subject = f"{table}.{check.name} {name.replace('_', ' ')}"
                if profile is None or profile.row_count == 0 or value is None:
                    why = "has no rows to profile" if profile is not None else "was not profiled"
                    reason = f"{subject} cannot be judged: the column {why}"
                    self.add(
                        _Judged(_status_finding(key, self.at, FindingStatus.NO_DATA, check.severity, reason))
                    )
                    continue
                strategy = SeasonalStrategy(counts=name == "distinct_count", non_negative=name != "mean")
                judgement = self.judge_series(key, strategy, self.at, value, settings, self.run_period)
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
                    ts=self.at,
                    status=judgement.status,
                    severity=check.severity,
                    explanation=explanation(judgement, series_reason(subject, judgement)),
                )
                point = MetricPoint(key=key, ts=self.at, value=value)
                self.add(_Judged(finding, [point], p_value=p_value, settings=settings))

    # ------------------------------------------------------------------ custom SQL

    def sql(self, check: SqlCheck) -> None:
        key = self.key(check.table or "", CheckKind.SQL, check.name)
        error = self.snapshot.sql_errors.get(check.name)
        result = next((r for r in self.snapshot.sql_checks if r.name == check.name), None)
        if error is not None or result is None:
            reason = (
                f"custom check {check.name} failed: {error}"
                if error
                else f"custom check {check.name} returned no result"
            )
            self.add(_Judged(_status_finding(key, self.at, FindingStatus.ERROR, check.severity, reason)))
            return
        if result.status not in ("ALERT", "OK"):
            reason = (
                f"custom check {check.name} returned status {result.status!r}; it must return ALERT or OK"
            )
            self.add(_Judged(_status_finding(key, self.at, FindingStatus.ERROR, check.severity, reason)))
            return
        alert = result.status == "ALERT"
        what = check.description or check.name
        measured = ""
        if result.actual is not None:
            measured = f": actual {number(result.actual)}"
            if result.threshold is not None:
                measured += f" against threshold {number(result.threshold)}"
        reason = f"custom check {what} {'alerted' if alert else 'passed'}{measured}"
        if result.truncated:
            reason += f" (judged on the first {result.rows} rows only: raise max_rows or narrow the query)"
        explained = Explanation(
            observed=result.actual,
            expected=result.threshold,
            score=1.0 if alert else 0.0,
            method="custom SQL",
            reason=reason,
            details={"rows": result.rows, "truncated": result.truncated, "context": result.context},
        )
        status = FindingStatus.ANOMALY if alert else FindingStatus.OK
        finding = Finding(key=key, ts=self.at, status=status, severity=check.severity, explanation=explained)
        points = []
        if isinstance(result.actual, int | float):
            points.append(MetricPoint(key=key, ts=self.at, value=float(result.actual)))
        self.add(_Judged(finding, points))

    # ------------------------------------------------------------------ false alarms across columns

    def control_false_discoveries(self) -> None:
        """Benjamini-Hochberg across this run's column metrics: with many columns, a few would
        cross any fixed threshold by chance; only deviations that survive the correction alert."""
        tested = [
            (j, j.p_value, j.settings)
            for j in self.judged
            if j.p_value is not None and j.settings is not None
        ]
        if len(tested) < 2:
            return
        q = _false_alarm_rate(self.config.detection_for(self.source))
        # weighted BH: a check whose own sensitivity allows more false alarms weighs its p-value down
        weighted = [min(1.0, p * q / _false_alarm_rate(s)) for _, p, s in tested]
        keep = benjamini_hochberg(weighted, q)
        for (judged, _, _), significant in zip(tested, keep, strict=True):
            f = judged.finding
            if f.status == FindingStatus.ANOMALY and not significant:
                note = (
                    f" Not alerting: not significant once false alarms are controlled across {len(tested)} "
                    "column metrics (Benjamini-Hochberg)."
                )
                ex = f.explanation.model_copy(update={"reason": f.explanation.reason + note})
                judged.finding = f.model_copy(update={"status": FindingStatus.OK, "explanation": ex})

    def result(self) -> Evaluation:
        points = [p for j in self.judged for p in j.judged_earlier]
        points += [_labelled(p, j.finding.status) for j in self.judged for p in j.points]
        return Evaluation(
            findings=[j.finding for j in self.judged], points=points, schema_baselines=self.baselines
        )


def _labelled(point: MetricPoint, status: FindingStatus) -> MetricPoint:
    """Points of an anomalous finding stay out of future training."""
    return point.model_copy(
        update={"label": PointLabel.ANOMALY if status == FindingStatus.ANOMALY else PointLabel.NONE}
    )


def _false_alarm_rate(settings: DetectionSettings) -> float:
    return 2 * normal_sf(settings.sensitivity)


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


def _apply_row_limits(judgement: Judgement, check: VolumeCheck) -> Judgement:
    value = judgement.observed
    if check.min_rows is not None and value < check.min_rows:
        return _breach(judgement, "drop", "below", "min_rows", check.min_rows)
    if check.max_rows is not None and value > check.max_rows:
        return _breach(judgement, "spike", "above", "max_rows", check.max_rows)
    return judgement


def _breach(judgement: Judgement, direction: str, where: str, name: str, limit: int) -> Judgement:
    return replace(
        judgement,
        status=FindingStatus.ANOMALY,
        method="hard limit",
        direction=direction,
        lower=float(limit) if direction == "drop" else judgement.lower,
        upper=float(limit) if direction == "spike" else judgement.upper,
        note=f"{where} the configured {name} of {number(limit)}",
    )


def _apply_max_age(judgement: Judgement, check: FreshnessCheck) -> Judgement:
    if check.max_age is None or judgement.observed <= check.max_age.total_seconds():
        return judgement
    limit = check.max_age.total_seconds()
    return replace(
        judgement,
        status=FindingStatus.ANOMALY,
        method="hard limit",
        upper=limit,
        score=max(judgement.score, judgement.observed / limit),
        direction="stale",
        note=f"older than the configured max_age of {describe_seconds(limit)}",
    )


def freshness_reason(subject: str, judgement: Judgement) -> str:
    if judgement.status == FindingStatus.LEARNING and judgement.method != "hard limit":
        return learning_reason(subject, judgement, "arrivals")
    if judgement.method == "hard limit":
        return f"{subject}, {judgement.note}."
    allowed = describe_seconds(judgement.upper or 0.0)
    when = f" at {judgement.slot}" if judgement.slot else ""
    if judgement.anomaly:
        return (
            f"{subject}; its {judgement.method} allows at most {allowed}{when} "
            f"(usually {describe_seconds(judgement.expected or 0.0)}): check the job that loads it."
        )
    return f"{subject}, within the {allowed} its {judgement.method} allows{when}."


def check_keys(source: str, cfg: TableConfig) -> list[tuple[CheckKey, Severity]]:
    """The key (and severity) of every finding a table's configured checks produce."""

    def key(check: CheckKind, metric: str, column: str | None = None) -> CheckKey:
        return CheckKey(source=source, table=cfg.name, check=check, metric=metric, column=column)

    checks = cfg.checks
    keys: list[tuple[CheckKey, Severity]] = []
    if checks.freshness:
        keys.append((key(CheckKind.FRESHNESS, LAG_SECONDS), checks.freshness.severity))
    if checks.volume:
        metric = ROWS_PER_PERIOD if checks.volume.column else ROW_COUNT
        keys.append((key(CheckKind.VOLUME, metric), checks.volume.severity))
    if checks.schema_:
        keys.append((key(CheckKind.SCHEMA, SCHEMA), Severity.WARNING))
    for column in checks.columns:
        for metric in column.metrics:
            names = ["quantiles"] if metric == "quantiles" else [metric]
            keys.extend((key(CheckKind.COLUMN, name, column.name), column.severity) for name in names)
    return keys


def evaluate_snapshot(
    config: Config,
    source: Source,
    snapshot: Snapshot,
    history: HistoryReader,
    schema_baseline: SchemaBaselineReader,
) -> Evaluation:
    """Findings for every configured check of `source`, judged against history before the snapshot."""
    evaluator = _Evaluator(config, source, snapshot, history, schema_baseline)
    for table in source.tables:
        evaluator.table(table)
    for check in source.sql_checks:
        evaluator.sql(check)
    evaluator.control_false_discoveries()
    return evaluator.result()


def points_from_history(
    source: Source, table_config: TableConfig, history: TableHistory, until: datetime
) -> list[MetricPoint]:
    """A table's own past as points of the series detection reads, so it can judge on day one."""
    checks = table_config.checks
    points: list[MetricPoint] = []

    def key(check: CheckKind, metric: str) -> CheckKey:
        return CheckKey(source=source.name, table=table_config.name, check=check, metric=metric)

    if checks.volume and checks.volume.column:
        vkey = key(CheckKind.VOLUME, ROWS_PER_PERIOD)
        points += [
            MetricPoint(key=vkey, ts=pc.start, value=pc.count)
            for pc in history.period_counts
            if pc.start < until
        ]
    if checks.freshness:
        fkey = key(CheckKind.FRESHNESS, LAST_MODIFIED)
        points += [
            MetricPoint(key=fkey, ts=t, value=t.timestamp()) for t in history.update_times if t < until
        ]
    return points
