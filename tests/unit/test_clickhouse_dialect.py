"""ClickHouse without a server: type families, the lexer's string rules, error classification, the
dialect's SQL, and the adapter's reading of DateTime values (the server's tests are
tests/integration/test_collect_clickhouse.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa

from driftguard.collect import clickhouse
from driftguard.collect.connect import build_url, connect_args, lease_pool, resolve_credentials
from driftguard.collect.dialects import ClickhouseRules, rules_for
from driftguard.collect.readonly_sql import read_only_statement
from driftguard.collect.types import normalise_type
from driftguard.config import Source
from driftguard.errors import CheckDefinitionError, ConfigError, ErrorKind
from driftguard.secrets import SecretResolver


@pytest.mark.parametrize(
    ("raw", "family"),
    [
        ("UInt64", "integer"),
        ("Nullable(Int32)", "integer"),
        ("Float64", "float"),
        ("Decimal(18, 4)", "numeric"),
        ("Decimal64(4)", "numeric"),
        ("String", "text"),
        ("LowCardinality(Nullable(String))", "text"),
        ("FixedString(3)", "text"),
        ("Enum8('a' = 1, 'b' = 2)", "text"),
        ("UUID", "text"),
        ("Date", "date"),
        ("Date32", "date"),
        ("DateTime", "timestamptz"),
        ("Nullable(DateTime('Asia/Tokyo'))", "timestamptz"),
        ("DateTime64(3, 'UTC')", "timestamptz"),
        ("Bool", "boolean"),
        ("SimpleAggregateFunction(max, UInt32)", "integer"),
        ("Array(String)", "other"),
        ("Tuple(UInt8, String)", "other"),
        ("string", "other"),  # type names are case-sensitive in ClickHouse
    ],
)
def test_clickhouse_types_fall_into_their_families(raw: str, family: str) -> None:
    assert normalise_type("clickhouse", raw) == family


def test_clickhouse_strings_take_backslash_escapes_so_a_quote_inside_does_not_end_them() -> None:
    sql = r"select 'it\'s; drop table t; --' as status"
    assert read_only_statement(sql, "clickhouse", where="w") == sql
    with pytest.raises(CheckDefinitionError, match="2 statements"):
        read_only_statement(r"select 'a\\'; drop table t", "clickhouse", where="w")  # \\ ends at '


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (159, ErrorKind.TIMEOUT),
        (209, ErrorKind.TIMEOUT),
        (210, ErrorKind.UNAVAILABLE),
        (192, ErrorKind.PERMISSION),
        (516, ErrorKind.PERMISSION),
        (81, ErrorKind.CONFIG),
        (164, ErrorKind.DEFINITION),
        (60, ErrorKind.DEFINITION),
        (47, ErrorKind.DEFINITION),
        (1, ErrorKind.INTERNAL),
    ],
)
def test_clickhouse_errors_are_classified_by_code(code: int, kind: ErrorKind) -> None:
    error = clickhouse.DatabaseError("message", code)
    assert ClickhouseRules().error_kind(error) == kind
    assert ClickhouseRules().error_text(error) == f"message (code {code})"


def test_a_server_message_loses_its_stack_trace_and_a_socket_error_becomes_a_network_error() -> None:
    server = SimpleNamespace(
        code=60, message="DB::Exception: Table db.t doesn't exist.. Stack trace:\n\n0. x"
    )
    wrapped = clickhouse._wrapped(server)  # type: ignore[arg-type]
    assert (wrapped.code, wrapped.message) == (60, "Table db.t doesn't exist")
    refused = clickhouse._wrapped(ConnectionRefusedError(111, "Connection refused"))
    assert isinstance(refused, clickhouse.OperationalError) and refused.code == 210


def compiled(statement: sa.ClauseElement) -> str:
    return str(statement.compile(dialect=clickhouse.ClickhouseDialect()))


def test_the_dialect_quotes_every_identifier_with_backticks_and_has_no_boolean_literals() -> None:
    table = sa.table("we`ird", sa.column("Ts"), schema="db")
    text = compiled(sa.select(sa.literal_column("1")).select_from(table).where(sa.false()).limit(5))
    assert "FROM `db`.`we``ird`" in text
    assert "WHERE 0" in text and "LIMIT %(param_1)s" in text
    assert rules_for(clickhouse.ClickhouseDialect()).name == "clickhouse"


def test_aggregates_take_nullable_arguments_so_that_no_rows_give_null() -> None:
    table = sa.table("t", sa.column("x"))
    text = compiled(
        sa.select(
            sa.func.max(table.c.x),
            sa.func.min(table.c.x),
            sa.func.avg(table.c.x),
            sa.func.sum(table.c.x),
            sa.func.count(),
            sa.func.count(table.c.x),
            sa.func.count(sa.distinct(table.c.x)),
        )
    )
    assert text.startswith(
        "SELECT max(toNullable(`t`.`x`)) AS `max_1`, min(toNullable(`t`.`x`)) AS `min_1`, "
        "avg(toNullable(`t`.`x`)) AS `avg_1`, sum(toNullable(`t`.`x`)) AS `sum_1`, count(*) AS `count_1`, "
        "count(`t`.`x`) AS `count_2`, ifNull(count(DISTINCT `t`.`x`), 0) AS `count_3`"
    )


def test_periods_are_bucketed_in_integer_epoch_seconds_and_compared_with_instants() -> None:
    rules = ClickhouseRules()
    column = sa.column("ts")
    bucket = str(rules.bucket_start(column, 3600).compile(dialect=clickhouse.ClickhouseDialect()))
    assert bucket == "intDiv(toUInt32(toDateTime(`ts`, 'UTC')), 3600) * 3600"
    at = datetime(2026, 3, 10, 12, 0, 30, tzinfo=UTC)
    instant = rules.time_param(at, "timestamptz")
    assert instant.compile(compile_kwargs={"literal_binds": True}).string == "toDateTime(1773144030)"
    # A Date is its midnight UTC: `d >= t` and `d < t` hold as for the first day starting at or after t.
    day = rules.time_param(at, "date")
    assert day.compile(compile_kwargs={"literal_binds": True}).string == "toDate('2026-03-11')"
    midnight = rules.time_param(at.replace(hour=0, minute=0, second=0), "date")
    assert midnight.compile(compile_kwargs={"literal_binds": True}).string == "toDate('2026-03-10')"


class FakeClient:
    """A clickhouse_driver.Client stand-in: the server's zone and one canned result."""

    def __init__(self, zone: str, rows: list[tuple[Any, ...]], columns: list[tuple[str, str]]) -> None:
        self.connection = SimpleNamespace(
            server_info=SimpleNamespace(get_timezone=lambda: zone),
            send_receive_timeout=10,
            connected=False,
            socket=None,
        )
        self.result = (rows, columns)
        self.sent: list[tuple[str, Any, dict[str, Any]]] = []

    def execute(self, query: str, params: Any, *, with_column_types: bool, settings: dict[str, Any]) -> Any:
        self.sent.append((query, params, settings))
        return self.result

    def disconnect(self) -> None:
        pass


