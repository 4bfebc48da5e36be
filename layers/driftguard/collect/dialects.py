"""What differs between PostgreSQL, MySQL/MariaDB, SQLite, DuckDB and ClickHouse, in one place per dialect.

Each `DialectRules` knows: the session setup statement (read-only, statement timeout, UTC), how
to start an explicitly read-only transaction, how its driver reports errors (SQLSTATE, errno,
SQLite result code) and what they mean, the catalog query that reads the schema and the
row-count statistics of all configured tables in one round trip, and the SQL expression of a
timestamp as epoch seconds (for period buckets).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from functools import cached_property
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from driftguard.collect.changes import change_marker
from driftguard.collect.types import Dialect
from driftguard.errors import ErrorKind
from driftguard.model import utc


@dataclass(frozen=True)
class CatalogRow:
    """One column of one table as the catalog reports it, with the table's row estimate."""

    schema: str
    table: str
    column: str | None  # None for a table without (visible) columns
    raw_type: str
    nullable: bool
    row_estimate: float | None  # engine statistics; None where the engine has none
    change_marker: int | None = None  # collect.changes: equal markers mean no writes in between


@dataclass(frozen=True)
class Catalog:
    rows: list[CatalogRow]
    default_schema: str  # what an unqualified table name resolves to

    def of(self, schema: str, table: str, *, fold: bool) -> list[CatalogRow]:
        """The rows of one table, in catalog order; with `fold`, names compared case-insensitively
        when no row matches exactly (MySQL and SQLite). Indexed on first use: a source of 500
        tables asked the whole catalog once per table (2,000 rows, 0.19 s a run)."""
        exact = self._exact.get((schema, table))
        if exact or not fold:
            return exact or []
        return self._folded.get((schema.lower(), table.lower()), [])

    @cached_property
    def _exact(self) -> dict[tuple[str, str], list[CatalogRow]]:
        return _grouped(self.rows, lambda r: (r.schema, r.table))

    @cached_property
    def _folded(self) -> dict[tuple[str, str], list[CatalogRow]]:
        return _grouped(self.rows, lambda r: (r.schema.lower(), r.table.lower()))


def _grouped(
    rows: list[CatalogRow], key: Callable[[CatalogRow], tuple[str, str]]
) -> dict[tuple[str, str], list[CatalogRow]]:
    grouped: dict[tuple[str, str], list[CatalogRow]] = {}
    for row in rows:
        grouped.setdefault(key(row), []).append(row)
    return grouped


