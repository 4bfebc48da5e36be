"""Collection against the real databases: SQLite (a temp file), PostgreSQL and MariaDB.

Most tests run once per dialect through the `db` fixture; tables are created with SQLAlchemy
so one definition serves all three.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql as mysql_types

from driftguard.collect import Collector
from driftguard.collect.connect import dispose_engines
from driftguard.config import Source, SqlCheck
from driftguard.errors import CheckDefinitionError, PermissionDenied, SecretError, SourceUnavailable
from driftguard.model import Snapshot, TableSnapshot

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
TIMEOUT = timedelta(seconds=5)
SETUP_TRIPS = 1  # the one session setup statement
CATALOG_TRIPS = 1  # schema + statistics of all tables
DateTime6 = sa.DateTime().with_variant(mysql_types.DATETIME(fsp=6), "mysql")


@dataclass
class SqliteDatabase:
    """The SQLite counterpart of conftest's Database: a writable engine on a temp file."""

    path: Path
    kind: str = "sqlite"
    schema: str | None = None

    def __post_init__(self) -> None:
        self.engine = sa.create_engine(sa.URL.create("sqlite", database=str(self.path)))

    def execute(self, *statements: str) -> None:
        with self.engine.begin() as conn:
            for s in statements:
                conn.exec_driver_sql(s)

    def source_yaml(self, name: str = "src") -> dict[str, object]:
        return {"name": name, "kind": "sqlite", "connection": {"path": str(self.path)}}


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "sqlite":
        database = SqliteDatabase(tmp_path / "data.db")
        yield database
        database.engine.dispose()
    else:
        yield request.getfixturevalue("pg" if request.param == "postgres" else "mysql")


@pytest.fixture(autouse=True)
def _fresh_engine_cache() -> Iterator[None]:
    yield
    dispose_engines()


def make_source(
    db: Any, tables: list[dict[str, Any]], sql_checks: list[dict[str, Any]] | None = None, **conn: Any
) -> Source:
    data: dict[str, Any] = db.source_yaml()
    data["connection"] = {**data["connection"], **conn}
    data["tables"] = [{"schema": db.schema, **t} if db.schema else t for t in tables]
    source = Source.model_validate(data)
    # Attached past the Source's validate-time SQL check, so that the collector's own refusal (the
    # defence a config built in code still meets) is what these tests see.
    checks = [SqlCheck.model_validate(c) for c in sql_checks or []]
    return source.model_copy(update={"sql_checks": checks})


def collect(source: Source, *, at: datetime = NOW, timeout: timedelta = TIMEOUT) -> Snapshot:
    with Collector(source, statement_timeout=timeout) as collector:
        return collector.collect(at)


def qualified(db: Any, name: str) -> str:
    """A table name for hand-written custom SQL (the collector's session has no search_path)."""
    return f"{db.schema}.{name}" if db.schema else name


def create_orders(db: Any, name: str = "orders", rows: int = 30) -> None:
    """`rows` orders, one every 10 minutes back from NOW; every 5th amount NULL."""
    metadata = sa.MetaData(schema=db.schema)
    table = sa.Table(
        name,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("amount", sa.Float),
        sa.Column("created_at", DateTime6),
        sa.Column("name", sa.String(50)),
    )
    metadata.create_all(db.engine)
    values = [
        {
            "id": i,
            "amount": None if i % 5 == 0 else float(i),
            "created_at": (NOW - timedelta(minutes=10 * i)).replace(tzinfo=None),
            "name": f"n{i % 3}",
        }
        for i in range(rows)
    ]
    if values:
        with db.engine.begin() as conn:
            conn.execute(table.insert(), values)


def only_table(snapshot: Snapshot) -> TableSnapshot:
    assert len(snapshot.tables) == 1
    return snapshot.tables[0]


def linear_quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# ---------------------------------------------------------------------------- collecting


