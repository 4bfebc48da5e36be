"""Collection at scale: a small table vs a huge one, and a run over hundreds of tables.

.venv/bin/python -m bench.perf.scale [--quick] [--json PATH]

(a) The same checks on a PostgreSQL table of 10 thousand rows and one of 10 million (quick: 1
million), generated with generate_series in a schema of their own and ANALYZEd: collection time
(median of repeats of Collector.collect), SQL round trips, the table's scans from
pg_stat_user_tables deltas, and the shared buffers every statement touched (each statement the
collector sent, re-run under EXPLAIN (ANALYZE, BUFFERS)). Two configurations: the default checks
(no `checks:` key: volume from planner statistics, learned schema) and timestamp checks (freshness
and hourly volume on indexed timestamp columns, schema). The large/small ratio should stay near 1.
(b) `driftguard run` over 500 tables (quick: 50), each five weeks of rows five minutes apart, in 10
sources (quick: 5), fresh SQLite state: the first run (backfills history) and the next (steady),
checks per second and the child's peak RSS.
(c) A table of 10 million rows (quick: 1 million) with no index at all, freshness and an exact count
checked by three `driftguard run`s an hour apart: the first (backfill and full read), a steady one
while nobody writes (it keeps the full read's values: collect.changes), and one after a single-row
insert (a full read again). Rows read by scans per run, from pg_stat_user_tables deltas.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.perf import pg
from bench.perf.cli_runs import driftguard_run, tables_checked, write_config
from bench.perf.report import Budget, Report, Unavailable, main, noise, spread

BUFFER_RATIO_BUDGET = 1.5  # "near 1": statistics and index probes, not scans
STAT_FLUSH_WAIT_S = 1.0  # a closed backend's table statistics reach pg_stat_user_tables shortly after


def _generate(engine: sa.Engine, schema: str, name: str, rows: int) -> None:
    """`rows` rows, one every second back from now, timestamp columns indexed, then ANALYZEd."""
    with engine.connect() as c:
        c.exec_driver_sql(
            f'create table "{schema}"."{name}" as select g::bigint as id, '  # noqa: S608 - our names
            "now() - g * interval '1 second' as created_at, now() - g * interval '1 second' as updated_at, "
            f"(g % 1000) / 10.0 as amount from generate_series(1, {rows}) g"
        )
        c.exec_driver_sql(f'alter table "{schema}"."{name}" add primary key (id)')
        for column in ("created_at", "updated_at"):
            c.exec_driver_sql(f'create index on "{schema}"."{name}" ({column})')
        c.exec_driver_sql(f'analyze "{schema}"."{name}"')


@contextmanager
def captured_selects() -> Iterator[list[tuple[str, Any]]]:
    """Every SELECT sent through any SQLAlchemy engine inside the block, with its parameters."""
    sent: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().lower().startswith(("select", "with")):
            sent.append((statement, parameters))

    sa.event.listen(sa.Engine, "before_cursor_execute", capture)
    try:
        yield sent
    finally:
        sa.event.remove(sa.Engine, "before_cursor_execute", capture)


def buffers(engine: sa.Engine, statements: list[tuple[str, Any]]) -> int:
    """Shared buffers (hit + read) the statements touch, from EXPLAIN (ANALYZE, BUFFERS)."""
    total = 0
    with engine.connect() as c:
        for statement, parameters in statements:
            plan = c.exec_driver_sql(
                f"explain (analyze, buffers, format json) {statement}", parameters
            ).scalar_one()
            top = plan[0]["Plan"]
            total += top.get("Shared Hit Blocks", 0) + top.get("Shared Read Blocks", 0)
    return total


def table_stats(engine: sa.Engine, schema: str, name: str) -> dict[str, int]:
    with engine.connect() as c:
        row = c.exec_driver_sql(
            "select coalesce(seq_scan, 0), coalesce(seq_tup_read, 0), coalesce(idx_scan, 0), "
            "coalesce(idx_tup_fetch, 0) from pg_stat_user_tables where schemaname = %s and relname = %s",
            (schema, name),
        ).one()
    return dict(zip(("seq_scan", "seq_tup_read", "idx_scan", "idx_tup_fetch"), map(int, row), strict=True))


def collect_repeatedly(config_path: Path, repeats: int) -> tuple[list[float], int, list[tuple[str, Any]]]:
    """Collect the config's one source `repeats` times over one connection, as a warm Lambda does,
    after one untimed collect that opens it: (seconds of each, round trips of the last, its SELECTs)."""
    from driftguard.collect import Collector
    from driftguard.collect.connect import dispose_engines
    from driftguard.config import load_config

    config = load_config(config_path)
    source = config.sources[0]
    seconds: list[float] = []
    with Collector(source, statement_timeout=config.statement_timeout_of(source)) as collector:
        collector.collect(datetime.now(UTC))
        for _ in range(repeats):
            with captured_selects() as sent:
                started = time.perf_counter()
                snapshot = collector.collect(datetime.now(UTC))
                seconds.append(time.perf_counter() - started)
            errors = [t.error for t in snapshot.tables if t.error]
            if errors:
                raise RuntimeError(f"collection failed: {errors}")
    dispose_engines()  # the backend exits, so its table statistics are flushed
    return seconds, snapshot.round_trips, sent


CONFIGS: dict[str, dict[str, Any]] = {
    "default checks (statistics volume, schema)": {},
    "timestamp checks (freshness, hourly volume, schema)": {
        "checks": {
            "freshness": {"column": "updated_at"},
            "volume": {"column": "created_at", "period": "1h"},
            "schema": True,
        }
    },
}


def large_vs_small(report: Report, engine: sa.Engine, quick: bool) -> None:
    sizes = {"small": 10_000, "large": 1_000_000 if quick else 10_000_000}
    repeats = 3 if quick else 7
    table = report.table(
        f"(a) One table of {sizes['small']:,} vs {sizes['large']:,} rows (collect: median (min-max, n) ms)",
        "checks",
        "rows",
        "collect ms",
        "noise",
        "SQL round trips",
        "seq scans",
        "seq tuples read",
        "index scans",
        "shared buffers (all statements)",
    )
    ratios = report.table(
        "(a) Large / small", "checks", "time ratio (medians)", "buffers ratio", "seq tuples read ratio"
    )
    with pg.scratch_schema(engine, "bench_scale") as schema, tempfile.TemporaryDirectory() as tmp:
        generate_started = time.perf_counter()
        for label, rows in sizes.items():
            _generate(engine, schema, label, rows)
        report.notes.append(
            f"(a) generating both tables took {time.perf_counter() - generate_started:.0f} s (not measured)"
        )
        for checks_label, checks in CONFIGS.items():
            figures: dict[str, tuple[float, int, int]] = {}
            for label, rows in sizes.items():
                entry = pg.source("bench-scale", schema, [{"name": label, **checks}])
                config = write_config(Path(tmp), [entry])
                before = table_stats(engine, schema, label)
                seconds, trips, sent = collect_repeatedly(config, repeats)  # + 1 warm-up collect
                time.sleep(STAT_FLUSH_WAIT_S)
                after = table_stats(engine, schema, label)
                delta = {k: (after[k] - before[k]) / (repeats + 1) for k in after}
                touched = buffers(engine, sent)
                ms = [s * 1000 for s in seconds]
                table.add(
                    checks_label,
                    rows,
                    spread(ms),
                    f"{noise(ms):.0%}",
                    trips,
                    delta["seq_scan"],
                    delta["seq_tup_read"],
                    delta["idx_scan"],
                    touched,
                )
                figures[label] = (statistics.median(ms), touched, int(delta["seq_tup_read"]))
            (small_ms, small_buf, small_tup), (large_ms, large_buf, large_tup) = (
                figures["small"],
                figures["large"],
            )
            ratios.add(
                checks_label,
                f"{large_ms / small_ms:.2f}",
                f"{large_buf / small_buf:.2f}" if small_buf else "-",
                f"{large_tup / small_tup:.2f}" if small_tup else f"{small_tup} -> {large_tup}",
            )
            buffer_ratio = large_buf / small_buf if small_buf else float("inf")
            report.budgets += [
                Budget(
                    f"{checks_label}: rows read by scans of the large table",
                    "0",
                    str(large_tup),
                    not large_tup,
                ),
                Budget(
                    f"{checks_label}: buffers large / small (time ratio is ms-scale noise, shown above)",
                    f"<= {BUFFER_RATIO_BUDGET}",
                    f"{buffer_ratio:.2f}",
                    buffer_ratio <= BUFFER_RATIO_BUDGET,
                ),
            ]
    report.notes.append(
        "(a) scans and index scans are pg_stat_user_tables deltas per collect; buffers are the "
        "collector's SELECTs re-run under EXPLAIN (ANALYZE, BUFFERS), catalog query included"
    )


def _flushed(engine: sa.Engine, schema: str, name: str, inserted: int) -> None:
    """Wait (bounded) until the statistics count `inserted` rows: the generating backend flushes its
    counters shortly after its transaction, and a run must not see them move half-way."""
    deadline = time.monotonic() + 30
    while True:
        with engine.connect() as c:
            c.exec_driver_sql("select pg_stat_force_next_flush()")
            done = c.exec_driver_sql(
                "select coalesce(n_tup_ins, 0) from pg_stat_user_tables "
                "where schemaname = %s and relname = %s",
                (schema, name),
            ).scalar_one()
        if int(done) >= inserted or time.monotonic() > deadline:
            return
        time.sleep(0.2)


def unchanged_without_index(report: Report, engine: sa.Engine, quick: bool) -> None:
    rows = 1_000_000 if quick else 10_000_000
    table = report.table(
        f"(c) {rows:,} rows, no index: freshness and an exact count, runs an hour apart",
        "run",
        "wall s",
        "seq scans",
        "rows read by scans",
        "values kept from the last full read",
    )
    with pg.scratch_schema(engine, "bench_unchanged") as schema, tempfile.TemporaryDirectory() as tmp:
        with engine.connect() as c:
            c.exec_driver_sql(
                f'create table "{schema}".big as select g::bigint as id, '  # noqa: S608 - our names
                f"now() - g * interval '1 second' as updated_at from generate_series(1, {rows}) g"
            )
            c.exec_driver_sql(f'analyze "{schema}".big')
            c.commit()
        _flushed(engine, schema, "big", rows)
        checks = {"checks": {"freshness": {"column": "updated_at"}, "volume": {"exact": True}}}
        config = write_config(Path(tmp), [pg.source("bench-unchanged", schema, [{"name": "big", **checks}])])
        with engine.connect() as c:
            hour = c.exec_driver_sql("select date_trunc('hour', now())").scalar_one().astimezone(UTC)
        steady_rows: int | None = None
        for label, at, insert in (
            ("1st (backfill, full read)", hour - timedelta(hours=3), False),
            ("2nd (nobody wrote)", hour - timedelta(hours=2), False),
            ("3rd (after a 1-row insert)", hour - timedelta(hours=1), True),
        ):
            if insert:
                with engine.connect() as c:
                    c.exec_driver_sql(f'insert into "{schema}".big values (0, now())')  # noqa: S608
                    c.commit()
                _flushed(engine, schema, "big", rows + 1)
            before = table_stats(engine, schema, "big")
            done, document = driftguard_run(config, at)
            time.sleep(STAT_FLUSH_WAIT_S)
            after = table_stats(engine, schema, "big")
            read = after["seq_tup_read"] - before["seq_tup_read"]
            kept = {
                f["explanation"]["details"].get("values_kept_from")
                for run in document["runs"]
                for f in run["findings"]
                if f["key"]["table"] == "big"
            } - {None}
            scans = after["seq_scan"] - before["seq_scan"]
            table.add(label, done.wall_s, scans, read, ", ".join(kept) or "-")
            if label.startswith("2nd"):
                steady_rows = read
    report.budgets.append(
        Budget(
            f"(c) rows read by a steady run of an unchanged {rows:,}-row table without an index",
            "0",
            str(steady_rows),
            steady_rows == 0,
        )
    )


def many_tables(report: Report, engine: sa.Engine, quick: bool) -> None:
    count, sources = (50, 5) if quick else (500, 10)
    hours = 35 * 24  # five weeks of history, so the steady run judges against a full baseline
    table = report.table(
        f"(b) driftguard run over {count} tables in {sources} sources "
        f"({hours * pg.ROWS_PER_HOUR:,} rows each; freshness, hourly volume, schema)",
        "run",
        "tables checked",
        "wall s",
        "checks/s",
        "peak RSS MB",
    )
    with pg.scratch_schema(engine, "bench_many") as schema, tempfile.TemporaryDirectory() as tmp:
        names = [f"t{i:04d}" for i in range(count)]
        pg.create_event_tables(engine, schema, names, hours=hours)
        per = count // sources
        entries = [
            pg.source(f"src{s:02d}", schema, [pg.timestamp_checks(n) for n in names[s * per : (s + 1) * per]])
            for s in range(sources)
        ]
        config = write_config(Path(tmp), entries)
        with engine.connect() as c:
            first = c.exec_driver_sql("select date_trunc('hour', now())").scalar_one().astimezone(UTC)
        for label, at in (  # both times past: the CLI refuses to check a time still to come
            ("1st (backfills history)", first - timedelta(hours=1)),
            ("2nd (steady state)", first),
        ):
            done, document = driftguard_run(config, at)
            checked = tables_checked(document)
            table.add(label, checked, done.wall_s, checked / done.wall_s, done.peak_rss_mb)
    report.notes.append(
        "(b) wall time is the whole `driftguard run --json` process (interpreter start and imports "
        "included), default --workers 4 on the machine's cores"
    )


def run(quick: bool = False) -> Report:
    report = Report("Collection at scale (PostgreSQL)", quick)
    try:
        engine = pg.admin_engine()
    except Unavailable as e:
        report.problems.append(f"collection at scale NOT MEASURED: {e}")
        return report
    try:
        large_vs_small(report, engine, quick)
        unchanged_without_index(report, engine, quick)
        many_tables(report, engine, quick)
    finally:
        engine.dispose()
    return report


def entry(argv: Sequence[str] | None = None) -> int:
    return main(run, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(entry())
