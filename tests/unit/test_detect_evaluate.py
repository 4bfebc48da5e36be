"""evaluate_snapshot: the engine's entry point to detection."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftguard.config import Config, parse_config
from driftguard.detect import (
    Evaluation,
    SchemaBaselineReader,
    check_keys,
    evaluate_snapshot,
    points_from_history,
)
from driftguard.model import (
    CheckKey,
    CheckKind,
    ColumnInfo,
    ColumnProfile,
    Finding,
    FindingStatus,
    MetricPoint,
    PeriodCount,
    PointLabel,
    SchemaBaseline,
    Severity,
    Snapshot,
    SqlCheckResult,
    TableHistory,
    TableSnapshot,
    trusted_point,
)

AT = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday: the judged period is 09:00-10:00

CONFIG = """
sources:
  - name: shop
    kind: sqlite
    connection: {path: shop.db}
    schedule: {rate: 1h}
    tables:
      - name: orders
        checks:
          freshness: {column: created_at, max_age: 6h}
          volume: {column: created_at, period: 1h, max_rows: 100000}
          schema: true
          columns:
            - name: amount
              metrics: [null_rate, mean]
              max_null_rate: 0.5
      - name: customers
        checks:
          volume: true
    sql_checks:
      - name: negative-totals
        sql: select 'ALERT' as status
        table: orders
        severity: critical
"""


@pytest.fixture
def config() -> Config:
    return parse_config(CONFIG)


class FakeHistory:
    """The store's `series` as a dict, honouring (before, limit) like the real one."""

    def __init__(self) -> None:
        self.points: dict[CheckKey, list[MetricPoint]] = defaultdict(list)
        self.reads: list[tuple[CheckKey, int]] = []

    def add(self, key: CheckKey, ts: datetime, value: float, label: PointLabel = PointLabel.NONE) -> None:
        self.points[key].append(MetricPoint(key=key, ts=ts, value=value, label=label))

    def __call__(self, key: CheckKey, before: datetime, limit: int) -> list[MetricPoint]:
        self.reads.append((key, limit))
        return sorted((p for p in self.points[key] if p.ts < before), key=lambda p: p.ts)[-limit:]


def key(table: str, check: CheckKind, metric: str, column: str | None = None) -> CheckKey:
    return CheckKey(source="shop", table=table, check=check, metric=metric, column=column)


COLUMNS = [
    ColumnInfo(name="id", type="integer", raw_type="INTEGER", nullable=False, position=1),
    ColumnInfo(name="amount", type="numeric", raw_type="NUMERIC(10,2)", nullable=True, position=2),
    ColumnInfo(name="created_at", type="timestamp", raw_type="TIMESTAMP", nullable=False, position=3),
]


def orders_snapshot(
    count: int = 100,
    *,
    last_modified: datetime | None = AT - timedelta(minutes=10),
    columns: list[ColumnInfo] | None = None,
    null_count: int = 0,
    mean: float = 50.0,
) -> TableSnapshot:
    return TableSnapshot(
        table="orders",
        last_modified=last_modified,
        period_counts=[PeriodCount(start=AT - timedelta(hours=1), count=count)],
        columns=columns if columns is not None else COLUMNS,
        profiles=[ColumnProfile(column="amount", row_count=count, null_count=null_count, mean=mean)],
    )


def snapshot(
    *tables: TableSnapshot, sql: list[SqlCheckResult] | None = None, sql_errors: dict[str, str] | None = None
) -> Snapshot:
    return Snapshot(
        source="shop",
        scheduled_time=AT,
        collected_at=AT,
        tables=list(tables),
        sql_checks=sql if sql is not None else [SqlCheckResult(name="negative-totals", status="OK")],
        sql_errors=sql_errors or {},
    )


def customers(rows: int = 1000) -> TableSnapshot:
    return TableSnapshot(table="customers", row_count=rows, columns=COLUMNS)


def no_baseline(table: str) -> SchemaBaseline | None:
    return None


def evaluate(
    config: Config, snap: Snapshot, history: FakeHistory, baseline: SchemaBaselineReader = no_baseline
) -> Evaluation:
    source = config.source("shop")
    return evaluate_snapshot(config, source, snap, history, baseline)


def by_key(evaluation: Evaluation) -> dict[CheckKey, Finding]:
    return {f.key: f for f in evaluation.findings}


