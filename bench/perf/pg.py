"""The local PostgreSQL the benchmarks generate their tables in: each benchmark works in a schema of
its own, dropped afterwards, and points DriftGuard (and Soda) at it.

Server: DRIFTGUARD_TEST_PG_HOST / DRIFTGUARD_TEST_PG_PORT as in tests/conftest.py (127.0.0.1:5432,
user postgres, database test, trust auth)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from bench.perf.report import Unavailable

HOST = os.environ.get("DRIFTGUARD_TEST_PG_HOST", "127.0.0.1")
PORT = int(os.environ.get("DRIFTGUARD_TEST_PG_PORT", "5432"))
USER = "postgres"
DATABASE = "test"
ROWS_PER_HOUR = 12  # one row every five minutes


def admin_engine() -> sa.Engine:
    engine = sa.create_engine(
        f"postgresql+pg8000://{USER}@{HOST}:{PORT}/{DATABASE}", isolation_level="AUTOCOMMIT"
    )
    try:
        with engine.connect() as c:
            c.exec_driver_sql("select 1")
    except Exception as e:
        engine.dispose()
        raise Unavailable(f"PostgreSQL at {HOST}:{PORT} is not reachable ({type(e).__name__}: {e})") from None
    return engine


@contextmanager
def scratch_schema(engine: sa.Engine, prefix: str) -> Iterator[str]:
    """A fresh schema, dropped (with everything in it) afterwards, also when the benchmark fails."""
    schema = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with engine.connect() as c:
        c.exec_driver_sql(f'create schema "{schema}"')
    try:
        yield schema
    finally:
        with engine.connect() as c:
            c.exec_driver_sql(f'drop schema "{schema}" cascade')


def create_event_tables(engine: sa.Engine, schema: str, names: list[str], *, hours: int) -> None:
    """Tables (id, created_at, updated_at, amount) with a row every five minutes for the last `hours`
    hours, the newest a few minutes old, then ANALYZEd: recent, regular loads, so checks stay quiet."""
    rows = hours * ROWS_PER_HOUR
    with engine.connect() as c:
        for name in names:
            c.exec_driver_sql(
                f'create table "{schema}"."{name}" (id bigint primary key, created_at timestamptz not null, '
                "updated_at timestamptz not null, amount numeric(12, 2))"
            )
            c.exec_driver_sql(
                f'insert into "{schema}"."{name}" select g, '  # noqa: S608 - generated names, no input
                "date_trunc('hour', now()) - (g * interval '5 minutes'), "
                "date_trunc('hour', now()) - (g * interval '5 minutes'), (g % 1000) / 10.0 "
                f"from generate_series(1, {rows}) g"
            )
            c.exec_driver_sql(f'analyze "{schema}"."{name}"')


def source(name: str, schema: str, tables: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A `sources[]` entry for the local server, its tables in `schema`."""
    return {
        "name": name,
        "kind": "postgres",
        "connection": {"host": HOST, "port": PORT, "database": DATABASE, "user": USER},
        "tables": [{"schema": schema, **t} for t in tables],
        **extra,
    }


def timestamp_checks(name: str) -> dict[str, Any]:
    """The usual checks of an event table: freshness and hourly volume by timestamp, learned schema."""
    return {
        "name": name,
        "checks": {
            "freshness": {"column": "updated_at"},
            "volume": {"column": "created_at", "period": "1h"},
            "schema": True,
        },
    }