def test_one_query_gives_freshness_volume_and_schema_and_each_column_metric_one_over_the_period(
    db: Any,
) -> None:
    create_orders(db)
    amount_metrics = ["null_rate", "distinct_count", "mean", "min", "max", "quantiles"]
    source = make_source(
        db,
        [
            {
                "name": "orders",
                "checks": {
                    "freshness": {"column": "created_at"},
                    "volume": {"column": "created_at", "period": "1h"},
                    "schema": True,
                    "columns": [
                        {"name": "amount", "metrics": amount_metrics},
                        {"name": "name", "metrics": ["null_rate", "distinct_count", "min", "max"]},
                    ],
                },
            }
        ],
    )
    snapshot = collect(source, at=NOW + timedelta(minutes=5))
    table = only_table(snapshot)

    assert table.error is None
    assert table.last_modified == NOW
    # latest complete hour [11:00, 12:00) holds the orders of 11:00, 11:10 ... 11:50
    assert table.row_count == 6 and table.row_count_method == "period"
    assert table.period_counts is not None
    assert [(p.start, p.count) for p in table.period_counts] == [(NOW - timedelta(hours=1), 6)]
    assert table.columns is not None
    assert [(c.name, c.type, c.position) for c in table.columns] == [
        ("id", "integer", 1),
        ("amount", "float", 2),
        ("created_at", "timestamp", 3),
        ("name", "text", 4),
    ]
    assert all(c.nullable for c in table.columns if c.name != "id")
    # column metrics describe the same hour only (orders 1 ... 6; order 5's amount is NULL)
    amounts = [float(i) for i in range(1, 7) if i % 5]
    assert table.profiles is not None
    amount, name = table.profiles
    assert amount.period_start == NOW - timedelta(hours=1) and amount.sample_rows is None
    assert (amount.row_count, amount.null_count, amount.distinct_count) == (6, 1, 5)
    assert amount.mean == pytest.approx(sum(amounts) / len(amounts))
    assert (amount.min, amount.max) == (1.0, 6.0)
    if db.kind == "postgres":
        assert amount.quantiles == pytest.approx(
            {f"p{int(q * 100)}": linear_quantile(amounts, q) for q in (0.25, 0.5, 0.75)}
        )
        assert amount.errors == {}
    else:  # no percentile_cont aggregate: that metric's error, not the others'
        assert amount.quantiles is None and "no percentile_cont" in amount.errors["quantiles"]
    assert (name.null_count, name.distinct_count, name.min, name.max) == (0, 3, "n0", "n2")
    statements = len(amount_metrics) - (db.kind != "postgres") + 4  # one per computed metric
    assert table.round_trips == 1 + statements
    assert snapshot.round_trips == SETUP_TRIPS + CATALOG_TRIPS + 1 + statements


def test_many_tables_cost_one_query_each_and_setup_is_paid_once(db: Any) -> None:
    names = [f"t{i}" for i in range(4)]
    for name in names:
        create_orders(db, name, rows=5)
    checks = {"freshness": {"column": "created_at"}, "volume": {"column": "created_at"}, "schema": True}
    source = make_source(db, [{"name": n, "checks": checks} for n in names])
    with Collector(source, statement_timeout=TIMEOUT) as collector:
        first = collector.collect(NOW)
        second = collector.collect(NOW + timedelta(hours=1))
    assert all(t.error is None and t.round_trips == 1 for t in first.tables + second.tables)
    assert first.round_trips == SETUP_TRIPS + CATALOG_TRIPS + len(names)
    assert second.round_trips == CATALOG_TRIPS + len(names)  # same connection, no new setup


def test_schema_change_is_visible_in_the_next_snapshot(db: Any) -> None:
    create_orders(db, rows=3)
    source = make_source(db, [{"name": "orders", "checks": {"schema": True}}])
    before = only_table(collect(source))
    assert before.round_trips == 0  # the schema comes from the shared catalog query
    if db.kind == "postgres":
        db.execute(
            "alter table orders alter column amount type numeric(10,2)",
            "alter table orders add column note text",
        )
    elif db.kind == "mysql":
        db.execute("alter table orders modify amount decimal(10,2), add column note text")
    else:  # SQLite cannot change a column's type in place
        db.execute("alter table orders add column note text")
    after = only_table(collect(source))
    assert before.columns is not None and after.columns is not None
    by_name = {c.name: c for c in after.columns}
    assert by_name["note"].type == "text" and by_name["note"].position == 5
    if db.kind != "sqlite":
        assert by_name["amount"].type == "numeric" and "10,2" in by_name["amount"].raw_type.replace(" ", "")


def test_a_stale_table_reports_its_last_update_and_moves_when_data_arrives(db: Any) -> None:
    create_orders(db, rows=0)
    stale = NOW - timedelta(days=3)
    with db.engine.begin() as conn:
        conn.execute(
            sa.text(f"insert into {qualified(db, 'orders')} (id, created_at) values (1, :at)"),  # noqa: S608
            {"at": stale.replace(tzinfo=None)},
        )
    source = make_source(db, [{"name": "orders", "checks": {"freshness": {"column": "created_at"}}}])
    with Collector(source, statement_timeout=TIMEOUT) as collector:
        assert only_table(collector.collect(NOW)).last_modified == stale
        with db.engine.begin() as conn:
            conn.execute(
                sa.text(f"insert into {qualified(db, 'orders')} (id, created_at) values (2, :at)"),  # noqa: S608
                {"at": NOW.replace(tzinfo=None)},
            )
        assert only_table(collector.collect(NOW)).last_modified == NOW