def seed_hourly_orders(history: FakeHistory, weeks: int = 4, level: float = 100.0) -> None:
    """Hourly counts with a mild daily rhythm and small deterministic noise."""
    start = AT - timedelta(weeks=weeks) - timedelta(hours=1)
    t = start
    i = 0
    while t < AT - timedelta(hours=1):
        value = level * (1.0 + 0.3 * (9 <= t.hour < 18)) + (i * 7 % 11) - 5
        history.add(key("orders", CheckKind.VOLUME, "rows_per_period"), t, value)
        t += timedelta(hours=1)
        i += 1


def test_every_configured_check_gets_exactly_one_finding(config: Config) -> None:
    history = FakeHistory()
    ev = evaluate(config, snapshot(orders_snapshot(), customers()), history)
    keys = [f.key for f in ev.findings]
    assert len(keys) == len(set(keys))
    expected = {k for t in config.source("shop").tables for k, _ in check_keys("shop", t)}
    expected.add(CheckKey(source="shop", table="orders", check=CheckKind.SQL, metric="negative-totals"))
    assert set(keys) == expected


def test_cold_start_is_learning_and_says_how_many_points_are_needed(config: Config) -> None:
    ev = evaluate(config, snapshot(orders_snapshot(), customers()), FakeHistory())
    f = by_key(ev)[key("orders", CheckKind.VOLUME, "rows_per_period")]
    assert f.status == FindingStatus.LEARNING
    assert f.explanation.needed_points == 14
    assert "14 more points" in f.explanation.reason


def test_first_sight_learns_the_schema(config: Config) -> None:
    ev = evaluate(config, snapshot(orders_snapshot(), customers()), FakeHistory())
    learned = {b.table: b for b in ev.schema_baselines}
    assert set(learned) == {"orders"}  # customers has the default checks: volume and schema
    assert learned["orders"].accepted_by == "learned"
    assert learned["orders"].columns == COLUMNS
    assert by_key(ev)[key("orders", CheckKind.SCHEMA, "schema")].status == FindingStatus.OK


def test_schema_change_against_the_accepted_baseline(config: Config) -> None:
    accepted = SchemaBaseline(
        source="shop", table="orders", columns=COLUMNS, accepted_at=AT, accepted_by="ana"
    )
    changed = [COLUMNS[0], COLUMNS[2].model_copy(update={"position": 2})]  # amount removed
    ev = evaluate(
        config,
        snapshot(orders_snapshot(columns=changed), customers()),
        FakeHistory(),
        lambda t: accepted if t == "orders" else None,
    )
    f = by_key(ev)[key("orders", CheckKind.SCHEMA, "schema")]
    assert f.status == FindingStatus.ANOMALY
    assert f.severity == Severity.CRITICAL
    assert [c["change"] for c in f.explanation.details["changes"]] == ["removed"]
    assert "column amount removed" in f.explanation.reason
    assert not [b for b in ev.schema_baselines if b.table == "orders"]


def test_sql_alert_and_error(config: Config) -> None:
    alert = SqlCheckResult(
        name="negative-totals", status="ALERT", actual=3, threshold=0, context=[{"id": 7}], rows=1
    )
    ev = evaluate(config, snapshot(orders_snapshot(), customers(), sql=[alert]), FakeHistory())
    f = by_key(ev)[CheckKey(source="shop", table="orders", check=CheckKind.SQL, metric="negative-totals")]
    assert f.status == FindingStatus.ANOMALY
    assert f.severity == Severity.CRITICAL
    assert f.explanation.observed == 3 and f.explanation.expected == 0
    assert f.explanation.details["context"] == [{"id": 7}]

    ev = evaluate(
        config,
        snapshot(orders_snapshot(), customers(), sql=[], sql_errors={"negative-totals": "syntax"}),
        FakeHistory(),
    )
    f = by_key(ev)[CheckKey(source="shop", table="orders", check=CheckKind.SQL, metric="negative-totals")]
    assert f.status == FindingStatus.ERROR
    assert "syntax" in f.explanation.reason


def test_table_error_gives_one_error_finding_per_check(config: Config) -> None:
    broken = TableSnapshot(
        table="orders", error="permission denied for table orders", error_kind="permission"
    )
    ev = evaluate(config, snapshot(broken, customers()), FakeHistory())
    orders = [f for f in ev.findings if f.key.table == "orders" and f.key.check != CheckKind.SQL]
    assert {f.key for f in orders} == {k for k, _ in check_keys("shop", config.source("shop").tables[0])}
    assert all(f.status == FindingStatus.ERROR for f in orders)
    assert all("permission denied" in f.explanation.reason for f in orders)
    assert not [p for p in ev.points if p.key.table == "orders"]


