"""Judge one snapshot of one source: a finding for every configured check, the new points of every
numeric series, and the schemas learned on first sight.

Each check kind judges itself (`driftguard.detect.kinds`, one module per kind, where its series are
described); this module runs them over a source's tables and checks, turns a table that could not
be collected into an ERROR per configured check, and controls false discoveries across column
metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from driftguard.config import Config, DetectionSettings, Source, TableConfig
from driftguard.detect.base import Evaluation, HistoryReader, SchemaBaselineReader, ValuesReader
from driftguard.detect.kinds import SOURCE_KINDS, TABLE_KINDS
from driftguard.detect.kinds.base import KeyOf, Run, labelled
from driftguard.detect.stats import benjamini_hochberg, normal_sf
from driftguard.model import CheckKey, CheckKind, FindingStatus, MetricPoint, Severity, Snapshot, TableHistory


def _key_of(source: str, table: str) -> KeyOf:
    def key(check: CheckKind, metric: str, column: str | None) -> CheckKey:
        return CheckKey(source=source, table=table, check=check, metric=metric, column=column)

    return key


def check_keys(source: str, cfg: TableConfig) -> list[tuple[CheckKey, Severity]]:
    """The key (and severity) of every finding a table's configured checks produce."""
    key_of = _key_of(source, cfg.name)
    return [
        pair
        for kind in TABLE_KINDS
        for check in kind.configured(cfg.checks)
        for pair in kind.keys(key_of, check)
    ]


def _judge_table(run: Run, cfg: TableConfig) -> None:
    snap = run.table(cfg.name)
    if snap is None or snap.error:
        what = (
            f"collecting {cfg.name} failed ({snap.error_kind or 'error'}): {snap.error}"
            if snap is not None
            else f"{cfg.name} was not collected in this run"
        )
        for key, severity in check_keys(run.source.name, cfg):
            run.status(key, FindingStatus.ERROR, severity, what)
        return
    for kind in TABLE_KINDS:
        for check in kind.configured(cfg.checks):
            kind.judge(run, cfg.name, check, snap)


def _control_false_discoveries(run: Run) -> None:
    """Benjamini-Hochberg across this run's column metrics: with many columns, a few would
    cross any fixed threshold by chance; only deviations that survive the correction alert."""
    tested = [
        (j, j.p_value, j.settings) for j in run.judged if j.p_value is not None and j.settings is not None
    ]
    if len(tested) < 2:
        return
    q = _false_alarm_rate(run.config.detection_for(run.source))
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


def _false_alarm_rate(settings: DetectionSettings) -> float:
    return 2 * normal_sf(settings.sensitivity)


def evaluate_snapshot(
    config: Config,
    source: Source,
    snapshot: Snapshot,
    history: HistoryReader,
    schema_baseline: SchemaBaselineReader,
    values: ValuesReader | None = None,
    fits: Mapping[str, Mapping[str, Any]] | None = None,
) -> Evaluation:
    """Findings for every configured check of `source`, judged against history before the snapshot.
    `values`: the same history as columns where the store can read it so (default: from `history`).
    `fits`: the fits kept with the source's series (by fingerprint); the evaluation's `fits` are the
    ones this judgement made anew."""
    run = Run(config, source, snapshot, history, schema_baseline, values, fits)
    for table in source.tables:
        _judge_table(run, table)
    for kind in SOURCE_KINDS:
        for check in kind.configured(source):
            kind.judge(run, check)
    _control_false_discoveries(run)
    points = [p for j in run.judged for p in j.judged_earlier]
    points += [labelled(p, j.finding.status) for j in run.judged for p in j.points]
    return Evaluation(
        findings=[j.finding for j in run.judged],
        points=points,
        schema_baselines=run.baselines,
        fits=run.new_fits,
    )


def points_from_history(
    source: Source, table_config: TableConfig, history: TableHistory, until: datetime
) -> list[MetricPoint]:
    """A table's own past as points of the series detection reads, so it can judge on day one."""
    key_of = _key_of(source.name, table_config.name)
    return [
        point
        for kind in TABLE_KINDS
        for check in kind.configured(table_config.checks)
        for point in kind.history_points(key_of, check, history, until)
    ]