def test_empty_table_has_no_last_update_and_zero_rows_in_its_period(db: Any) -> None:
    create_orders(db, rows=0)
    checks = {"freshness": {"column": "created_at"}, "volume": {"column": "created_at"}}
    table = only_table(collect(make_source(db, [{"name": "orders", "checks": checks}])))
    assert table.error is None
    assert table.last_modified is None and table.row_count == 0


def test_definition_problems_are_recorded_per_table_and_the_rest_still_collects(db: Any) -> None:
    create_orders(db)
    create_orders(db, "healthy")
    non_time = "flag" if db.kind == "sqlite" else "id"  # SQLite keeps epoch times in integer columns
    if db.kind == "sqlite":
        db.execute("create table flags (flag boolean)")
    else:
        db.execute("create table flags (id integer)")
    source = make_source(
        db,
        [
            {"name": "ghost", "checks": {"volume": True}},
            {"name": "orders", "checks": {"freshness": {"column": "updated_at"}}},
            {"name": "flags", "checks": {"freshness": {"column": non_time}}},
            {"name": "healthy", "checks": {"volume": {"exact": True}}},
        ],
    )
    ghost, wrong_column, wrong_type, good = collect(source).tables
    assert (
        ghost.error_kind == "definition"
        and "does not exist" in str(ghost.error)
        and "ghost" in str(ghost.error)
    )
    assert wrong_column.error_kind == "definition"
    assert "column updated_at does not exist" in str(wrong_column.error) and "created_at" in str(
        wrong_column.error
    )
    assert wrong_type.error_kind == "definition"
    assert wrong_type.error is not None and wrong_type.error.startswith("source src, table ")
    assert "not a time type; point freshness.column at a timestamp column" in wrong_type.error
    assert good.error is None and good.row_count == 30 and good.row_count_method == "exact"


# ---------------------------------------------------------------------------- custom SQL


def test_custom_sql_checks_follow_the_status_contract_and_bad_ones_are_refused(db: Any) -> None:
    create_orders(db, rows=7)  # names n0 x3, n1 x2, n2 x2
    orders = qualified(db, "orders")
    checks = [
        {"name": "quiet", "sql": "select 'ok' as status, 3 as actual, 10 as threshold;"},
        {
            "name": "dupes",
            "sql": f"select name, case when count(*) > 2 then 'ALERT' else 'OK' end as STATUS, "  # noqa: S608
            f"count(*) as actual from {orders} group by name order by name",
        },
        {"name": "literal", "sql": "select 'OK' as status, 'a%b:c' as text where 'abc' like 'a%' -- 100%"},
        {"name": "two", "sql": f"select 'OK' as status; delete from {orders}"},  # noqa: S608
        {"name": "writer", "sql": f"update {orders} set amount = 0"},  # noqa: S608
        {"name": "nostatus", "sql": "select 1 as x"},
        {"name": "badstatus", "sql": "select 'maybe' as status"},
    ]
    snapshot = collect(make_source(db, [], checks))
    results = {r.name: r for r in snapshot.sql_checks}
    assert results["quiet"].status == "OK" and (results["quiet"].actual, results["quiet"].threshold) == (
        3.0,
        10.0,
    )
    dupes = results["dupes"]
    assert dupes.status == "ALERT" and dupes.rows == 3 and dupes.actual == 3.0  # from the ALERT row
    assert [c["name"] for c in dupes.context] == ["n0", "n1", "n2"]
    assert results["literal"].context == [{"text": "a%b:c"}]
    assert set(snapshot.sql_errors) == {"two", "writer", "nostatus", "badstatus"}
    assert "2 statements" in snapshot.sql_errors["two"]
    assert "starts with 'update'" in snapshot.sql_errors["writer"]
    assert "no status column (it has: x)" in snapshot.sql_errors["nostatus"]
    assert "status 'maybe'" in snapshot.sql_errors["badstatus"]
    assert all(e.startswith("source src, sql check ") for e in snapshot.sql_errors.values())
    with db.engine.connect() as conn:
        assert conn.execute(sa.text(f"select count(*) from {orders}")).scalar() == 7  # noqa: S608


# ---------------------------------------------------------------------------- safety


