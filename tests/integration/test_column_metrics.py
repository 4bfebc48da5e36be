"""Per-period column metrics on real servers: each metric is its own statement over the latest
complete period of the table's timestamp column (backfilled per period on a first check), or over a
stated sample without one; a metric that times out is that metric's ERROR alone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from driftguard.collect import Collector
from driftguard.collect.column_metrics import SAMPLE_ROWS
from driftguard.collect.connect import dispose_engines
from driftguard.config import Config, Source
from driftguard.engine import Engine
from driftguard.model import CheckKind, FindingStatus
from driftguard.store.sqlite import SqliteStore

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fresh_engine_cache() -> Iterator[None]:
    yield
    dispose_engines()


@pytest.fixture(params=["postgres", "mysql"])
def db(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue("pg" if request.param == "postgres" else "mysql")


def qualified(db: Any, name: str) -> str:
    return f'"{db.schema}".{name}' if db.schema else name


def source(db: Any, tables: list[dict[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = db.source_yaml()
    data["tables"] = [{"schema": db.schema, **t} if db.schema else t for t in tables]
    data["schedule"] = {"rate": "1h"}
    return data


def create_orders(db: Any, hours: int, *, null_every: int = 0, last_hour_nulls: int = 0) -> sa.Table:
    """Twelve orders an hour for `hours` hours before NOW; in the last hour `last_hour_nulls` of
    them have no amount."""
    table = sa.Table(
        "orders",
        sa.MetaData(schema=db.schema),
        sa.Column("created_at", sa.DateTime),
        sa.Column("amount", sa.Float),
    )
    table.create(db.engine)
    rows = []
    for h in range(hours, 0, -1):
        for n in range(12):
            at = NOW - timedelta(hours=h) + timedelta(minutes=5 * n)
            last = h == 1 and n < last_hour_nulls
            rows.append({"created_at": at.replace(tzinfo=None), "amount": None if last else float(n + h % 7)})
    with db.engine.begin() as conn:
        conn.execute(table.insert(), rows)
    return table


def engine_for(config: dict[str, Any], tmp_path: Path) -> tuple[Engine, SqliteStore]:
    store = SqliteStore(tmp_path / "state.db")
    return Engine(Config.model_validate({"sources": [config]}), store), store


def test_a_bad_load_in_the_latest_hour_is_not_diluted_and_day_one_is_judged(db: Any, tmp_path: Path) -> None:
    create_orders(db, hours=14 * 24, last_hour_nulls=6)
    checks = {
        "volume": {"column": "created_at", "period": "1h"},
        "columns": [{"name": "amount", "metrics": ["null_rate", "mean"]}],
    }
    engine, store = engine_for(source(db, [{"name": "orders", "checks": checks}]), tmp_path)
    try:
        outcome = engine.check("src", NOW)
    finally:
        store.close()
    found = {(f.key.check, f.key.metric): f for f in outcome.findings}
    null_rate = found[(CheckKind.COLUMN, "null_rate")]
    # half the latest hour's amounts are missing: over the whole table that would be 0.15%
    assert null_rate.explanation.observed == pytest.approx(0.5)
    assert null_rate.status == FindingStatus.ANOMALY, null_rate.explanation.reason
    assert "orders.amount null rate in the 1h to Tue 12:00" in null_rate.explanation.reason
    assert null_rate.explanation.details["period_start"] == (NOW - timedelta(hours=1)).isoformat()
    # backfilled from the table's own periods: the mean is judged on day one, not learning
    assert found[(CheckKind.COLUMN, "mean")].status != FindingStatus.LEARNING


def test_a_metric_past_its_timeout_is_that_metrics_error_only(db: Any, tmp_path: Path) -> None:
    create_orders(db, hours=2)
    if db.kind == "postgres":
        slow, view, orders = f"{db.schema}.slow", qualified(db, "orders_view"), qualified(db, "orders")
        db.execute(
            f"create function {slow}(x float) returns float language plpgsql stable "
            "as $$ begin perform pg_sleep(0.3); return x; end $$",
            f"create view {view} as select created_at, amount, {slow}(amount) as slow from {orders}",  # noqa: S608
        )
    else:
        db.execute(
            "create function slow(x double) returns double deterministic no sql "
            "begin do sleep(0.3); return x; end",
            "create algorithm = merge view orders_view as select created_at, amount, slow(amount) as slow "
            "from orders",
        )
    checks = {
        "freshness": {"column": "created_at"},
        "volume": {"column": "created_at", "period": "1h"},
        "columns": [
            {"name": "slow", "metrics": ["null_rate"]},
            {"name": "amount", "metrics": ["null_rate", "mean"]},
        ],
    }
    config = {**source(db, [{"name": "orders_view", "checks": checks}]), "statement_timeout": "1s"}
    engine, store = engine_for(config, tmp_path)
    try:
        outcome = engine.check("src", NOW)
    finally:
        store.close()
    statuses = {(f.key.metric, f.key.column): f for f in outcome.findings}
    slow = statuses[("null_rate", "slow")]
    assert slow.status == FindingStatus.ERROR and "timeout is 1s" in slow.explanation.reason
    others = [f for k, f in statuses.items() if k != ("null_rate", "slow")]
    assert {k for k in statuses if k != ("null_rate", "slow")} == {
        ("availability", None),
        ("lag_seconds", None),
        ("rows_per_period", None),
        ("null_rate", "amount"),
        ("mean", "amount"),
    }
    assert all(f.status != FindingStatus.ERROR for f in others), [f.explanation.reason for f in others]
    # the backfill's one GROUP BY timed out on the slow column: each metric on its own, and the
    # amount metrics still learned from the table's own hours
    src = Source.model_validate(config)
    with Collector(src, statement_timeout=timedelta(seconds=1)) as collector:
        history = collector.backfill(src.tables[0], since=NOW - timedelta(hours=3), until=NOW)
    assert {(p.column, p.period_start) for p in history.profiles} == {
        ("amount", NOW - timedelta(hours=2)),
        ("amount", NOW - timedelta(hours=1)),
    }
    assert all(p.mean is not None and p.row_count == 12 for p in history.profiles)


def test_without_a_timestamp_column_metrics_read_a_stated_sample(db: Any) -> None:
    rows = 3 * SAMPLE_ROWS if db.kind == "postgres" else SAMPLE_ROWS + 500
    db.execute(f"create table {qualified(db, 'facts')} (amount float)")
    if db.kind == "postgres":
        db.execute(
            f"insert into {qualified(db, 'facts')} select g % 100 from generate_series(1, {rows}) g",  # noqa: S608
            f"analyze {qualified(db, 'facts')}",
        )
    else:
        db.execute(
            "set session max_recursive_iterations = 1000000",
            "insert into facts with recursive n(i) as (select 1 union all select i + 1 from n "  # noqa: S608
            f"where i < {rows}) select mod(i, 100) from n",
        )
    src = Source.model_validate(
        {**source(db, [{"name": "facts", "checks": {"columns": [{"name": "amount", "metrics": ["mean"]}]}}])}
    )
    with Collector(src, statement_timeout=timedelta(seconds=30)) as collector:
        (table,) = collector.collect(NOW).tables
    assert table.error is None, table.error
    (profile,) = table.profiles or []
    assert profile.period_start is None
    assert profile.sample_rows == profile.row_count
    if db.kind == "postgres":  # TABLESAMPLE SYSTEM reads whole pages: about a third of the table
        assert SAMPLE_ROWS // 2 < profile.row_count < 2 * SAMPLE_ROWS
    else:  # no TABLESAMPLE: the first SAMPLE_ROWS rows
        assert profile.row_count == SAMPLE_ROWS
