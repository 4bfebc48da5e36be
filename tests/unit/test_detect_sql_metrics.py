"""Learned SQL metrics judged by the registry's sql_metric kind: the volume detectors and
explanations, segments as their own series, `ts` rows as their own backfill."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from driftguard.config import Config, parse_config
from driftguard.detect import Evaluation, evaluate_snapshot, kinds
from driftguard.errors import ConfigError
from driftguard.model import (
    CheckKey,
    CheckKind,
    Finding,
    FindingStatus,
    MetricPoint,
    PointLabel,
    Severity,
    Snapshot,
    SqlMetricResult,
    SqlMetricRow,
)

AT = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)

CONFIG = """
sources:
  - name: shop
    kind: sqlite
    connection: {path: shop.db}
    schedule: {rate: 1h}
    sql_metrics:
      - name: revenue
        sql: select sum(amount) as value from orders
        table: orders
        severity: critical
      - name: signups
        sql: select country as segment, count(*) as value from users group by 1
      - name: hourly
        description: hourly paid orders
        sql: select hour as ts, paid as value from paid_orders_per_hour
        period: 1h
"""


@pytest.fixture
def config() -> Config:
    return parse_config(CONFIG)


class FakeHistory:
    def __init__(self) -> None:
        self.points: dict[CheckKey, list[MetricPoint]] = defaultdict(list)

    def add(self, key: CheckKey, ts: datetime, value: float) -> None:
        self.points[key].append(MetricPoint(key=key, ts=ts, value=value))

    def __call__(self, key: CheckKey, before: datetime, limit: int) -> list[MetricPoint]:
        return sorted((p for p in self.points[key] if p.ts < before), key=lambda p: p.ts)[-limit:]


def key(name: str, segment: str | None = None, table: str = "") -> CheckKey:
    return CheckKey(source="shop", table=table, check=CheckKind.SQL_METRIC, metric=name, segment=segment)


REVENUE = key("revenue", table="orders")


def snapshot(*results: SqlMetricResult, errors: dict[str, str] | None = None, at: datetime = AT) -> Snapshot:
    return Snapshot(
        source="shop", scheduled_time=at, collected_at=at, sql_metrics=list(results), sql_errors=errors or {}
    )


def evaluate(config: Config, snap: Snapshot, history: FakeHistory) -> Evaluation:
    return evaluate_snapshot(config, config.source("shop"), snap, history, lambda _: None)


def findings(ev: Evaluation) -> dict[CheckKey, Finding]:
    return {f.key: f for f in ev.findings}


def seed(history: FakeHistory, k: CheckKey, level: float, *, weeks: int = 3, until: datetime = AT) -> None:
    t, i = until - timedelta(weeks=weeks), 0
    while t < until:
        history.add(k, t, level + (i * 7 % 11) - 5)
        t += timedelta(hours=1)
        i += 1


def test_a_metric_without_history_is_learning_and_its_point_is_kept(config: Config) -> None:
    ev = evaluate(
        config, snapshot(SqlMetricResult(name="revenue", rows=[SqlMetricRow(value=1200.0)])), FakeHistory()
    )
    f = findings(ev)[REVENUE]
    assert f.status == FindingStatus.LEARNING
    assert "revenue was 1,200" in f.explanation.reason
    assert [(p.key, p.ts, p.value) for p in ev.points if p.key == REVENUE] == [(REVENUE, AT, 1200.0)]


def test_a_metric_far_from_its_learned_level_is_an_anomaly_explained_like_volume(config: Config) -> None:
    history = FakeHistory()
    seed(history, REVENUE, 1000.0)
    ok = findings(
        evaluate(
            config, snapshot(SqlMetricResult(name="revenue", rows=[SqlMetricRow(value=1001.0)])), history
        )
    )
    assert ok[REVENUE].status == FindingStatus.OK
    ev = evaluate(config, snapshot(SqlMetricResult(name="revenue", rows=[SqlMetricRow(value=0.0)])), history)
    dropped = findings(ev)[REVENUE]
    assert dropped.status == FindingStatus.ANOMALY
    assert dropped.severity == Severity.CRITICAL
    assert dropped.explanation.expected is not None and dropped.explanation.expected > 900
    assert dropped.explanation.reason.startswith("revenue was 0")
    assert [p.label for p in ev.points if p.key == REVENUE] == [PointLabel.ANOMALY]


def test_each_segment_is_its_own_series_and_alert_identity(config: Config) -> None:
    history = FakeHistory()
    seed(history, key("signups", "DE"), 50.0)
    seed(history, key("signups", "FR"), 50.0)
    rows = [SqlMetricRow(segment="DE", value=51.0), SqlMetricRow(segment="FR", value=500.0)]
    by_key = findings(evaluate(config, snapshot(SqlMetricResult(name="signups", rows=rows)), history))
    assert by_key[key("signups", "DE")].status == FindingStatus.OK
    assert by_key[key("signups", "FR")].status == FindingStatus.ANOMALY
    assert "signups for FR was 500" in by_key[key("signups", "FR")].explanation.reason
    assert by_key[key("signups")].status == FindingStatus.OK  # the metric as a whole ran
    assert key("signups", "FR").label == "shop sql_metric/signups{FR}"


def test_a_failed_query_is_that_metrics_error_only(config: Config) -> None:
    snap = snapshot(
        SqlMetricResult(name="revenue", rows=[SqlMetricRow(value=1.0)]),
        errors={"signups": "source shop, sql metric signups: no such table: users"},
    )
    by_key = findings(evaluate(config, snap, FakeHistory()))
    assert by_key[key("signups")].status == FindingStatus.ERROR
    assert "no such table: users" in by_key[key("signups")].explanation.reason
    assert by_key[REVENUE].status == FindingStatus.LEARNING


def test_several_rows_of_one_segment_without_ts_are_refused_with_what_to_do(config: Config) -> None:
    rows = [SqlMetricRow(value=1.0), SqlMetricRow(value=2.0)]
    f = findings(evaluate(config, snapshot(SqlMetricResult(name="revenue", rows=rows)), FakeHistory()))[
        REVENUE
    ]
    assert f.status == FindingStatus.ERROR
    assert "return one row per segment, or a ts column" in f.explanation.reason


def hourly_rows(start: datetime, end: datetime, level: float) -> list[SqlMetricRow]:
    rows, t, i = [], start, 0
    while t <= end:
        rows.append(SqlMetricRow(ts=t, value=level + (i * 7 % 11) - 5))
        t += timedelta(hours=1)
        i += 1
    return rows


def test_ts_rows_are_the_metrics_own_backfill_on_first_sight(config: Config) -> None:
    rows = hourly_rows(AT - timedelta(weeks=3), AT - timedelta(hours=1), 100.0)
    rows[-1] = SqlMetricRow(ts=rows[-1].ts, value=400.0)
    ev = evaluate(config, snapshot(SqlMetricResult(name="hourly", rows=rows)), FakeHistory())
    f = findings(ev)[key("hourly")]
    assert f.status == FindingStatus.ANOMALY  # judged against the rows before it, not learning
    assert "hourly paid orders was 400 at Mon 02 Mar 09:00" in f.explanation.reason
    stored = [p for p in ev.points if p.key == key("hourly")]
    assert len(stored) == len(rows)  # the history rows are stored as the series
    assert stored[-1].label == PointLabel.ANOMALY and {p.label for p in stored[:-1]} == {PointLabel.NONE}


def test_later_runs_judge_only_rows_newer_than_the_series(config: Config) -> None:
    history = FakeHistory()
    for row in hourly_rows(AT - timedelta(weeks=3), AT - timedelta(hours=3), 100.0):
        assert row.ts is not None and row.value is not None
        history.add(key("hourly"), row.ts, row.value)
    rows = hourly_rows(AT - timedelta(hours=5), AT - timedelta(hours=1), 100.0)
    ev = evaluate(config, snapshot(SqlMetricResult(name="hourly", rows=rows)), history)
    new = sorted(p.ts for p in ev.points if p.key == key("hourly"))
    assert new == [AT - timedelta(hours=2), AT - timedelta(hours=1)]
    assert findings(ev)[key("hourly")].status == FindingStatus.OK


def test_the_registry_lists_the_kind_once_for_the_engine_and_the_cli() -> None:
    assert kinds.has_series(CheckKind.SQL_METRIC)
    assert CheckKind.SQL_METRIC.value in kinds.learned_kinds()
    assert not kinds.has_series(CheckKind.SQL) and not kinds.has_series(CheckKind.SOURCE)
    assert [k.config_key for k in kinds.SOURCE_KINDS] == ["sql_checks", "sql_metrics"]
    assert [k.config_key for k in kinds.TABLE_KINDS] == [
        "freshness",
        "volume",
        "segment_by",
        "schema",
        "columns",
    ]


def test_metric_and_check_names_share_one_namespace() -> None:
    with pytest.raises(ConfigError, match="used twice"):
        parse_config(
            "sources:\n  - name: s\n    kind: sqlite\n    connection: {path: a.db}\n"
            "    sql_checks: [{name: x, sql: select 1}]\n"
            "    sql_metrics: [{name: x, sql: select 1 as value}]\n"
        )