def test_the_session_refuses_to_write(db: Any) -> None:
    create_orders(db, rows=1)
    source = make_source(db, [])
    with Collector(source, statement_timeout=TIMEOUT) as collector:
        insert = sa.text(f"insert into {qualified(db, 'orders')} (id) values (99)")  # noqa: S608
        with pytest.raises(CheckDefinitionError, match=r"(?i)read.only|readonly"):
            collector.session.execute(insert, where="test")
        drop = sa.text(f"drop table {qualified(db, 'orders')}")
        with pytest.raises(CheckDefinitionError):
            collector.session.execute(drop, where="test")
    with db.engine.connect() as conn:
        assert conn.execute(sa.text(f"select count(*) from {qualified(db, 'orders')}")).scalar() == 1  # noqa: S608


@pytest.mark.parametrize("kind", ["postgres", "mysql"])
def test_a_check_that_writes_through_a_function_is_stopped_by_the_read_only_transaction(
    kind: str, request: pytest.FixtureRequest
) -> None:
    db = request.getfixturevalue("pg" if kind == "postgres" else "mysql")
    create_orders(db, rows=1)
    orders = qualified(db, "orders")
    function = qualified(db, "sneaky")
    if kind == "postgres":
        db.execute(
            f"create function {function}() returns int language sql as "  # noqa: S608 - fixture names
            f"$$ insert into {orders} (id) values (99) returning 1 $$"
        )
    else:
        db.execute(
            f"create function sneaky() returns int modifies sql data "  # noqa: S608 - fixture names
            f"begin insert into {orders} (id) values (99); return 1; end"
        )
    # The lexer lets this through (it is one SELECT); the transaction must not.
    checks = [{"name": "sneaky", "sql": f"select {function}() as actual, 'OK' as status"}]
    snapshot = collect(make_source(db, [], checks))
    assert snapshot.sql_checks == []
    assert "read only" in snapshot.sql_errors["sneaky"].lower().replace("-", " ")
    with db.engine.connect() as conn:
        assert conn.execute(sa.text(f"select count(*) from {orders}")).scalar() == 1  # noqa: S608


SLOW_VIEW = {
    "postgres": "create view slow as select now() as ts, pg_sleep(3)::text as pause",
    "mysql": "create view slow as select now(6) as ts, sleep(3) as pause",
    "sqlite": "create view slow as with recursive n(i) as "
    "(select 1 union all select i + 1 from n where i < 300000000) select max(i) as ts from n",
}
SLOW_QUERY = {
    "postgres": "select 'OK' as status, pg_sleep(3) as pause",
    "mysql": "select 'OK' as status, sleep(3) as pause",
    "sqlite": "with recursive n(i) as (select 1 union all select i + 1 from n where i < 300000000) "
    "select 'OK' as status, max(i) as actual from n",
}


def test_a_statement_past_its_timeout_is_cancelled_and_recorded_and_the_rest_collects(db: Any) -> None:
    create_orders(db, rows=3)
    db.execute(SLOW_VIEW[db.kind])
    source = make_source(
        db,
        [
            {"name": "slow", "checks": {"freshness": {"column": "ts"}}},
            {"name": "orders", "checks": {"freshness": {"column": "created_at"}}},
        ],
        [{"name": "slow_check", "sql": SLOW_QUERY[db.kind]}],
    )
    snapshot = collect(source, timeout=timedelta(seconds=1))
    slow, orders = snapshot.tables
    assert slow.error_kind == "timeout", slow.error
    assert "the statement timeout is 1s" in str(slow.error)
    assert orders.error is None and orders.last_modified == NOW
    assert "the statement timeout is 1s" in snapshot.sql_errors["slow_check"]


def test_an_injection_shaped_table_name_is_quoted_not_executed(db: Any) -> None:
    name, odd = 'x"; DROP TABLE y; --', "we\"ird %s :col's"
    metadata = sa.MetaData(schema=db.schema)
    sa.Table("y", metadata, sa.Column("id", sa.Integer))
    evil = sa.Table(name, metadata, sa.Column(odd, sa.Float), sa.Column("t", DateTime6))
    metadata.create_all(db.engine)
    with db.engine.begin() as conn:
        conn.execute(
            evil.insert(),
            [{odd: float(i), "t": (NOW - timedelta(minutes=20 * i)).replace(tzinfo=None)} for i in range(5)],
        )
    checks = {
        "freshness": {"column": "t"},
        "volume": {"column": "t"},
        "schema": True,
        "columns": [{"name": odd, "metrics": ["null_rate", "distinct_count", "mean", "min", "max"]}],
    }
    table = only_table(collect(make_source(db, [{"name": name, "checks": checks}])))
    assert table.error is None
    assert table.last_modified == NOW and table.row_count == 3  # 11:00, 11:20, 11:40
    assert table.columns is not None and [c.name for c in table.columns] == [odd, "t"]
    assert table.profiles is not None and table.profiles[0].mean == 2.0
    assert sa.inspect(db.engine).has_table("y", schema=db.schema)