class DialectRules:
    name: ClassVar[Dialect]
    # None: the driver's own transaction (SQLAlchemy's autobegin) is the explicit one
    begin_read_only: ClassVar[str | None] = "START TRANSACTION READ ONLY"
    has_statistics: ClassVar[bool] = True
    has_percentile_cont: ClassVar[bool] = False
    interrupts: ClassVar[bool] = False  # True: no server-side timeout; the session interrupts instead
    catalog_sql: ClassVar[str]

    def setup_statement(self, timeout: timedelta) -> sa.Executable:
        """One statement that makes every later transaction of the session read-only, bounds each
        statement by `timeout` and reads times in UTC."""
        raise NotImplementedError

    def error_kind(self, driver_error: BaseException) -> ErrorKind:
        raise NotImplementedError

    def error_text(self, driver_error: BaseException) -> str:
        return str(driver_error)

    def epoch_seconds(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        raise NotImplementedError

    def bucket_start(self, column: ColumnElement[Any], seconds: int) -> ColumnElement[Any]:
        """floor(epoch(column) / seconds) * seconds."""
        step: ColumnElement[Any] = sa.literal_column(str(int(seconds)))
        return sa.func.floor(self.epoch_seconds(column) / step) * step

    def comparable_time(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        """The expression compared with `time_param` values and aggregated by max()."""
        return column

    def latest_time(self, value: ColumnElement[Any]) -> ColumnElement[Any]:
        """max() of a `comparable_time`, in a form `to_utc_datetime` reads (backfill reads thousands)."""
        return sa.func.max(value)

    def time_param(self, at: datetime, family: str) -> Any:
        """`at` as a parameter compared with `comparable_time` of a column of `family`."""
        if family == "timestamptz":
            return utc(at)
        return utc(at).replace(tzinfo=None)  # timestamp/date columns hold UTC wall-clock times

    def read_catalog(self, connection_rows: Sequence[Sequence[Any]]) -> Catalog:
        rows = [
            CatalogRow(
                schema=r[0],
                table=r[1],
                column=r[2],
                raw_type=r[3] or "",
                nullable=bool(r[4]),
                row_estimate=self._row_estimate(r[5], r[6]),
                change_marker=change_marker([r[8]]) if len(r) > 8 else None,
            )
            for r in connection_rows
        ]
        default_schema = connection_rows[0][7] if connection_rows else ""
        return Catalog(rows=rows, default_schema=default_schema)

    def catalog_query(self, names: list[str], schemas: list[str]) -> sa.TextClause:
        return sa.text(self.catalog_sql).bindparams(
            sa.bindparam("names", value=names, expanding=True),
            sa.bindparam("schemas", value=schemas or [""], expanding=True),
        )

    def _row_estimate(self, primary: Any, fallback: Any) -> float | None:
        return None if primary is None else float(primary)


class PostgresRules(DialectRules):
    name = "postgresql"
    has_percentile_cont = True
    # pg_catalog rather than information_schema: the latter hides tables the user may not
    # read, which would turn "permission denied" into "does not exist". A partitioned table has
    # no statistics of its own: its estimate is the sum of its partitions'. The last column is
    # what collect.changes hashes into a plain table's change marker (write counters, relfilenode).
    catalog_sql = """
        SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
               CASE WHEN c.relkind = 'p' THEN (
                   SELECT sum(CASE WHEN ch.reltuples >= 0 THEN ch.reltuples ELSE cs.n_live_tup END)
                   FROM pg_catalog.pg_inherits i
                   JOIN pg_catalog.pg_class ch ON ch.oid = i.inhrelid
                   LEFT JOIN pg_catalog.pg_stat_all_tables cs ON cs.relid = ch.oid
                   WHERE i.inhparent = c.oid
               ) ELSE c.reltuples END,
               s.n_live_tup, current_schema(),
               CASE WHEN c.relkind = 'r' AND s.relid IS NOT NULL THEN
                   concat_ws(':', s.n_tup_ins, s.n_tup_upd, s.n_tup_del, c.relfilenode)
               END
        FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        LEFT JOIN pg_catalog.pg_stat_all_tables s ON s.relid = c.oid
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND c.relname IN :names
          AND (n.nspname IN :schemas OR n.nspname = current_schema())
        ORDER BY n.nspname, c.relname, a.attnum
    """

    # SQLSTATE classes (https://www.postgresql.org/docs/current/errcodes-appendix.html)
    _EXACT: ClassVar[dict[str, ErrorKind]] = {
        "42501": ErrorKind.PERMISSION,  # insufficient_privilege
        "57014": ErrorKind.TIMEOUT,  # query_canceled (statement_timeout)
        "55P03": ErrorKind.TIMEOUT,  # lock_not_available
        "3D000": ErrorKind.CONFIG,  # invalid_catalog_name: the database does not exist
    }
    _BY_CLASS: ClassVar[dict[str, ErrorKind]] = {
        "08": ErrorKind.UNAVAILABLE,  # connection exception
        "53": ErrorKind.UNAVAILABLE,  # insufficient resources, e.g. 53300 too_many_connections
        "57": ErrorKind.UNAVAILABLE,  # operator intervention: shutdown, cannot_connect_now
        "40": ErrorKind.UNAVAILABLE,  # transaction rollback (serialization, deadlock): try again
        "28": ErrorKind.PERMISSION,  # invalid authorization, e.g. 28P01 wrong password
        "42": ErrorKind.DEFINITION,  # 42P01 undefined_table, 42703 undefined_column, syntax
        "22": ErrorKind.DEFINITION,  # data exception
        "25": ErrorKind.DEFINITION,  # 25006 read_only_sql_transaction: the check tried to write
        "3F": ErrorKind.DEFINITION,  # invalid_schema_name
        "0A": ErrorKind.DEFINITION,  # feature_not_supported
    }

    def setup_statement(self, timeout: timedelta) -> sa.Executable:
        milliseconds = str(max(1, int(timeout.total_seconds() * 1000)))
        return sa.select(
            sa.func.set_config("statement_timeout", milliseconds, False),
            sa.func.set_config("default_transaction_read_only", "on", False),
            sa.func.set_config("TimeZone", "UTC", False),
        )

    def error_kind(self, driver_error: BaseException) -> ErrorKind:
        code = self._sqlstate(driver_error)
        if code is None:  # pg8000 InterfaceError: socket refused, DNS, network error
            return ErrorKind.UNAVAILABLE if _is_interface_error(driver_error) else ErrorKind.INTERNAL
        return self._EXACT.get(code) or self._BY_CLASS.get(code[:2], ErrorKind.INTERNAL)

    def error_text(self, driver_error: BaseException) -> str:
        fields = driver_error.args[0] if driver_error.args else None
        if isinstance(fields, dict) and "M" in fields:
            return f"{fields['M']} (SQLSTATE {fields.get('C')})"
        return str(driver_error)

    @staticmethod
    def _sqlstate(driver_error: BaseException) -> str | None:
        fields = driver_error.args[0] if driver_error.args else None
        return str(fields["C"]) if isinstance(fields, dict) and "C" in fields else None

    def epoch_seconds(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        # date_part() returns float8 directly; extract() returns numeric on PostgreSQL 14+, and a
        # cast of it per row is most of a backfill's bucketing cost. pg8000 also reads a float8
        # without building a Decimal.
        return sa.func.date_part(sa.literal_column("'epoch'"), column, type_=sa.Double)

    def latest_time(self, value: ColumnElement[Any]) -> ColumnElement[Any]:
        # pg8000 parses each timestamptz with datetime.strptime: a backfill's thousands of bucket
        # times read about 2.5x faster as float8 epoch seconds, and as exactly: a double near today's
        # epoch is within 0.25 microseconds, so rounding to the microsecond gives the stored time back.
        return self.epoch_seconds(sa.func.max(value))

    def _row_estimate(self, primary: Any, fallback: Any) -> float | None:
        # reltuples is -1 until the table is first vacuumed or analysed (PostgreSQL 14+).
        if primary is not None and float(primary) >= 0:
            return float(primary)
        return None if fallback is None else float(fallback)


class MysqlRules(DialectRules):
    name = "mysql"
    catalog_sql = """
        SELECT t.table_schema, t.table_name, c.column_name, c.column_type, c.is_nullable = 'YES',
               t.table_rows, NULL, DATABASE()
        FROM information_schema.tables t
        LEFT JOIN information_schema.columns c
          ON c.table_schema = t.table_schema AND c.table_name = t.table_name
        WHERE t.table_name IN :names AND (t.table_schema IN :schemas OR t.table_schema = DATABASE())
        ORDER BY t.table_schema, t.table_name, c.ordinal_position
    """

    _ERRNO: ClassVar[dict[int, ErrorKind]] = {
        1044: ErrorKind.PERMISSION,  # access denied to database
        1045: ErrorKind.PERMISSION,  # access denied (wrong password)
        1130: ErrorKind.PERMISSION,  # host not allowed to connect
        1142: ErrorKind.PERMISSION,  # command denied on table
        1143: ErrorKind.PERMISSION,  # command denied on column
        1227: ErrorKind.PERMISSION,  # needs a privilege
        1370: ErrorKind.PERMISSION,  # routine access denied
        1698: ErrorKind.PERMISSION,  # access denied (auth plugin)
        1040: ErrorKind.UNAVAILABLE,  # too many connections
        1053: ErrorKind.UNAVAILABLE,  # server shutdown in progress
        1129: ErrorKind.UNAVAILABLE,  # host blocked
        1203: ErrorKind.UNAVAILABLE,  # max_user_connections
        2002: ErrorKind.UNAVAILABLE,  # cannot connect (socket)
        2003: ErrorKind.UNAVAILABLE,  # cannot connect (TCP refused, DNS)
        2005: ErrorKind.UNAVAILABLE,  # unknown host
        2006: ErrorKind.UNAVAILABLE,  # server has gone away
        2013: ErrorKind.UNAVAILABLE,  # lost connection during query
        1969: ErrorKind.TIMEOUT,  # MariaDB max_statement_time exceeded
        3024: ErrorKind.TIMEOUT,  # MySQL max_execution_time exceeded
        1317: ErrorKind.TIMEOUT,  # query interrupted
        1205: ErrorKind.TIMEOUT,  # lock wait timeout
        1049: ErrorKind.CONFIG,  # unknown database
        1146: ErrorKind.DEFINITION,  # table does not exist
        1054: ErrorKind.DEFINITION,  # unknown column
        1064: ErrorKind.DEFINITION,  # syntax error
        1305: ErrorKind.DEFINITION,  # function does not exist
        1792: ErrorKind.DEFINITION,  # write in a READ ONLY transaction
    }

    def __init__(self, *, is_mariadb: bool) -> None:
        self.is_mariadb = is_mariadb

    def setup_statement(self, timeout: timedelta) -> sa.Executable:
        if self.is_mariadb:  # max_statement_time is in seconds; tx_read_only is MariaDB's name
            return sa.text(
                "SET SESSION max_statement_time = :limit, SESSION tx_read_only = 1, "
                "SESSION time_zone = '+00:00'"
            ).bindparams(limit=timeout.total_seconds())
        return sa.text(  # MySQL: max_execution_time is in milliseconds and bounds SELECTs
            "SET SESSION max_execution_time = :limit, SESSION transaction_read_only = 1, "
            "SESSION time_zone = '+00:00'"
        ).bindparams(limit=max(1, int(timeout.total_seconds() * 1000)))

    def error_kind(self, driver_error: BaseException) -> ErrorKind:
        errno = driver_error.args[0] if driver_error.args else None
        if isinstance(errno, int):
            return self._ERRNO.get(errno, ErrorKind.INTERNAL)
        return ErrorKind.UNAVAILABLE if _is_interface_error(driver_error) else ErrorKind.INTERNAL

    def error_text(self, driver_error: BaseException) -> str:
        if len(driver_error.args) >= 2 and isinstance(driver_error.args[0], int):
            return f"{driver_error.args[1]} (error {driver_error.args[0]})"
        return str(driver_error)

    def epoch_seconds(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        # TIMESTAMPDIFF rather than UNIX_TIMESTAMP: no 2038 limit, and DATETIME is taken as UTC.
        return sa.func.timestampdiff(sa.literal_column("SECOND"), sa.literal("1970-01-01 00:00:00"), column)

    def time_param(self, at: datetime, family: str) -> Any:
        return utc(at).replace(tzinfo=None)  # PyMySQL would render an offset MySQL does not parse


class SqliteRules(DialectRules):
    name = "sqlite"
    begin_read_only = "BEGIN"  # the file is opened read-only and query_only is on
    has_statistics = False
    catalog_sql = """
        SELECT 'main', m.name, p.name, p.type, NOT p."notnull", NULL, NULL, 'main'
        FROM sqlite_master m JOIN pragma_table_xinfo(m.name) p
        WHERE m.type IN ('table', 'view') AND m.name IN :names AND p.hidden IN (0, 2, 3)
        ORDER BY m.name, p.cid
    """

    # Primary result codes (https://sqlite.org/rescode.html); extended codes keep them in the low byte.
    _CODES: ClassVar[dict[int, ErrorKind]] = {
        1: ErrorKind.DEFINITION,  # SQLITE_ERROR: no such table/column, syntax
        5: ErrorKind.UNAVAILABLE,  # SQLITE_BUSY
        6: ErrorKind.UNAVAILABLE,  # SQLITE_LOCKED
        8: ErrorKind.DEFINITION,  # SQLITE_READONLY: the check tried to write
        9: ErrorKind.TIMEOUT,  # SQLITE_INTERRUPT: our progress handler stopped it
        14: ErrorKind.UNAVAILABLE,  # SQLITE_CANTOPEN
        23: ErrorKind.PERMISSION,  # SQLITE_AUTH
        26: ErrorKind.UNAVAILABLE,  # SQLITE_NOTADB
    }

    def setup_statement(self, timeout: timedelta) -> sa.Executable:
        return sa.text("PRAGMA query_only = 1")  # the timeout is a progress handler (see session)

    def catalog_query(self, names: list[str], schemas: list[str]) -> sa.TextClause:
        # One attached database ("main"); a table configured with another schema is not found.
        return sa.text(self.catalog_sql).bindparams(sa.bindparam("names", value=names, expanding=True))

    def error_kind(self, driver_error: BaseException) -> ErrorKind:
        code = getattr(driver_error, "sqlite_errorcode", None)
        if isinstance(code, int):
            return self._CODES.get(code & 0xFF, ErrorKind.INTERNAL)
        return ErrorKind.INTERNAL

    def epoch_seconds(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        # SQLite keeps times as ISO-8601 text or as epoch numbers; julianday() parses the text
        # (including a trailing offset) and 2440587.5 is the Julian day of 1970-01-01T00:00Z.
        # Rounded to the millisecond, SQLite's own time precision, to drop float noise.
        return sa.case(
            (sa.func.typeof(column).in_(("integer", "real")), column),
            else_=sa.func.round((sa.func.julianday(column) - 2440587.5) * 86400.0, 3),
        )

    def comparable_time(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        return self.epoch_seconds(column)

    def time_param(self, at: datetime, family: str) -> Any:
        return utc(at).timestamp()

    def bucket_start(self, column: ColumnElement[Any], seconds: int) -> ColumnElement[Any]:
        # No floor() without SQLite's optional math functions; CAST truncates, which equals
        # floor for the non-negative epochs a backfill window covers.
        step: ColumnElement[Any] = sa.literal_column(str(int(seconds)))
        return sa.cast(self.epoch_seconds(column) / step, sa.Integer) * step


class DuckdbRules(DialectRules):
    name = "duckdb"
    # duckdb-engine begins a transaction on SQLAlchemy's autobegin (it has no autocommit
    # isolation level); the file is opened with read_only=True, so that transaction only reads.
    begin_read_only = None
    has_percentile_cont = True
    interrupts = True  # no statement timeout setting: the session interrupts past the deadline
    # duckdb_columns() lists the columns of tables and views; duckdb_tables().estimated_size is
    # the row count DuckDB keeps per table (views have none).
    catalog_sql = """
        SELECT c.schema_name, c.table_name, c.column_name, c.data_type, c.is_nullable,
               t.estimated_size, NULL, current_schema()
        FROM duckdb_columns() c
        LEFT JOIN duckdb_tables() t
          ON t.database_name = c.database_name AND t.schema_name = c.schema_name
         AND t.table_name = c.table_name
        WHERE c.database_name = current_database() AND c.table_name IN :names
          AND (c.schema_name IN :schemas OR c.schema_name = current_schema())
        ORDER BY c.schema_name, c.table_name, c.column_index
    """

    # duckdb's exception classes, by name: the dialect module must load without the driver.
    _BY_TYPE: ClassVar[dict[str, ErrorKind]] = {
        "InterruptException": ErrorKind.TIMEOUT,  # the session's deadline interrupted it
        "CatalogException": ErrorKind.DEFINITION,  # no such table/column
        "BinderException": ErrorKind.DEFINITION,
        "ParserException": ErrorKind.DEFINITION,
        "ConversionException": ErrorKind.DEFINITION,
        "InvalidInputException": ErrorKind.DEFINITION,  # e.g. a write on a read-only database
        "NotImplementedException": ErrorKind.DEFINITION,
        "PermissionException": ErrorKind.PERMISSION,
        "IOException": ErrorKind.UNAVAILABLE,  # the file is missing, unreadable or locked by a writer
        "ConnectionException": ErrorKind.UNAVAILABLE,
        "OutOfMemoryException": ErrorKind.UNAVAILABLE,
    }

    def setup_statement(self, timeout: timedelta) -> sa.Executable:
        return sa.text("SET TimeZone = 'UTC'")

    def error_kind(self, driver_error: BaseException) -> ErrorKind:
        for cls in type(driver_error).__mro__:
            if cls.__name__ in self._BY_TYPE:
                return self._BY_TYPE[cls.__name__]
        return ErrorKind.INTERNAL

    def epoch_seconds(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        # epoch() of a TIMESTAMP reads it as UTC; of a DATE, its midnight.
        return sa.cast(sa.func.epoch(column), sa.Double)


class ClickhouseRules(DialectRules):
    name = "clickhouse"
    # No transactions: every query carries readonly=1 (collect.clickhouse), which refuses writes,
    # DDL, SET and a query's own SETTINGS clause.
    begin_read_only = None
    # system.columns lists the columns in table order; a MergeTree table's row count is the sum of
    # its active parts' rows (exact for plain MergeTree, an estimate for the collapsing and replacing
    # engines until parts merge). Other engines (Memory, Log, views) and empty tables have no parts:
    # no estimate, so volume counts them. `has_parts` tells a table without parts from one whose
    # parts hold 0 rows (an unmatched ANY LEFT JOIN fills defaults, not NULLs, on old servers).
    catalog_sql = """
        SELECT c.database, c.table, c.name, c.type, startsWith(c.type, 'Nullable('),
               if(has_parts = 1, toNullable(part_rows), NULL), NULL, currentDatabase()
        FROM system.columns AS c
        ANY LEFT JOIN (
            SELECT database, table, sum(rows) AS part_rows, toUInt8(1) AS has_parts
            FROM system.parts WHERE active GROUP BY database, table
        ) AS p USING (database, table)
        WHERE c.table IN :names AND (c.database IN :schemas OR c.database = currentDatabase())
    """

    # ClickHouse error codes (src/Common/ErrorCodes.cpp); 209/210/32 are clickhouse-driver's own
    # for a socket timeout, a refused or lost connection and a read past the end of the stream.
    _CODES: ClassVar[dict[int, ErrorKind]] = {
        159: ErrorKind.TIMEOUT,  # TIMEOUT_EXCEEDED: max_execution_time
        160: ErrorKind.TIMEOUT,  # TOO_SLOW
        209: ErrorKind.TIMEOUT,  # SOCKET_TIMEOUT: the server did not answer past the grace
        394: ErrorKind.TIMEOUT,  # QUERY_WAS_CANCELLED
        32: ErrorKind.UNAVAILABLE,  # ATTEMPT_TO_READ_AFTER_EOF: the server closed the connection
        210: ErrorKind.UNAVAILABLE,  # NETWORK_ERROR: refused, DNS, reset
        202: ErrorKind.UNAVAILABLE,  # TOO_MANY_SIMULTANEOUS_QUERIES
        203: ErrorKind.UNAVAILABLE,  # NO_FREE_CONNECTION
        241: ErrorKind.UNAVAILABLE,  # MEMORY_LIMIT_EXCEEDED
        242: ErrorKind.UNAVAILABLE,  # TABLE_IS_READ_ONLY (replica lost ZooKeeper)
        252: ErrorKind.UNAVAILABLE,  # TOO_MANY_PARTS
        192: ErrorKind.PERMISSION,  # UNKNOWN_USER
        193: ErrorKind.PERMISSION,  # WRONG_PASSWORD
        194: ErrorKind.PERMISSION,  # REQUIRED_PASSWORD
        195: ErrorKind.PERMISSION,  # IP_ADDRESS_NOT_ALLOWED
        291: ErrorKind.PERMISSION,  # DATABASE_ACCESS_DENIED
        497: ErrorKind.PERMISSION,  # ACCESS_DENIED
        516: ErrorKind.PERMISSION,  # AUTHENTICATION_FAILED
        81: ErrorKind.CONFIG,  # UNKNOWN_DATABASE
        164: ErrorKind.DEFINITION,  # READONLY: the check tried to write or change a setting
        60: ErrorKind.DEFINITION,  # UNKNOWN_TABLE
        16: ErrorKind.DEFINITION,  # NO_SUCH_COLUMN_IN_TABLE
        47: ErrorKind.DEFINITION,  # UNKNOWN_IDENTIFIER
        46: ErrorKind.DEFINITION,  # UNKNOWN_FUNCTION
        62: ErrorKind.DEFINITION,  # SYNTAX_ERROR
        43: ErrorKind.DEFINITION,  # ILLEGAL_TYPE_OF_ARGUMENT
        44: ErrorKind.DEFINITION,  # ILLEGAL_COLUMN
        42: ErrorKind.DEFINITION,  # NUMBER_OF_ARGUMENTS_DOESNT_MATCH
        53: ErrorKind.DEFINITION,  # TYPE_MISMATCH
        36: ErrorKind.DEFINITION,  # BAD_ARGUMENTS
        48: ErrorKind.DEFINITION,  # NOT_IMPLEMENTED
        215: ErrorKind.DEFINITION,  # NOT_AN_AGGREGATE
        184: ErrorKind.DEFINITION,  # ILLEGAL_AGGREGATION
        352: ErrorKind.DEFINITION,  # AMBIGUOUS_COLUMN_NAME
        386: ErrorKind.DEFINITION,  # NO_COMMON_TYPE
        6: ErrorKind.DEFINITION,  # CANNOT_PARSE_TEXT
        38: ErrorKind.DEFINITION,  # CANNOT_PARSE_DATE
        41: ErrorKind.DEFINITION,  # CANNOT_PARSE_DATETIME
        70: ErrorKind.DEFINITION,  # CANNOT_CONVERT_TYPE
    }

    def setup_statement(self, timeout: timedelta) -> sa.Executable:
        from driftguard.collect.clickhouse import session_setup

        return session_setup(timeout)

    def error_kind(self, driver_error: BaseException) -> ErrorKind:
        if type(driver_error).__name__ == "SettingsRefused":  # the user's profile: the operator's to fix
            return ErrorKind.CONFIG
        code = getattr(driver_error, "code", None)
        if isinstance(code, int):
            return self._CODES.get(code, ErrorKind.INTERNAL)
        return ErrorKind.UNAVAILABLE if _is_interface_error(driver_error) else ErrorKind.INTERNAL

    def error_text(self, driver_error: BaseException) -> str:
        code = getattr(driver_error, "code", None)
        return f"{driver_error} (code {code})" if isinstance(code, int) else str(driver_error)

    def epoch_seconds(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        # toDateTime(x, 'UTC') keeps a DateTime's instant and reads a Date as its midnight UTC.
        return sa.func.toUInt32(sa.func.toDateTime(column, sa.literal_column("'UTC'")))

    def bucket_start(self, column: ColumnElement[Any], seconds: int) -> ColumnElement[Any]:
        step: ColumnElement[Any] = sa.literal_column(str(int(seconds)))
        return sa.func.intDiv(self.epoch_seconds(column), step) * step

    def latest_time(self, value: ColumnElement[Any]) -> ColumnElement[Any]:
        return self.epoch_seconds(sa.func.max(value))  # integer epoch seconds: no zone to get wrong

    def time_param(self, at: datetime, family: str) -> Any:
        # The column itself is compared (so the table's sort key serves the range) with an instant:
        # toDateTime(epoch seconds) is the same instant whatever the server's zone. A Date is read
        # as its midnight UTC: d >= t and d < t both hold as for the first day starting at or after t.
        instant = utc(at)
        if family == "date":
            day = instant.date() if instant.time() == time(0) else instant.date() + timedelta(days=1)
            return sa.func.toDate(sa.literal(day.isoformat()))
        return sa.func.toDateTime(sa.literal(math.floor(instant.timestamp())))


def _is_interface_error(driver_error: BaseException) -> bool:
    return type(driver_error).__name__ == "InterfaceError"


def rules_for(dialect: sa.Dialect) -> DialectRules:
    """The rules of a SQLAlchemy dialect (after the first connect it knows MariaDB from MySQL)."""
    name = dialect.name
    if name == "postgresql":
        return PostgresRules()
    if name in ("mysql", "mariadb"):
        return MysqlRules(is_mariadb=bool(getattr(dialect, "is_mariadb", False)))
    if name == "sqlite":
        return SqliteRules()
    if name == "duckdb":
        return DuckdbRules()
    if name == "clickhouse":
        return ClickhouseRules()
    raise ValueError(f"unsupported SQL dialect {name!r}")
