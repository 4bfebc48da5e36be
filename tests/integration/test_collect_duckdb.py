"""Collection from a DuckDB file, in process, through duckdb-engine: the same contract as the
server sources (one aggregate query per table, catalog statistics, read-only, timeouts, typed
errors), plus learned SQL metrics read from it.

The fixture writes the file with its own connection and closes it before collecting: DuckDB
lets one process hold a file either read-write or read-only, not both at once.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb  # the dev extra installs it (driftguard[duckdb]): a missing driver fails, never skips
import pytest

from driftguard.collect import Collector
from driftguard.collect.connect import dispose_engines
from driftguard.config import Source
from driftguard.errors import SourceUnavailable
from driftguard.model import Snapshot, TableSnapshot

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
TIMEOUT = timedelta(seconds=5)


@pytest.fixture(autouse=True)
def _fresh_engine_cache() -> Iterator[None]:
    yield
    dispose_engines()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "analytics.duckdb"


def write(path: Path, *statements: str) -> None:
    with duckdb.connect(str(path)) as conn:
        for statement in statements:
            conn.execute(statement)


def create_orders(path: Path, name: str = "orders", rows: int = 30) -> None:
    """`rows` orders, one every 10 minutes back from NOW; every 5th amount NULL."""
    write(
        path,
        f'create table "{name}" (id integer primary key, amount double, created_at timestamp, name varchar)',
        f"""insert into "{name}" select i, case when i % 5 = 0 then null else i::double end,
               timestamp '2026-03-10 12:00:00' - i * interval 10 minute, 'n' || (i % 3)
            from range({rows}) t(i)""",  # noqa: S608 - test data
    )


def source(path: Path, tables: list[dict[str, Any]], **extra: Any) -> Source:
    return Source.model_validate(
        {"name": "lake", "kind": "duckdb", "connection": {"path": str(path)}, "tables": tables, **extra}
    )


def collect(src: Source, *, at: datetime = NOW, timeout: timedelta = TIMEOUT) -> Snapshot:
    with Collector(src, statement_timeout=timeout) as collector:
        return collector.collect(at)


def only_table(snapshot: Snapshot) -> TableSnapshot:
    assert len(snapshot.tables) == 1
    return snapshot.tables[0]


def test_one_aggregate_query_gives_freshness_period_volume_schema_and_profiles(path: Path) -> None:
    create_orders(path)
    checks = {
        "freshness": {"column": "created_at"},
        "volume": {"column": "created_at", "period": "1h"},
        "schema": True,
        "columns": [
            {"name": "amount", "metrics": ["null_rate", "distinct_count", "mean", "min", "max", "quantiles"]},
            {"name": "name", "metrics": ["null_rate", "distinct_count", "min", "max"]},
        ],
    }
    snapshot = collect(source(path, [{"name": "orders", "checks": checks}]), at=NOW + timedelta(minutes=5))
    table = only_table(snapshot)
    assert table.error is None, table.error
    assert table.last_modified == NOW
    assert [(p.start, p.count) for p in table.period_counts or []] == [(NOW - timedelta(hours=1), 6)]
    assert [(c.name, c.type) for c in table.columns or []] == [
        ("id", "integer"),
        ("amount", "float"),
        ("created_at", "timestamp"),
        ("name", "text"),
    ]
    amount, name = table.profiles or []
    amounts = [float(i) for i in range(1, 7) if i % 5]  # the hour [11:00, 12:00): orders 1 ... 6
    assert amount.period_start == NOW - timedelta(hours=1)
    assert (amount.row_count, amount.null_count, amount.distinct_count) == (6, 1, 5)
    assert amount.mean == pytest.approx(sum(amounts) / len(amounts))
    assert (amount.min, amount.max) == (1.0, 6.0)
    assert amount.quantiles == pytest.approx(
        {
            f"p{int(q * 100)}": statistics.quantiles(amounts, n=4, method="inclusive")[i]
            for i, q in enumerate((0.25, 0.5, 0.75))
        }
    )
    assert (name.null_count, name.distinct_count, name.min, name.max) == (0, 3, "n0", "n2")
    assert table.round_trips == 1 + 6 + 4  # freshness+volume, then one statement per column metric


def test_row_count_comes_from_duckdb_estimates_unless_exact_is_asked(path: Path) -> None:
    create_orders(path, rows=500)
    estimated = only_table(collect(source(path, [{"name": "orders", "checks": {"volume": True}}])))
    exact = only_table(collect(source(path, [{"name": "orders", "checks": {"volume": {"exact": True}}}])))
    assert (estimated.row_count, estimated.row_count_method) == (500, "statistics")
    assert (exact.row_count, exact.row_count_method) == (500, "exact")


def test_the_file_is_opened_read_only_so_a_writing_check_is_refused_by_duckdb(path: Path) -> None:
    create_orders(path, rows=3)
    # The lexer refuses writes before they are sent; a table function that writes is DuckDB's to refuse.
    checks = [
        {"name": "writes", "sql": "select 'OK' as status from (select nextval('s'))"},
        {"name": "fine", "sql": "select 'OK' as status, count(*) as actual from orders"},
    ]
    write(path, "create sequence s")
    snapshot = collect(source(path, [], sql_checks=checks))
    assert (
        "read-only" in snapshot.sql_errors["writes"].lower()
        or "read only" in snapshot.sql_errors["writes"].lower()
    )
    assert [(r.name, r.status, r.actual) for r in snapshot.sql_checks] == [("fine", "OK", 3.0)]
    with duckdb.connect(str(path)) as conn:  # nothing was written
        assert conn.execute("select count(*) from orders").fetchone() == (3,)


def test_a_statement_past_its_timeout_is_interrupted_and_recorded_and_the_rest_collects(path: Path) -> None:
    create_orders(path, rows=3)
    write(
        path,
        # Every one of the 10^10 pairs must be filtered before a row can be counted: DuckDB 2 answers
        # count(*) over a one-row aggregate view without computing the aggregate.
        "create view slow as select a.range as x from range(100000) a, range(100000) b "
        "where (a.range * 7 + b.range * 13) % 1000003 = 11",
    )
    src = source(
        path,
        [
            {"name": "slow", "checks": {"volume": {"exact": True}}},
            {"name": "orders", "checks": {"freshness": {"column": "created_at"}}},
        ],
    )
    slow, orders = collect(src, timeout=timedelta(seconds=1)).tables
    assert slow.error_kind == "timeout", slow.error
    assert "the statement timeout is 1s" in str(slow.error)
    assert orders.error is None and orders.last_modified == NOW


def test_an_injection_shaped_table_name_is_quoted_by_the_dialect(path: Path) -> None:
    name, odd = 'x"; DROP TABLE y; --', "we\"ird %s :col's"
    quoted_name, quoted_odd = name.replace('"', '""'), odd.replace('"', '""')
    write(
        path,
        "create table y (id integer)",
        f'create table "{quoted_name}" ("{quoted_odd}" double, t timestamp)',
        f"""insert into "{quoted_name}"
            select i::double, timestamp '2026-03-10 12:00:00' - i * interval 20 minute from range(5) r(i)""",  # noqa: S608
    )
    checks = {
        "freshness": {"column": "t"},
        "volume": {"column": "t"},
        "schema": True,
        "columns": [{"name": odd, "metrics": ["null_rate", "mean"]}],
    }
    table = only_table(collect(source(path, [{"name": name, "checks": checks}])))
    assert table.error is None, table.error
    assert table.last_modified == NOW and table.row_count == 3
    assert table.profiles is not None and table.profiles[0].mean == 2.0
    with duckdb.connect(str(path)) as conn:
        assert conn.execute("select count(*) from y").fetchone() == (0,)


def test_a_missing_file_is_source_unavailable_and_is_not_created(path: Path) -> None:
    with pytest.raises(SourceUnavailable, match="source lake"):
        collect(source(path, [{"name": "orders"}]))
    assert not path.exists()


def test_backfill_counts_complete_periods_from_the_first_row(path: Path) -> None:
    create_orders(path, rows=30)  # 07:10 ... 12:00
    checks = {"freshness": {"column": "created_at"}, "volume": {"column": "created_at", "period": "1h"}}
    src = source(path, [{"name": "orders", "checks": checks}])
    with Collector(src, statement_timeout=TIMEOUT) as collector:
        history = collector.backfill(src.tables[0], since=NOW - timedelta(days=1), until=NOW)
    # from the first row's period (07:10 ... 07:50) on; 12:00 opens the incomplete period
    assert [(p.start.hour, p.count) for p in history.period_counts] == [
        (7, 5),
        (8, 6),
        (9, 6),
        (10, 6),
        (11, 6),
    ]
    assert history.update_times[-1] == NOW - timedelta(minutes=10)


def test_sql_metrics_read_value_segment_and_ts_and_are_bounded(path: Path) -> None:
    create_orders(path, rows=30)
    metrics = [
        {
            "name": "orders_per_name",
            "sql": "select name as segment, count(*) as value from orders group by name",
        },
        {
            "name": "hourly_amount",
            "sql": "select date_trunc('hour', created_at) as ts, sum(amount) as value from orders group by 1",
        },
        {"name": "no_value", "sql": "select 1 as amount"},
    ]
    snapshot = collect(source(path, [], sql_metrics=metrics))
    by_name = {m.name: m for m in snapshot.sql_metrics}
    assert sorted((r.segment, r.value) for r in by_name["orders_per_name"].rows) == [
        ("n0", 10.0),
        ("n1", 10.0),
        ("n2", 10.0),
    ]
    hourly = by_name["hourly_amount"].rows
    assert [r.ts for r in hourly] == sorted(r.ts for r in hourly if r.ts is not None)
    assert hourly[-1].ts == NOW
    assert "no value column" in snapshot.sql_errors["no_value"]
