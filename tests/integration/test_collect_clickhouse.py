"""Collection from a real ClickHouse server (native protocol, clickhouse-driver, DriftGuard's own
SQLAlchemy dialect): the contract of the other server sources (one aggregate query per table,
row counts from system.parts, read-only, server-side timeouts, typed errors), each test in a
database of its own.

.ci/run installs and starts the server (Debian's clickhouse-server). Outside CI a missing server or
driver skips loudly; under CI=true it fails, as for PostgreSQL and MariaDB.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.conftest import IN_CI, _unavailable

from driftguard.collect import Collector
from driftguard.collect.connect import dispose_engines, lease_pool
from driftguard.collect.session import SourceSession
from driftguard.config import Source
from driftguard.errors import CheckDefinitionError, ConfigError, PermissionDenied, SourceUnavailable
from driftguard.model import Snapshot, TableSnapshot
from driftguard.secrets import SecretResolver

pytestmark = pytest.mark.clickhouse

CH_HOST = os.environ.get("DRIFTGUARD_TEST_CH_HOST", "127.0.0.1")
CH_PORT = int(os.environ.get("DRIFTGUARD_TEST_CH_PORT", "9000"))
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
TIMEOUT = timedelta(seconds=5)


@pytest.fixture(autouse=True)
def _fresh_engine_cache() -> Iterator[None]:
    yield
    dispose_engines()


@pytest.fixture(scope="module")
def admin() -> Iterator[Any]:
    """A writing client for the fixtures (DriftGuard's own connections only read)."""
    try:
        from clickhouse_driver import Client
    except ImportError as e:  # the dev extra installs it (driftguard[clickhouse])
        message = f"clickhouse-driver is not installed ({e}): pip install -e '.[dev]'"
        if IN_CI:
            pytest.fail(f"CI=true but {message}", pytrace=False)
        pytest.skip(f"!!! SKIPPED: {message}")
    client = Client(host=CH_HOST, port=CH_PORT, connect_timeout=5)
    try:
        client.execute("SELECT 1")
    except Exception as e:  # any failure means the server is not usable
        _unavailable(f"ClickHouse at {CH_HOST}:{CH_PORT}", e)
    yield client
    client.disconnect()


class Db:
    def __init__(self, admin: Any, name: str) -> None:
        self.admin, self.name = admin, name

    def execute(self, *statements: str) -> None:
        for statement in statements:
            self.admin.execute(statement)

    def insert(self, table: str, rows: list[tuple[Any, ...]]) -> None:
        self.admin.execute(f"INSERT INTO `{self.name}`.`{table}` VALUES", rows)

    def count(self, table: str) -> int:
        return int(self.admin.execute(f"SELECT count() FROM `{self.name}`.`{table}`")[0][0])  # noqa: S608

    def source(self, tables: list[dict[str, Any]], **extra: Any) -> Source:
        connection = {"host": CH_HOST, "port": CH_PORT, "database": self.name, "user": "default"}
        return Source.model_validate(
            {"name": "ch", "kind": "clickhouse", "connection": connection, "tables": tables, **extra}
        )


@pytest.fixture
def db(admin: Any) -> Iterator[Db]:
    name = f"dg_{uuid.uuid4().hex[:10]}"
    admin.execute(f"CREATE DATABASE `{name}`")
    yield Db(admin, name)
    admin.execute(f"DROP DATABASE IF EXISTS `{name}`")


def create_orders(db: Db, rows: int = 30, engine: str = "MergeTree ORDER BY created_at") -> None:
    """`rows` orders, one every 10 minutes back from NOW; every 5th amount NULL."""
    db.execute(
        f"""CREATE TABLE `{db.name}`.orders (id UInt32, amount Nullable(Float64), created_at DateTime,
            day Date, name String) ENGINE = {engine}"""
    )
    db.insert(
        "orders",
        [
            (
                i,
                None if i % 5 == 0 else float(i),
                NOW - timedelta(minutes=10 * i),
                (NOW - timedelta(minutes=10 * i)).date(),
                f"n{i % 3}",
            )
            for i in range(rows)
        ],
    )


def collect(src: Source, *, at: datetime = NOW, timeout: timedelta = TIMEOUT) -> Snapshot:
    with Collector(src, statement_timeout=timeout) as collector:
        return collector.collect(at)


def only_table(snapshot: Snapshot) -> TableSnapshot:
    assert len(snapshot.tables) == 1
    return snapshot.tables[0]


def test_one_aggregate_query_gives_freshness_period_volume_schema_and_profiles(db: Db) -> None:
    create_orders(db)
    checks = {
        "freshness": {"column": "created_at"},
        "volume": {"column": "created_at", "period": "1h"},
        "schema": True,
        "columns": [
            {"name": "amount", "metrics": ["null_rate", "distinct_count", "mean", "min", "max"]},
            {"name": "name", "metrics": ["null_rate", "distinct_count", "min", "max"]},
        ],
    }
    snapshot = collect(db.source([{"name": "orders", "checks": checks}]), at=NOW + timedelta(minutes=5))
    table = only_table(snapshot)
    assert table.error is None, table.error
    assert table.last_modified == NOW
    assert [(p.start, p.count) for p in table.period_counts or []] == [(NOW - timedelta(hours=1), 6)]
    assert [(c.name, c.type, c.raw_type, c.nullable) for c in table.columns or []] == [
        ("id", "integer", "UInt32", False),
        ("amount", "float", "Nullable(Float64)", True),
        ("created_at", "timestamptz", "DateTime", False),
        ("day", "date", "Date", False),
        ("name", "text", "String", False),
    ]
    amount, name = table.profiles or []
    amounts = [float(i) for i in range(1, 7) if i % 5]  # the hour [11:00, 12:00): orders 1 ... 6
    assert amount.period_start == NOW - timedelta(hours=1)
    assert (amount.row_count, amount.null_count, amount.distinct_count) == (6, 1, 5)
    assert amount.mean == pytest.approx(sum(amounts) / len(amounts))
    assert (amount.min, amount.max) == (1.0, 6.0)
    assert (name.null_count, name.distinct_count, name.min, name.max) == (0, 3, "n0", "n2")
    assert table.round_trips == 1 + 5 + 4  # freshness+volume, then one statement per column metric


def test_quantiles_are_refused_by_name_not_sent(db: Db) -> None:
    create_orders(db, rows=3)
    checks = {"volume": True, "columns": [{"name": "amount", "metrics": ["quantiles", "mean"]}]}
    table = only_table(collect(db.source([{"name": "orders", "checks": checks}])))
    assert table.row_count == 3
    (amount,) = table.profiles or []
    assert amount.mean == 1.5  # orders 1 and 2; order 0's amount is NULL
    assert amount.quantiles is None and "clickhouse has no percentile_cont" in amount.errors["quantiles"]


def test_row_count_comes_from_system_parts_unless_exact_is_asked_or_the_engine_has_no_parts(db: Db) -> None:
    create_orders(db, rows=500)
    db.execute(f"CREATE TABLE `{db.name}`.kept (id UInt32) ENGINE = Memory")
    db.insert("kept", [(i,) for i in range(7)])
    estimated = only_table(collect(db.source([{"name": "orders", "checks": {"volume": True}}])))
    exact = only_table(collect(db.source([{"name": "orders", "checks": {"volume": {"exact": True}}}])))
    memory = only_table(collect(db.source([{"name": "kept", "checks": {"volume": True}}])))
    assert (estimated.row_count, estimated.row_count_method) == (500, "statistics")
    assert (exact.row_count, exact.row_count_method) == (500, "exact")
    assert (memory.row_count, memory.row_count_method) == (7, "exact (no statistics)")


def test_every_query_is_read_only_so_writes_and_settings_are_refused_by_the_server(db: Db) -> None:
    create_orders(db, rows=3)
    lease = lease_pool(db.source([]), resolver=SecretResolver())
    try:
        session = SourceSession("ch", lease.engine, TIMEOUT)
        try:
            for sql in (
                f"INSERT INTO `{db.name}`.orders (id) VALUES (99)",  # noqa: S608 - test statement
                f"DROP TABLE `{db.name}`.orders",
                "SET max_execution_time = 0",
                f"SELECT count() FROM `{db.name}`.orders SETTINGS max_execution_time = 0",  # noqa: S608
            ):
                with pytest.raises(CheckDefinitionError, match=r"readonly mode.*code 164"):
                    session.execute_text(sql, where="source ch")
        finally:
            session.close()
    finally:
        lease.release()
    assert db.count("orders") == 3  # nothing was written or dropped
    checks = [
        {"name": "lifts_timeout", "sql": "select 'OK' as status from orders settings max_execution_time = 0"},
        {"name": "fine", "sql": "select 'OK' as status, count(*) as actual from orders"},
    ]
    snapshot = collect(db.source([], sql_checks=checks))
    assert "readonly" in snapshot.sql_errors["lifts_timeout"]
    assert [(r.name, r.status, r.actual) for r in snapshot.sql_checks] == [("fine", "OK", 3.0)]


def test_a_statement_past_its_timeout_is_stopped_by_the_server_and_the_rest_collects(db: Db) -> None:
    create_orders(db, rows=3)
    db.execute(f"CREATE VIEW `{db.name}`.slow AS SELECT number AS n FROM system.numbers")  # noqa: S608
    src = db.source(
        [
            {"name": "slow", "checks": {"volume": {"exact": True}}},
            {"name": "orders", "checks": {"freshness": {"column": "created_at"}}},
        ]
    )
    slow, orders = collect(src, timeout=timedelta(seconds=1)).tables
    assert slow.error_kind == "timeout", slow.error
    assert "code 159" in str(slow.error) and "the statement timeout is 1s" in str(slow.error)
    assert orders.error is None and orders.last_modified == NOW


def test_an_injection_shaped_table_and_column_name_is_quoted_by_the_dialect(db: Db) -> None:
    name, odd = "x`; DROP TABLE y; --", "we`ird %s :col's"
    quoted_name, quoted_odd = name.replace("`", "``"), odd.replace("`", "``")
    db.execute(
        f"CREATE TABLE `{db.name}`.y (id UInt32) ENGINE = Memory",
        f"CREATE TABLE `{db.name}`.`{quoted_name}` (`{quoted_odd}` Float64, t DateTime) ENGINE = Log",
    )
    db.insert(quoted_name, [(float(i), NOW - timedelta(minutes=20 * i)) for i in range(5)])
    checks = {
        "freshness": {"column": "t"},
        "volume": {"column": "t"},
        "schema": True,
        "columns": [{"name": odd, "metrics": ["null_rate", "mean"]}],
    }
    table = only_table(collect(db.source([{"name": name, "checks": checks}])))
    assert table.error is None, table.error
    assert table.last_modified == NOW and table.row_count == 3
    assert table.profiles is not None and table.profiles[0].mean == 2.0
    assert db.count("y") == 0


def test_a_datetime_with_its_own_zone_is_read_as_the_same_instant(db: Db) -> None:
    db.execute(f"CREATE TABLE `{db.name}`.tokyo (at DateTime('Asia/Tokyo')) ENGINE = MergeTree ORDER BY at")
    db.insert("tokyo", [(NOW - timedelta(minutes=30),), (NOW - timedelta(hours=2),)])
    checks = {"freshness": {"column": "at"}, "volume": {"column": "at", "period": "1h"}}
    table = only_table(
        collect(db.source([{"name": "tokyo", "checks": checks}]), at=NOW + timedelta(minutes=1))
    )
    assert table.error is None, table.error
    assert table.last_modified == NOW - timedelta(minutes=30)
    assert [(p.start, p.count) for p in table.period_counts or []] == [(NOW - timedelta(hours=1), 1)]


def test_backfill_counts_complete_periods_from_the_first_row_on_datetime_and_date_columns(db: Db) -> None:
    create_orders(db, rows=30)  # 07:10 ... 12:00
    checks = {
        "freshness": {"column": "created_at"},
        "volume": {"column": "created_at", "period": "1h"},
        "columns": [{"name": "amount", "metrics": ["null_rate", "mean", "max"]}],
    }
    src = db.source([{"name": "orders", "checks": checks}])
    with Collector(src, statement_timeout=TIMEOUT) as collector:
        history = collector.backfill(src.tables[0], since=NOW - timedelta(days=1), until=NOW)
    assert [(p.start.hour, p.count) for p in history.period_counts] == [
        (7, 5),
        (8, 6),
        (9, 6),
        (10, 6),
        (11, 6),
    ]
    assert history.update_times[-1] == NOW - timedelta(minutes=10)
    # column metrics per period from one GROUP BY: 11:00 holds orders 1 ... 6, order 5's amount NULL
    last = history.profiles[-1]
    assert (last.column, last.period_start.hour, last.row_count, last.null_count) == ("amount", 11, 6, 1)
    assert (last.mean, last.max) == (pytest.approx((1 + 2 + 3 + 4 + 6) / 5), 6.0)
    assert [p.period_start.hour for p in history.profiles] == [7, 8, 9, 10, 11]
    by_day = {"volume": {"column": "day", "period": "1d"}}
    src = db.source([{"name": "orders", "checks": by_day}])
    with Collector(src, statement_timeout=TIMEOUT) as collector:
        days = collector.backfill(src.tables[0], since=NOW - timedelta(days=3), until=NOW + timedelta(days=1))
    assert [(p.start, p.count) for p in days.period_counts] == [(NOW.replace(hour=0), 30)]


def test_sql_metrics_read_value_segment_and_ts(db: Db) -> None:
    create_orders(db, rows=30)
    metrics = [
        {
            "name": "orders_per_name",
            "sql": "select name as segment, count(*) as value from orders group by name",
        },
        {
            "name": "hourly_amount",
            "sql": "select toStartOfHour(created_at) as ts, sum(amount) as value from orders group by ts",
        },
    ]
    snapshot = collect(db.source([], sql_metrics=metrics))
    assert not snapshot.sql_errors, snapshot.sql_errors
    by_name = {m.name: m for m in snapshot.sql_metrics}
    assert sorted((r.segment, r.value) for r in by_name["orders_per_name"].rows) == [
        ("n0", 10.0),
        ("n1", 10.0),
        ("n2", 10.0),
    ]
    hourly = sorted(by_name["hourly_amount"].rows, key=lambda r: r.ts or NOW)
    assert hourly[-1].ts == NOW


def test_a_server_that_is_down_is_unavailable_and_an_unknown_user_is_a_permission_error(db: Db) -> None:
    down = Source.model_validate(
        {
            "name": "ch",
            "kind": "clickhouse",
            "connection": {"host": "127.0.0.1", "port": 1, "database": db.name, "user": "default"},
            "tables": [{"name": "orders"}],
        }
    )
    with pytest.raises(SourceUnavailable, match="source ch"):
        collect(down)
    stranger = Source.model_validate(
        {
            "name": "ch",
            "kind": "clickhouse",
            "connection": {"host": CH_HOST, "port": CH_PORT, "database": db.name, "user": "nobody"},
            "tables": [{"name": "orders"}],
        }
    )
    with pytest.raises(PermissionDenied, match="source ch"):
        collect(stranger)


def test_a_user_whose_profile_drops_the_timeout_is_refused_before_any_query(db: Db) -> None:
    # Debian's users.xml has a user `readonly` with a readonly=1 profile: ClickHouse 18.16 then
    # ignores the settings a query carries, so max_execution_time would silently not hold.
    create_orders(db, rows=3)
    limited = Source.model_validate(
        {
            "name": "ch",
            "kind": "clickhouse",
            "connection": {"host": CH_HOST, "port": CH_PORT, "database": db.name, "user": "readonly"},
            "tables": [{"name": "orders", "checks": {"volume": True}}],
        }
    )
    with pytest.raises(ConfigError, match=r"source ch: the server does not apply .*max_execution_time"):
        collect(limited)


def test_aggregates_over_no_rows_are_null_as_in_sql_not_clickhouses_defaults(db: Db) -> None:
    # ClickHouse's own max() of an empty DateTime column is 1970-01-01, min() of a String '' and
    # avg() nan; DriftGuard must see "no rows", not a 56-year-old table or a value of ''.
    db.execute(f"CREATE TABLE `{db.name}`.empty (at DateTime, name String, n Float64) ENGINE = Memory")
    create_orders(db, rows=3)  # 11:40 ... 12:00: the hour to 14:00 has no rows
    metrics = ["null_rate", "distinct_count", "min", "max", "mean"]
    checks = {"freshness": {"column": "at"}, "volume": True}
    empty = only_table(collect(db.source([{"name": "empty", "checks": checks}])))
    assert empty.error is None, empty.error
    assert (empty.last_modified, empty.row_count) == (None, 0)
    quiet = {
        "volume": {"column": "created_at", "period": "1h"},
        "columns": [{"name": "name", "metrics": metrics[:4]}, {"name": "id", "metrics": metrics}],
    }
    table = only_table(collect(db.source([{"name": "orders", "checks": quiet}]), at=NOW + timedelta(hours=2)))
    assert table.error is None, table.error
    assert table.row_count == 0
    for profile in table.profiles or []:
        assert (profile.row_count, profile.distinct_count, profile.min, profile.max) == (0, 0, None, None)
        assert profile.mean is None and not profile.errors


def test_test_connection_reaches_logs_in_and_names_a_missing_table(db: Db) -> None:
    from driftguard.cli.connection import test_source
    from driftguard.config import Config

    create_orders(db, rows=3)
    src = db.source([{"name": "orders"}, {"name": "gone`"}])
    report = test_source(Config.model_validate({"sources": [src.model_dump(by_alias=True)]}), src)
    steps = {step.name: step for step in report.steps}
    assert [steps[n].ok for n in ("credentials", "connect", "table orders")] == [True, True, True]
    assert not steps["table gone`"].ok and "doesn't exist" in steps["table gone`"].detail