def test_null_timestamp_is_no_data(config: Config) -> None:
    ev = evaluate(config, snapshot(orders_snapshot(last_modified=None), customers()), FakeHistory())
    assert by_key(ev)[key("orders", CheckKind.FRESHNESS, "lag_seconds")].status == FindingStatus.NO_DATA


def test_hard_limits_apply_while_learning(config: Config) -> None:
    snap = orders_snapshot(count=200_000, last_modified=AT - timedelta(hours=7), null_count=150_000)
    ev = by_key(evaluate(config, snapshot(snap, customers()), FakeHistory()))
    volume = ev[key("orders", CheckKind.VOLUME, "rows_per_period")]
    assert volume.status == FindingStatus.ANOMALY and volume.explanation.method == "hard limit"
    assert "max_rows" in volume.explanation.reason
    fresh = ev[key("orders", CheckKind.FRESHNESS, "lag_seconds")]
    assert fresh.status == FindingStatus.ANOMALY and "max_age" in fresh.explanation.reason
    nulls = ev[key("orders", CheckKind.COLUMN, "null_rate", "amount")]
    assert nulls.status == FindingStatus.ANOMALY and nulls.explanation.upper == 0.5


def test_volume_drop_against_a_learned_baseline_is_explained_and_labelled(config: Config) -> None:
    history = FakeHistory()
    seed_hourly_orders(history)
    ev = evaluate(config, snapshot(orders_snapshot(count=3), customers()), history)
    f = by_key(ev)[key("orders", CheckKind.VOLUME, "rows_per_period")]
    assert f.status == FindingStatus.ANOMALY
    ex = f.explanation
    assert ex.direction == "drop" and ex.lower is not None and ex.lower > 3
    assert ex.expected is not None and 120 < float(ex.expected) < 140  # 09:00 is business hours
    assert ex.training_points > 600 and ex.score > 4
    assert "orders received 3 rows" in ex.reason and "a drop of 9" in ex.reason
    point = next(p for p in ev.points if p.key == f.key)
    assert point.label == PointLabel.ANOMALY and point.ts == AT - timedelta(hours=1)


def test_volume_in_range_is_ok_and_unlabelled(config: Config) -> None:
    history = FakeHistory()
    seed_hourly_orders(history)
    ev = evaluate(config, snapshot(orders_snapshot(count=131), customers()), history)
    f = by_key(ev)[key("orders", CheckKind.VOLUME, "rows_per_period")]
    assert f.status == FindingStatus.OK
    assert next(p for p in ev.points if p.key == f.key).label == PointLabel.NONE


def test_drop_to_zero_is_critical(config: Config) -> None:
    history = FakeHistory()
    seed_hourly_orders(history)
    f = by_key(evaluate(config, snapshot(orders_snapshot(count=0), customers()), history))[
        key("orders", CheckKind.VOLUME, "rows_per_period")
    ]
    assert f.status == FindingStatus.ANOMALY and f.severity == Severity.CRITICAL


def test_history_reads_are_bounded_by_the_training_window(config: Config) -> None:
    history = FakeHistory()
    evaluate(config, snapshot(orders_snapshot(), customers()), history)
    limits = dict(history.reads)
    assert limits[key("orders", CheckKind.VOLUME, "rows_per_period")] == 56 * 24 + 1
    assert limits[key("customers", CheckKind.VOLUME, "row_count")] == 56 * 24 + 1


def test_table_total_judges_growth(config: Config) -> None:
    history = FakeHistory()
    total_key = key("customers", CheckKind.VOLUME, "row_count")
    for i in range(30):
        history.add(total_key, AT - timedelta(hours=30 - i), 1000 + 10 * i + (i % 3))
    ok = by_key(evaluate(config, snapshot(orders_snapshot(), customers(1301)), history))[total_key]
    assert ok.status == FindingStatus.OK
    deleted = by_key(evaluate(config, snapshot(orders_snapshot(), customers(600)), history))[total_key]
    assert deleted.status == FindingStatus.ANOMALY and deleted.explanation.direction == "drop"
    assert deleted.explanation.expected is not None and 1300 < float(deleted.explanation.expected) < 1320