def test_naive_datetimes_are_read_in_the_servers_zone_and_every_query_is_read_only_and_bounded() -> None:
    winter = datetime(2026, 1, 15, 13, 0)  # Berlin wall clock, UTC+1 in January
    client = FakeClient(
        "Europe/Berlin",
        [(winter, datetime(2026, 1, 15, 21, 0, tzinfo=UTC), winter.date(), None)],
        [("a", "DateTime"), ("b", "DateTime('UTC')"), ("c", "Date"), ("d", "Nullable(DateTime)")],
    )
    connection = clickhouse.Connection(client)
    cursor = connection.cursor()
    cursor.execute("SELECT 1")
    assert client.sent[-1] == ("SELECT 1", None, {"readonly": 1})
    connection.set_statement_timeout(timedelta(seconds=2.5))
    cursor.execute("SELECT %(x)s", {"x": 1})
    assert client.sent[-1] == ("SELECT %(x)s", {"x": 1}, {"readonly": 1, "max_execution_time": 3})
    assert client.connection.send_receive_timeout == 12.5
    assert cursor.fetchall() == [
        (
            datetime(2026, 1, 15, 12, 0, tzinfo=UTC),
            datetime(2026, 1, 15, 21, 0, tzinfo=UTC),
            winter.date(),
            None,
        )
    ]
    with pytest.raises(clickhouse.ProgrammingError, match="positional"):
        cursor.execute("SELECT %s", (1,))


def ch_source(**options: str) -> Source:
    connection = {"host": "ch.internal", "database": "analytics", "user": "dg", "options": options}
    return Source.model_validate({"name": "events", "kind": "clickhouse", "connection": connection})


def test_a_clickhouse_source_connects_natively_on_port_9000_with_its_timeout_and_tls_options() -> None:
    source = ch_source(secure="true", ca_certs="/etc/ssl/ca.pem", verify="false")
    url = build_url(source, resolve_credentials(source, SecretResolver(environ={})))
    assert (url.drivername, url.host, url.port, url.database, url.username) == (
        "clickhouse+native",
        "ch.internal",
        9000,
        "analytics",
        "dg",
    )
    assert connect_args(source) == {
        "connect_timeout": source.connection.connect_timeout.total_seconds(),
        "secure": True,
        "ca_certs": "/etc/ssl/ca.pem",
        "verify": False,
    }
    with pytest.raises(ConfigError, match=r"connection.options sslmode not supported for clickhouse"):
        connect_args(ch_source(sslmode="require"))


def test_a_clickhouse_source_without_its_driver_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "clickhouse_driver" else real(name, *a)
    )
    with pytest.raises(
        ConfigError, match=r"source events: a clickhouse source needs clickhouse_driver.*\[clickhouse\]"
    ):
        lease_pool(ch_source(), resolver=SecretResolver(environ={}))