# ---------------------------------------------------------------------------- failures of the source


def test_an_unreachable_server_or_missing_file_is_source_unavailable(db: Any, tmp_path: Path) -> None:
    if db.kind == "sqlite":
        source = Source.model_validate(
            {"name": "src", "kind": "sqlite", "connection": {"path": str(tmp_path / "none.db")}}
        )
    else:
        source = make_source(db, [], port=1, connect_timeout="2s")  # nothing listens on port 1
    with (
        pytest.raises(SourceUnavailable, match="source src"),
        Collector(source, statement_timeout=TIMEOUT) as collector,
    ):
        collector.collect(NOW)
    assert not (tmp_path / "none.db").exists()  # read-only mode never creates the file


@pytest.mark.parametrize("kind", ["postgres", "mysql"])
def test_a_missing_password_reference_is_a_secret_error(
    kind: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = request.getfixturevalue("pg" if kind == "postgres" else "mysql")
    monkeypatch.delenv("DG_TEST_UNSET_PASSWORD", raising=False)
    source = make_source(db, [], password_env="DG_TEST_UNSET_PASSWORD")
    with pytest.raises(SecretError, match="DG_TEST_UNSET_PASSWORD"):
        Collector(source, statement_timeout=TIMEOUT)


@pytest.fixture
def mysql_user(mysql: Any) -> Iterator[tuple[Any, str, str]]:
    """A MariaDB user with a password that may read only table `allowed` of the test database."""
    user, password = f"dg_{uuid.uuid4().hex[:8]}", "right-horse-battery"
    mysql.execute(
        "create table allowed (id integer)",
        "create table forbidden (id integer)",
        f"create user '{user}'@'%%' identified by '{password}'",
        f"grant select on `{mysql.database}`.allowed to '{user}'@'%%'",
    )
    yield mysql, user, password
    mysql.execute(f"drop user '{user}'@'%%'")


def test_mysql_wrong_password_is_permission_denied(
    mysql_user: tuple[Any, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db, user, password = mysql_user
    monkeypatch.setenv("DG_TEST_PASSWORD", password + "-wrong")
    source = make_source(db, [], user=user, password_env="DG_TEST_PASSWORD")
    with (
        pytest.raises(PermissionDenied, match="Access denied"),
        Collector(source, statement_timeout=TIMEOUT) as c,
    ):
        c.collect(NOW)


def test_mysql_table_without_privilege_is_recorded_as_permission(
    mysql_user: tuple[Any, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db, user, password = mysql_user
    monkeypatch.setenv("DG_TEST_PASSWORD", password)
    source = make_source(
        db,
        [
            {"name": "allowed", "checks": {"volume": {"exact": True}}},
            {"name": "forbidden", "checks": {"volume": True}},
        ],
        user=user,
        password_env="DG_TEST_PASSWORD",
    )
    allowed, forbidden = collect(source).tables
    assert allowed.error is None and allowed.row_count == 0
    assert forbidden.error_kind == "permission" and "forbidden" in str(forbidden.error)


def test_postgres_table_without_select_privilege_is_recorded_as_permission(pg: Any) -> None:
    role = f"dg_{uuid.uuid4().hex[:8]}"
    create_orders(pg, "allowed", rows=2)
    create_orders(pg, "forbidden", rows=2)
    pg.execute(
        f"create role {role} login",
        f'grant usage on schema "{pg.schema}" to {role}',
        f'grant select on "{pg.schema}".allowed to {role}',
    )
    try:
        checks = {"freshness": {"column": "created_at"}}
        source = make_source(
            pg, [{"name": "allowed", "checks": checks}, {"name": "forbidden", "checks": checks}], user=role
        )
        allowed, forbidden = collect(source).tables
        assert allowed.error is None and allowed.last_modified == NOW
        assert forbidden.error_kind == "permission" and "permission denied" in str(forbidden.error)
    finally:
        pg.execute(f"drop owned by {role}", f"drop role {role}")


# ---------------------------------------------------------------------------- volume without scanning


def test_volume_uses_engine_statistics_unless_exact_is_asked(db: Any) -> None:
    create_orders(db, rows=500)
    if db.kind == "postgres":
        db.execute("analyze orders")
    elif db.kind == "mysql":
        db.execute("analyze table orders")
    with db.engine.begin() as conn:  # 20 more rows the statistics have not seen yet
        conn.execute(
            sa.text(f"insert into {qualified(db, 'orders')} (id) values (:id)"),  # noqa: S608
            [{"id": 1000 + i} for i in range(20)],
        )
    estimated = only_table(collect(make_source(db, [{"name": "orders", "checks": {"volume": True}}])))
    exact = only_table(collect(make_source(db, [{"name": "orders", "checks": {"volume": {"exact": True}}}])))
    assert exact.row_count == 520 and exact.row_count_method == "exact" and exact.round_trips == 1
    if db.kind == "sqlite":
        assert estimated.row_count == 520 and estimated.row_count_method == "exact (no statistics)"
    else:
        assert estimated.row_count_method == "statistics" and estimated.round_trips == 0
        assert (
            estimated.row_count == 500 if db.kind == "postgres" else 400 <= (estimated.row_count or 0) <= 600
        )


def test_postgres_never_analysed_table_falls_back_to_live_tuple_count(pg: Any) -> None:
    create_orders(pg, rows=0)
    with pg.engine.begin() as conn:
        conn.execute(sa.text("insert into orders (id) select g from generate_series(1, 40) g"))
    with pg.engine.connect() as conn:  # PostgreSQL 15 flushes table statistics lazily; ask for it now
        conn.exec_driver_sql("select pg_stat_force_next_flush()")
        conn.exec_driver_sql("select 1")
    table = only_table(collect(make_source(pg, [{"name": "orders", "checks": {"volume": True}}])))
    assert table.row_count_method == "statistics" and table.row_count == 40


# ---------------------------------------------------------------------------- backfill


def test_backfill_counts_complete_periods_including_empty_ones_and_update_times(db: Any) -> None:
    create_orders(db, rows=0)
    midnight = datetime(2026, 3, 10, tzinfo=UTC)
    arrivals = [
        midnight - timedelta(minutes=10),  # in the partial first bucket: an update time, not counted
        midnight + timedelta(minutes=5),
        midnight + timedelta(minutes=10),
        midnight + timedelta(minutes=59, seconds=59),
        # nothing from 01:00 to 02:00
        midnight + timedelta(hours=2),
        midnight + timedelta(hours=2, minutes=30),
        midnight + timedelta(hours=3, minutes=15),  # in the partial last bucket
        midnight + timedelta(hours=4),  # after `until`: ignored
    ]
    with db.engine.begin() as conn:
        conn.execute(
            sa.text(f"insert into {qualified(db, 'orders')} (id, created_at) values (:id, :at)"),  # noqa: S608
            [{"id": i, "at": at.replace(tzinfo=None)} for i, at in enumerate(arrivals)],
        )
    checks = {"freshness": {"column": "created_at"}, "volume": {"column": "created_at", "period": "1h"}}
    source = make_source(db, [{"name": "orders", "checks": checks}])
    with Collector(source, statement_timeout=TIMEOUT) as collector:
        history = collector.backfill(
            source.tables[0],
            since=midnight - timedelta(minutes=20),
            until=midnight + timedelta(hours=3, minutes=20),
        )
        trips = collector.session.round_trips
    assert history.period_seconds == 3600
    assert [(p.start, p.count) for p in history.period_counts] == [
        (midnight, 3),
        (midnight + timedelta(hours=1), 0),
        (midnight + timedelta(hours=2), 2),
    ]
    assert history.update_times == [arrivals[0], arrivals[3], arrivals[5], arrivals[6]]
    assert trips == SETUP_TRIPS + CATALOG_TRIPS + 1  # one GROUP BY serves both volume and freshness


def test_sqlite_times_stored_as_iso_text_or_epoch_numbers_all_count(tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "times.db")
    ten = datetime(2026, 3, 10, 10, tzinfo=UTC)
    db.execute("create table events (at timestamp)")
    with db.engine.begin() as conn:
        conn.execute(
            sa.text("insert into events (at) values (:at)"),
            [
                {"at": "2026-03-10T11:30:00+02:00"},  # 09:30Z: the hour before
                {"at": "2026-03-10 10:15:00"},  # naive text is UTC
                {"at": int((ten + timedelta(minutes=45)).timestamp())},  # epoch seconds
                {"at": (ten + timedelta(minutes=50, seconds=30.5)).timestamp()},  # fractional epoch
                {"at": "not a time"},  # ignored, not an error
            ],
        )
    checks = {"freshness": {"column": "at"}, "volume": {"column": "at"}}
    table = only_table(
        collect(
            make_source(db, [{"name": "events", "checks": checks}]), at=ten + timedelta(hours=1, minutes=5)
        )
    )
    db.engine.dispose()
    assert table.error is None
    assert table.last_modified == ten + timedelta(minutes=50, seconds=30.5)
    assert table.row_count == 3


def test_postgres_reads_may_outlast_the_connect_timeout(pg: Any) -> None:
    # pg8000 has one socket timeout for connect and reads; the collector widens it after connecting.
    source = make_source(
        pg,
        [],
        [{"name": "slowish", "sql": "select 'OK' as status, pg_sleep(1.5)::text as pause"}],
        connect_timeout="1s",
    )
    snapshot = collect(source, timeout=timedelta(seconds=10))
    assert snapshot.sql_errors == {}
    assert [r.status for r in snapshot.sql_checks] == ["OK"]


def test_sql_the_lexer_misreads_still_cannot_run_a_second_statement(pg: Any) -> None:
    # With standard_conforming_strings off the server reads 'x\'' as one literal, while the lexer
    # (standard strings) reads two literals and accepts the text as one SELECT. Sent as written,
    # the server would commit, switch read-only off and drop the table.
    role = f"dg_{uuid.uuid4().hex[:8]}"
    victim = f'"{pg.schema}".victim'
    pg.execute(
        f"create role {role} login",
        f"alter role {role} set standard_conforming_strings = off",
        f'grant usage, create on schema "{pg.schema}" to {role}',
        f"create table {victim} (id integer)",
        f"alter table {victim} owner to {role}",
    )
    try:
        sql = (
            r"select 'x\'' as status; commit; set default_transaction_read_only = off; commit; "
            f"drop table {victim}; --'"
        )
        snapshot = collect(make_source(pg, [], [{"name": "smuggler", "sql": sql}], user=role))
        assert sa.inspect(pg.engine).has_table("victim", schema=pg.schema)
        assert "syntax error" in snapshot.sql_errors["smuggler"]
    finally:
        pg.execute(f"drop owned by {role}", f"drop role {role}")


def test_postgres_partitioned_table_estimate_is_the_sum_of_its_partitions(pg: Any) -> None:
    pg.execute(
        "create table events (id integer, at timestamp) partition by range (at)",
        "create table events_2025 partition of events for values from ('2025-01-01') to ('2026-01-01')",
        "create table events_2026 partition of events for values from ('2026-01-01') to ('2027-01-01')",
        "insert into events select g, timestamp '2025-06-01' + g * interval '1h'"
        " from generate_series(1, 300) g",
        "insert into events select g, timestamp '2026-02-01' + g * interval '1h'"
        " from generate_series(1, 200) g",
        "analyze events",
    )
    table = only_table(collect(make_source(pg, [{"name": "events", "checks": {"volume": True}}])))
    assert (table.row_count, table.row_count_method, table.round_trips) == (500, "statistics", 0)


@pytest.mark.parametrize("kind", ["postgres", "mysql"])
def test_an_unknown_host_is_source_unavailable(kind: str, request: pytest.FixtureRequest) -> None:
    db = request.getfixturevalue("pg" if kind == "postgres" else "mysql")
    source = make_source(db, [], host="no-such-host.invalid", connect_timeout="2s")
    with (
        pytest.raises(SourceUnavailable, match="source src: "),
        Collector(source, statement_timeout=TIMEOUT) as c,
    ):
        c.collect(NOW)


def test_a_connection_lost_mid_run_is_source_unavailable_and_the_next_run_reconnects(pg: Any) -> None:
    create_orders(pg, rows=2)
    application = f"dg-test-{uuid.uuid4().hex[:8]}"
    source = make_source(
        pg,
        [{"name": "orders", "checks": {"volume": {"exact": True}}}],
        options={"application_name": application},
    )
    with Collector(source, statement_timeout=TIMEOUT) as collector:
        assert only_table(collector.collect(NOW)).row_count == 2
        with pg.engine.connect() as conn:
            ended = conn.execute(
                sa.text(
                    "select count(pg_terminate_backend(pid)) from pg_stat_activity"
                    " where application_name = :a"
                ),
                {"a": application},
            ).scalar()
        assert ended == 1
        with pytest.raises(SourceUnavailable, match="source src"):
            collector.collect(NOW)
        assert only_table(collector.collect(NOW)).row_count == 2


def test_backfill_of_freshness_on_its_own_column_uses_hourly_buckets(db: Any) -> None:
    metadata = sa.MetaData(schema=db.schema)
    loads = sa.Table("loads", metadata, sa.Column("day", DateTime6), sa.Column("loaded_at", DateTime6))
    metadata.create_all(db.engine)
    six = datetime(2026, 3, 9, 6, tzinfo=UTC)
    batches = [six, six + timedelta(minutes=3), six + timedelta(days=1)]  # two rows in one hour, a day apart
    with db.engine.begin() as conn:
        conn.execute(
            loads.insert(),
            [{"day": six.replace(tzinfo=None), "loaded_at": b.replace(tzinfo=None)} for b in batches],
        )
    checks = {"freshness": {"column": "loaded_at"}, "volume": {"column": "day", "period": "1d"}}
    source = make_source(db, [{"name": "loads", "checks": checks}])
    with Collector(source, statement_timeout=TIMEOUT) as collector:
        history = collector.backfill(
            source.tables[0], since=six - timedelta(days=1), until=six + timedelta(days=2)
        )
        trips = collector.session.round_trips
    assert history.update_times == [batches[1], batches[2]]  # the latest arrival of each hour
    assert [(p.start.day, p.count) for p in history.period_counts] == [(9, 3), (10, 0)]
    assert history.period_seconds == 86400
    assert trips == SETUP_TRIPS + CATALOG_TRIPS + 2  # one GROUP BY per column


def test_backfills_of_a_check_read_the_catalog_once_and_keep_times_exact(db: Any) -> None:
    metadata = sa.MetaData(schema=db.schema)
    tables = [sa.Table(name, metadata, sa.Column("loaded_at", DateTime6)) for name in ("a", "b")]
    metadata.create_all(db.engine)
    micros = 123000 if db.kind == "sqlite" else 123457  # SQLite times: millisecond precision
    loaded = datetime(2026, 3, 9, 6, 7, 8, micros, tzinfo=UTC)
    with db.engine.begin() as conn:
        for table in tables:
            conn.execute(table.insert(), [{"loaded_at": loaded.replace(tzinfo=None)}])
    source = make_source(
        db, [{"name": t.name, "checks": {"freshness": {"column": "loaded_at"}}} for t in tables]
    )
    window = {"since": loaded - timedelta(days=1), "until": loaded + timedelta(days=1)}
    with Collector(source, statement_timeout=TIMEOUT) as collector:
        histories = [collector.backfill(table, **window) for table in source.tables]
        trips = collector.session.round_trips
    assert [h.update_times for h in histories] == [[loaded], [loaded]]
    assert trips == SETUP_TRIPS + CATALOG_TRIPS + 2  # one GROUP BY per table


def test_backfill_of_a_missing_column_raises_a_definition_error(db: Any) -> None:
    create_orders(db, rows=1)
    source = make_source(db, [{"name": "orders", "checks": {"freshness": {"column": "nope"}}}])
    with (
        pytest.raises(CheckDefinitionError, match=r"table .*orders: column nope does not exist"),
        Collector(source, statement_timeout=TIMEOUT) as collector,
    ):
        collector.backfill(source.tables[0], since=NOW - timedelta(days=1), until=NOW)


def test_backfill_starts_at_the_tables_first_row_not_at_the_window(db: Any) -> None:
    """Before its first row a table did not exist or was not loaded yet: those periods are not
    "zero rows", which would teach the baseline that nothing is normal."""
    create_orders(db, rows=0)
    first = datetime(2026, 3, 10, 5, tzinfo=UTC)
    arrivals = [first + timedelta(minutes=5), first + timedelta(hours=2, minutes=1)]
    with db.engine.begin() as conn:
        conn.execute(
            sa.text(f"insert into {qualified(db, 'orders')} (id, created_at) values (:id, :at)"),  # noqa: S608
            [{"id": i, "at": at.replace(tzinfo=None)} for i, at in enumerate(arrivals)],
        )
    source = make_source(
        db, [{"name": "orders", "checks": {"volume": {"column": "created_at", "period": "1h"}}}]
    )
    with Collector(source, statement_timeout=TIMEOUT) as collector:
        history = collector.backfill(
            source.tables[0], since=first - timedelta(days=2), until=first + timedelta(hours=4)
        )
    assert [(p.start.hour, p.count) for p in history.period_counts] == [(5, 1), (6, 0), (7, 1), (8, 0)]
