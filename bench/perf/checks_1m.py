"""The check kinds of this round on a table of 1 M rows (quick: 100 k) on the local PostgreSQL:
how long a first check (with its day-one backfill) and a steady-state check take, per feature.

Features, each its own source on the same table so each is timed alone:
- table-kinds: freshness, hourly volume and schema through the check-kind registry;
- column-metrics-period: null rate, distinct count, mean and quantiles of two columns over the
  latest hour of the indexed timestamp column, each metric its own statement, backfilled per hour
  on the first check;
- column-metrics-sample: the same metrics without a timestamp column (TABLESAMPLE, about 100 k rows);
- sql-metric-ts: a learned SQL metric whose query returns four weeks of hourly values (`ts`):
  the first check learns from them, the next judges the newest hour;
- sql-metric-segments: a learned SQL metric with one series per payment method (`segment`);
- segments: `segment_by: customer` (150 customers, the default cap of 100 on their own, the rest as
  (other)) with freshness, hourly volume and two column metrics per segment, every segment
  backfilled on the first check;
- duckdb: table-kinds and the per-period column metrics on the same rows in a DuckDB file (skipped,
  with a line saying so, without the `duckdb` extra).

    .venv/bin/python -m bench.perf.checks_1m [--quick] [--repeats N] [--only FEATURE ...]

Prints `median (min-max, n)` of wall time per check; never asserts a figure.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.perf.pg import admin_engine, scratch_schema, source
from driftguard.collect.connect import dispose_engines
from driftguard.config import Config
from driftguard.engine import Engine
from driftguard.model import FindingStatus
from driftguard.store.sqlite import SqliteStore

SECONDS_PER_ROW = 2.4  # 1 M rows span about four weeks
COLUMNS = [
    {"name": "amount", "metrics": ["null_rate", "mean", "quantiles"]},
    {"name": "method", "metrics": ["null_rate", "distinct_count"]},
]


def create_payments(engine: sa.Engine, schema: str, rows: int) -> None:
    with engine.connect() as c:
        c.exec_driver_sql(
            f'create table "{schema}".payments (id bigint primary key, created_at timestamptz not null, '
            "amount numeric(12, 2), method text not null, customer int not null)"
        )
        c.exec_driver_sql(
            f'insert into "{schema}".payments select g, '  # noqa: S608 - generated names, no input
            f"date_trunc('hour', now()) - g * interval '{SECONDS_PER_ROW} seconds', "
            "case when g % 50 = 0 then null else (g % 1000) / 10.0 end, "
            "(array['card', 'transfer', 'wallet', 'invoice'])[1 + g % 4], g % 150 "
            f"from generate_series(1, {rows}) g"
        )
        c.exec_driver_sql(f'create index on "{schema}".payments (created_at)')
        c.exec_driver_sql(f'analyze "{schema}".payments')


def whole_table_profile(engine: sa.Engine, schema: str) -> None:
    """The column metrics of COLUMNS as one aggregate over the whole table: what every run read
    before column metrics were computed per period."""
    with engine.connect() as c:
        c.exec_driver_sql(
            "select count(*), count(amount), avg(amount), "  # noqa: S608 - generated names, no input
            "percentile_cont(array[0.25, 0.5, 0.75]) within group (order by amount), "
            f'count(method), count(distinct method) from "{schema}".payments'
        ).fetchall()


def features(schema: str) -> dict[str, dict[str, Any]]:
    table = f'"{schema}".payments'
    return {
        "table-kinds": source(
            "table-kinds",
            schema,
            [
                {
                    "name": "payments",
                    "checks": {
                        "freshness": {"column": "created_at"},
                        "volume": {"column": "created_at", "period": "1h"},
                        "schema": True,
                    },
                }
            ],
            schedule={"rate": "1h"},
        ),
        "column-metrics-period": source(
            "column-metrics-period",
            schema,
            [
                {
                    "name": "payments",
                    "checks": {"volume": {"column": "created_at", "period": "1h"}, "columns": COLUMNS},
                }
            ],
            schedule={"rate": "1h"},
        ),
        "column-metrics-sample": source(
            "column-metrics-sample",
            schema,
            [{"name": "payments", "checks": {"columns": COLUMNS}}],
            schedule={"rate": "1h"},
        ),
        "sql-metric-ts": source(
            "sql-metric-ts",
            schema,
            [],
            schedule={"rate": "1h"},
            sql_metrics=[
                {
                    "name": "paid_per_hour",
                    "period": "1h",
                    "sql": f"select date_trunc('hour', created_at) as ts, count(*) as value from {table} "  # noqa: S608
                    "where created_at >= now() - interval '4 weeks' group by 1",
                }
            ],
        ),
        "sql-metric-segments": source(
            "sql-metric-segments",
            schema,
            [],
            schedule={"rate": "1h"},
            sql_metrics=[
                {
                    "name": "paid_per_method",
                    "sql": f"select method as segment, count(*) as value from {table} group by 1",  # noqa: S608
                }
            ],
        ),
        "segments": source(
            "segments",
            schema,
            [
                {
                    "name": "payments",
                    "segment_by": "customer",
                    "checks": {
                        "freshness": {"column": "created_at"},
                        "volume": {"column": "created_at", "period": "1h"},
                        "columns": [{"name": "amount", "metrics": ["null_rate", "mean"]}],
                    },
                }
            ],
            schedule={"rate": "1h"},
        ),
    }


def create_duckdb_payments(path: Path, rows: int, now: datetime) -> None:
    """The payments table of `create_payments` in a DuckDB file (times as UTC timestamps)."""
    import duckdb

    with duckdb.connect(str(path)) as c:
        c.execute(
            "create table payments as select g::bigint as id, "  # noqa: S608 - generated names, no input
            f"(?::timestamp - to_microseconds((g * {SECONDS_PER_ROW * 1e6:.0f})::bigint)) as created_at, "
            "case when g % 50 = 0 then null else ((g % 1000) / 10.0)::decimal(12, 2) end as amount, "
            "['card', 'transfer', 'wallet', 'invoice'][1 + g % 4] as method, (g % 150)::int as customer "
            f"from range(1, {rows + 1}) t(g)",
            [now.replace(tzinfo=None)],
        )


def duckdb_feature(path: Path) -> dict[str, Any]:
    return {
        "name": "duckdb",
        "kind": "duckdb",
        "connection": {"path": str(path)},
        "schedule": {"rate": "1h"},
        "tables": [
            {
                "name": "payments",
                "checks": {
                    "freshness": {"column": "created_at"},
                    "volume": {"column": "created_at", "period": "1h"},
                    "schema": True,
                    "columns": COLUMNS,
                },
            }
        ],
    }


def timed(run: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = run()
    return time.perf_counter() - started, result


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}s ({min(values):.2f}-{max(values):.2f}, n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 k rows instead of 1 M")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", action="append", help="time only this feature (repeatable)")
    args = parser.parse_args()
    rows = 100_000 if args.quick else 1_000_000
    engine = admin_engine()
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    with scratch_schema(engine, "bench_checks") as schema:
        load, _ = timed(lambda: create_payments(engine, schema, rows))
        print(f"payments: {rows:,} rows on PostgreSQL, generated and analysed in {load:.1f}s")
        whole = [timed(lambda: whole_table_profile(engine, schema))[0] for _ in range(args.repeats)]
        print(
            f"the same column metrics over the whole table in one scan (before this round): {spread(whole)}"
        )
        print(f"{'feature':<22} {'first check (backfill)':<30} {'next check':<30} findings (next)")
        chosen = features(schema)
        scratch = tempfile.TemporaryDirectory()
        if not args.only or "duckdb" in args.only:
            try:
                duck = Path(scratch.name) / "payments.duckdb"
                load, _ = timed(lambda: create_duckdb_payments(duck, rows, now))
                print(f"payments: {rows:,} rows in a DuckDB file, generated in {load:.1f}s")
                chosen["duckdb"] = duckdb_feature(duck)
            except ImportError:
                print("duckdb: NOT RUN (install the `duckdb` extra)")
        for name, src in chosen.items():
            if args.only and name not in args.only:
                continue
            first: list[float] = []
            steady: list[float] = []
            statuses = ""
            for _ in range(args.repeats):
                first_seconds, next_seconds, findings = check_twice(name, src, now)
                first.append(first_seconds)
                steady.append(next_seconds)
                statuses = findings
            print(f"{name:<22} {spread(first):<30} {spread(steady):<30} {statuses}")


def check_twice(name: str, src: dict[str, Any], now: datetime) -> tuple[float, float, str]:
    """A first check an hour ago (with its backfill) and the next one now, on a fresh store: the
    two wall times and the findings of the second by status."""
    with tempfile.TemporaryDirectory() as tmp:
        config = Config.model_validate(
            {
                "sources": [src],
                "channels": [{"name": "file", "type": "file", "path": str(Path(tmp) / "sent.jsonl")}],
                "route": {"receivers": ["file"]},
            }
        )
        store = SqliteStore(Path(tmp) / "state.db")
        try:
            first, _ = timed(lambda: Engine(config, store).check(name, now - timedelta(hours=1)))
            later, outcome = timed(lambda: Engine(config, store).check(name, now))
        finally:
            store.close()
            dispose_engines()
    counts: dict[str, int] = {}
    for f in outcome.findings:
        counts[f.status.value] = counts.get(f.status.value, 0) + 1
        if f.status == FindingStatus.ERROR:
            print(f"!!! {name}: {f.explanation.reason}")
    return first, later, " ".join(f"{k}={v}" for k, v in sorted(counts.items()))


if __name__ == "__main__":
    main()
