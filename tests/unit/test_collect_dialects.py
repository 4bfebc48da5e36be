"""Per-dialect rules: session setup text and error classification by driver error codes."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pg8000.exceptions
import pymysql.err
import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import mysql, postgresql

from driftguard.collect.dialects import (
    Catalog,
    CatalogRow,
    DialectRules,
    MysqlRules,
    PostgresRules,
    SqliteRules,
)
from driftguard.errors import ErrorKind


def rendered(statement: sa.Executable, dialect: sa.Dialect) -> str:
    assert isinstance(statement, sa.ClauseElement)
    return str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def test_mariadb_and_mysql_get_their_own_timeout_variable_and_unit() -> None:
    mariadb = rendered(MysqlRules(is_mariadb=True).setup_statement(timedelta(seconds=1.5)), mysql.dialect())
    assert "max_statement_time = 1.5" in mariadb and "tx_read_only = 1" in mariadb
    oracle_mysql = rendered(
        MysqlRules(is_mariadb=False).setup_statement(timedelta(seconds=1.5)), mysql.dialect()
    )
    assert "max_execution_time = 1500" in oracle_mysql and "transaction_read_only = 1" in oracle_mysql
    assert all("time_zone = '+00:00'" in s for s in (mariadb, oracle_mysql))


def test_postgres_setup_is_one_select_of_set_config() -> None:
    text = rendered(PostgresRules().setup_statement(timedelta(milliseconds=2500)), postgresql.dialect())
    assert text.count("set_config(") == 3
    assert "'statement_timeout', '2500'" in text and "'default_transaction_read_only', 'on'" in text


def pg_error(code: str) -> Exception:
    return pg8000.exceptions.DatabaseError({"S": "ERROR", "C": code, "M": f"server says {code}"})


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("28P01", ErrorKind.PERMISSION),  # wrong password
        ("42501", ErrorKind.PERMISSION),  # no privilege
        ("57014", ErrorKind.TIMEOUT),  # statement_timeout
        ("42P01", ErrorKind.DEFINITION),  # no such table
        ("42703", ErrorKind.DEFINITION),  # no such column
        ("25006", ErrorKind.DEFINITION),  # tried to write
        ("53300", ErrorKind.UNAVAILABLE),  # too many connections
        ("57P03", ErrorKind.UNAVAILABLE),  # cannot connect now
        ("08006", ErrorKind.UNAVAILABLE),  # connection failure
        ("3D000", ErrorKind.CONFIG),  # no such database
        ("XX000", ErrorKind.INTERNAL),
    ],
)
def test_postgres_errors_are_classified_by_sqlstate(code: str, kind: ErrorKind) -> None:
    rules = PostgresRules()
    assert rules.error_kind(pg_error(code)) == kind
    assert rules.error_text(pg_error(code)) == f"server says {code} (SQLSTATE {code})"


def test_pg8000_interface_errors_mean_the_server_cannot_be_reached() -> None:
    refused = pg8000.exceptions.InterfaceError("Can't create a connection to host db and port 5432")
    assert PostgresRules().error_kind(refused) == ErrorKind.UNAVAILABLE


@pytest.mark.parametrize(
    ("errno", "kind"),
    [
        (1045, ErrorKind.PERMISSION),
        (1142, ErrorKind.PERMISSION),
        (2003, ErrorKind.UNAVAILABLE),
        (1040, ErrorKind.UNAVAILABLE),
        (1146, ErrorKind.DEFINITION),
        (1054, ErrorKind.DEFINITION),
        (1969, ErrorKind.TIMEOUT),
        (3024, ErrorKind.TIMEOUT),
        (1049, ErrorKind.CONFIG),
        (9999, ErrorKind.INTERNAL),
    ],
)
def test_mysql_errors_are_classified_by_errno(errno: int, kind: ErrorKind) -> None:
    error = pymysql.err.OperationalError(errno, "server says no")
    rules = MysqlRules(is_mariadb=True)
    assert rules.error_kind(error) == kind
    assert rules.error_text(error) == f"server says no (error {errno})"


def sqlite_error(tmp_path: Path, sql: str | None) -> sqlite3.Error:
    try:
        if sql is None:
            sqlite3.connect(f"file:{tmp_path / 'missing.db'}?mode=ro", uri=True)
        else:
            sqlite3.connect(":memory:").execute(sql)
    except sqlite3.Error as e:
        return e
    raise AssertionError("expected an error")


def test_sqlite_errors_are_classified_by_result_code(tmp_path: Path) -> None:
    rules: DialectRules = SqliteRules()
    assert rules.error_kind(sqlite_error(tmp_path, "select * from nope")) == ErrorKind.DEFINITION
    assert rules.error_kind(sqlite_error(tmp_path, None)) == ErrorKind.UNAVAILABLE


_names = st.sampled_from(["orders", "Orders", "ORDERS", "items", "public", "Public", "app"])


@given(
    rows=st.lists(st.tuples(_names, _names, st.sampled_from(["id", "ts", None])), max_size=30),
    schema=_names,
    table=_names,
    fold=st.booleans(),
)
def test_a_catalogs_rows_of_one_table_are_what_a_scan_finds(
    rows: list[tuple[str, str, str | None]], schema: str, table: str, fold: bool
) -> None:
    """The index answers as the scan of every row it replaced: exact names first, and only where none
    match exactly, names compared case-insensitively when the engine folds them."""
    catalog = Catalog([CatalogRow(s, t, c, "integer", True, None) for s, t, c in rows], "public")
    exact = [r for r in catalog.rows if r.schema == schema and r.table == table]
    folded = [
        r for r in catalog.rows if r.schema.lower() == schema.lower() and r.table.lower() == table.lower()
    ]
    expected = exact or (folded if fold else [])
    assert catalog.of(schema, table, fold=fold) == expected
    assert catalog.of(schema, table, fold=fold) == expected  # asked again, from the index
