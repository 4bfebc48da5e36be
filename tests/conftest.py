"""Shared fixtures: real PostgreSQL and MariaDB, each test in its own schema/database.

Outside CI a missing server skips its tests with a loud reason; under CI (CI=true) a missing
server is a failure, because CI must exercise the real databases.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from hypothesis import settings

# No per-example deadline: on a loaded 2-core CI machine a slow example is not a bug, and speed is
# measured by the benchmarks under bench/, never by timed asserts in tests.
settings.register_profile("driftguard", deadline=None)
settings.load_profile("driftguard")

PG_HOST = os.environ.get("DRIFTGUARD_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("DRIFTGUARD_TEST_PG_PORT", "5432"))
MYSQL_HOST = os.environ.get("DRIFTGUARD_TEST_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("DRIFTGUARD_TEST_MYSQL_PORT", "3306"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@dataclass
class Database:
    """A throw-away namespace on a real server: `engine` is connected to it."""

    kind: str  # "postgres" | "mysql"
    engine: sa.Engine
    host: str
    port: int
    database: str
    user: str
    schema: str | None  # PostgreSQL schema (None for MySQL, where the database is the namespace)

    def execute(self, *statements: str) -> None:
        with self.engine.begin() as conn:
            for s in statements:
                conn.exec_driver_sql(s)

    def source_yaml(self, name: str = "src") -> dict[str, object]:
        """A `sources[]` entry (as a dict) pointing at this database."""
        return {
            "name": name,
            "kind": self.kind,
            "connection": {
                "host": self.host,
                "port": self.port,
                "database": self.database,
                "user": self.user,
            },
        }


def _unavailable(what: str, err: Exception) -> None:
    msg = f"{what} is not reachable ({type(err).__name__}: {err}); start it (see .ci/run)"
    if IN_CI:
        pytest.fail(f"CI=true but {msg}", pytrace=False)
    pytest.skip(f"!!! SKIPPED: {msg}")


def _admin_engine(url: str, what: str) -> Iterator[sa.Engine]:
    """An engine on a server the tests need, or a loud skip (a failure under CI) if it is down."""
    engine = sa.create_engine(url, pool_pre_ping=True)
    try:
        with engine.connect() as c:
            c.exec_driver_sql("select 1")
    except Exception as e:  # any failure means the server is not usable
        engine.dispose()
        _unavailable(what, e)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def _pg_admin() -> Iterator[sa.Engine]:
    yield from _admin_engine(
        f"postgresql+pg8000://postgres@{PG_HOST}:{PG_PORT}/test", f"PostgreSQL at {PG_HOST}:{PG_PORT}"
    )


@pytest.fixture
def pg(_pg_admin: sa.Engine) -> Iterator[Database]:
    """A fresh PostgreSQL schema in database `test`, dropped afterwards."""
    schema = f"dg_{uuid.uuid4().hex[:10]}"
    with _pg_admin.begin() as c:
        c.exec_driver_sql(f'create schema "{schema}"')
    engine = sa.create_engine(f"postgresql+pg8000://postgres@{PG_HOST}:{PG_PORT}/test")

    @sa.event.listens_for(engine, "connect")
    def _search_path(dbapi_conn, _rec):  # type: ignore[no-untyped-def]
        cur = dbapi_conn.cursor()
        cur.execute(f'set search_path to "{schema}"')
        cur.close()
        dbapi_conn.commit()

    yield Database("postgres", engine, PG_HOST, PG_PORT, "test", "postgres", schema)
    engine.dispose()
    with _pg_admin.begin() as c:
        c.exec_driver_sql(f'drop schema "{schema}" cascade')


@pytest.fixture(scope="session")
def _mysql_admin() -> Iterator[sa.Engine]:
    yield from _admin_engine(
        f"mysql+pymysql://root@{MYSQL_HOST}:{MYSQL_PORT}/test", f"MariaDB/MySQL at {MYSQL_HOST}:{MYSQL_PORT}"
    )


@pytest.fixture
def mysql(_mysql_admin: sa.Engine) -> Iterator[Database]:
    """A fresh MariaDB/MySQL database, dropped afterwards."""
    name = f"dg_{uuid.uuid4().hex[:10]}"
    with _mysql_admin.begin() as c:
        c.exec_driver_sql(f"create database `{name}`")
    engine = sa.create_engine(f"mysql+pymysql://root@{MYSQL_HOST}:{MYSQL_PORT}/{name}")
    yield Database("mysql", engine, MYSQL_HOST, MYSQL_PORT, name, "root", None)
    engine.dispose()
    with _mysql_admin.begin() as c:
        c.exec_driver_sql(f"drop database `{name}`")