def test_points_from_history_seed_day_one_detection(config: Config) -> None:
    source = config.source("shop")
    orders = source.tables[0]
    start = AT - timedelta(days=21)
    counts = [PeriodCount(start=start + timedelta(hours=h), count=100) for h in range(21 * 24)]
    updates = [start + timedelta(hours=h, minutes=50) for h in range(21 * 24)]
    seeded = points_from_history(
        source,
        orders,
        TableHistory(table="orders", period_seconds=3600, period_counts=counts, update_times=updates),
        AT,
    )
    history = FakeHistory()
    for p in seeded:
        history.points[p.key].append(p)
    ev = by_key(evaluate(config, snapshot(orders_snapshot(count=100), customers()), history))
    assert ev[key("orders", CheckKind.VOLUME, "rows_per_period")].status == FindingStatus.OK
    fresh = ev[key("orders", CheckKind.FRESHNESS, "lag_seconds")]
    assert fresh.status == FindingStatus.OK
    assert fresh.explanation.upper is not None and 3600 < fresh.explanation.upper < 2 * 3600


def test_new_points_cover_every_numeric_series(config: Config) -> None:
    ev = evaluate(config, snapshot(orders_snapshot(), customers()), FakeHistory())
    metrics = {(p.key.table, p.key.metric) for p in ev.points}
    assert metrics == {
        ("orders", "rows_per_period"),
        ("orders", "last_modified"),
        ("orders", "lag_seconds"),
        ("orders", "null_rate"),
        ("orders", "mean"),
        ("customers", "row_count"),
    }
    lag = next(p for p in ev.points if p.key.metric == "lag_seconds")
    assert lag.value == 600 and lag.ts == AT


def test_an_empty_table_is_no_data_until_it_was_ever_filled(config: Config) -> None:
    total_key = key("customers", CheckKind.VOLUME, "row_count")
    ev = evaluate(config, snapshot(orders_snapshot(), customers(0)), FakeHistory())
    f = by_key(ev)[total_key]
    assert f.status == FindingStatus.NO_DATA and "empty" in f.explanation.reason
    assert [p.value for p in ev.points if p.key == total_key] == [0]
    history = FakeHistory()
    for i in range(30):
        history.add(total_key, AT - timedelta(hours=30 - i), 1000 + 10 * i)
    emptied = by_key(evaluate(config, snapshot(orders_snapshot(), customers(0)), history))[total_key]
    assert emptied.status == FindingStatus.ANOMALY and emptied.severity == Severity.CRITICAL


def test_freshness_alerts_when_the_hourly_cadence_breaks_and_explains_it(config: Config) -> None:
    history = FakeHistory()
    modified = key("orders", CheckKind.FRESHNESS, "last_modified")
    start = AT - timedelta(days=21)
    for h in range(21 * 24 - 3):  # hourly updates at :50, the last three hours missing
        t = start + timedelta(hours=h, minutes=50)
        history.add(modified, t, t.timestamp())
    last = start + timedelta(hours=21 * 24 - 4, minutes=50)
    ev = by_key(evaluate(config, snapshot(orders_snapshot(last_modified=last), customers()), history))
    f = ev[key("orders", CheckKind.FRESHNESS, "lag_seconds")]
    assert f.status == FindingStatus.ANOMALY and f.explanation.method == "weekly arrival cadence"
    assert f.explanation.observed == pytest.approx(3 * 3600 + 600)
    assert f.explanation.upper is not None and 3600 < f.explanation.upper < 2 * 3600
    assert (
        f.explanation.seasonal_slot == "Mon 10:00" and "check the job that loads it" in f.explanation.reason
    )


@settings(max_examples=200, deadline=None)
@given(
    ts=st.datetimes(
        min_value=datetime(1971, 1, 2),
        max_value=datetime(2200, 1, 1),
        timezones=st.sampled_from(
            [None, UTC, timezone(timedelta(hours=-7)), timezone(timedelta(hours=5, minutes=30))]
        ),
    ),
    value=st.one_of(st.integers(min_value=0, max_value=10**12), st.floats(allow_nan=False)),
    label=st.sampled_from(list(PointLabel)),
)
def test_trusted_points_are_the_points_validation_builds(
    ts: datetime, value: float, label: PointLabel
) -> None:
    """Backfills build points without validating them (`trusted_point`): each must equal, dump and
    hash as the validated point, its time made UTC and its number a float."""
    key = CheckKey(source="s", table="t", check=CheckKind.VOLUME, metric="rows_per_period")
    validated = MetricPoint(key=key, ts=ts, value=value, label=label)
    trusted = trusted_point(key, ts, value, label)

    assert trusted == validated
    assert hash(trusted) == hash(validated)
    assert trusted.model_dump() == validated.model_dump()
    assert type(trusted.value) is float and trusted.ts.tzinfo is UTC
