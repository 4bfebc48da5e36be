"""How TableQuery plans one table's statement: the number of times it reads the table.

The plan matters on large tables without an index on the timestamp column: each scalar
subquery that is not an index lookup is one more full scan of the table.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.dialects import postgresql

from driftguard.collect.dialects import PostgresRules
from driftguard.collect.table_query import Bucket, TableQuery, TableTarget, read_buckets
from driftguard.config import TableConfig
from driftguard.model import ColumnInfo

AT = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
COLUMNS = [
    ColumnInfo(name="id", type="integer", raw_type="integer", nullable=False, position=1),
    ColumnInfo(name="created_at", type="timestamptz", raw_type="timestamptz", nullable=False, position=2),
]


def plan(checks: dict[str, Any], row_estimate: float | None = 1000.0) -> str:
    table = TableConfig.model_validate({"name": "orders", "checks": checks})
    target = TableTarget(table, None, COLUMNS, row_estimate, "source s, table orders")
    query = TableQuery(target, PostgresRules(), AT)
    assert query.statement is not None
    return str(query.statement.compile(dialect=postgresql.dialect()))


def reads_of_table(sql: str) -> int:
    return sql.count("FROM orders")


def test_an_exact_count_and_freshness_share_one_scan() -> None:
    sql = plan({"volume": {"exact": True}, "freshness": {"column": "created_at"}})
    assert reads_of_table(sql) == 1
    assert "count(*)" in sql and "max(" in sql


def test_a_table_without_statistics_counts_and_finds_its_latest_row_in_one_scan() -> None:
    sql = plan({"volume": {}, "freshness": {"column": "created_at"}}, row_estimate=None)
    assert reads_of_table(sql) == 1


def test_a_period_count_and_max_stay_separate_lookups_an_index_can_answer() -> None:
    # A bounded period count and max() can each use an index on the column: no full scan.
    sql = plan({"volume": {"column": "created_at"}, "freshness": {"column": "created_at"}})
    assert reads_of_table(sql) == 2
    assert "count(*)" in sql and "WHERE" in sql


def test_statistics_volume_needs_no_statement_beyond_freshness() -> None:
    sql = plan({"volume": {}, "freshness": {"column": "created_at"}})
    assert reads_of_table(sql) == 1
    assert "count(" not in sql


def test_buckets_come_back_oldest_first_whatever_order_the_server_sent() -> None:
    hour = 3600.0
    base = AT.timestamp()
    rows = [(base + 2 * hour, 3, base + 2 * hour + 5), (base, 1, base + 7), (base + hour, 2, None)]
    buckets = read_buckets(rows)
    assert [b.start for b in buckets] == [AT, AT + timedelta(hours=1), AT + timedelta(hours=2)]
    assert buckets[0] == Bucket(AT, 1, AT + timedelta(seconds=7))
    assert buckets[1].latest is None
