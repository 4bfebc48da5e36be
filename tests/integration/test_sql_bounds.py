"""Custom SQL is bounded: at most `max_rows` rows are read (the truncation is reported), the
statement timeout holds while rows are fetched (SQLite computes rows as they are read), and a
5-million-row result on PostgreSQL leaves the process's memory flat."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from bench.perf.sql_bounds import measure

from driftguard.collect import Collector
from driftguard.collect.connect import dispose_engines
from driftguard.config import Source
from driftguard.model import Snapshot

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fresh_pools() -> Any:
    yield
    dispose_engines()


def sqlite_source(tmp_path: Path, sql: str, **check: Any) -> Source:
    path = tmp_path / "data.db"
    sa.create_engine(sa.URL.create("sqlite", database=str(path))).connect().close()
    return Source.model_validate(
        {
            "name": "src",
            "kind": "sqlite",
            "connection": {"path": str(path)},
            "sql_checks": [{"name": "c", "sql": sql, **check}],
        }
    )


def collect_within(source: Source, timeout: timedelta, limit_s: float = 60) -> Snapshot:
    """Collect in a daemon thread, so that a timeout that does not hold fails the test instead of
    hanging it."""
    done: list[Snapshot] = []

    def work() -> None:
        with Collector(source, statement_timeout=timeout) as collector:
            done.append(collector.collect(NOW))

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(limit_s)
    assert done, (
        f"the check was still running {limit_s:g}s later: the {timeout} statement timeout did not hold"
    )
    return done[0]


ENDLESS_AFTER_ONE_ROW = (
    "with recursive r(n) as (select 1 union all select n + 1 from r)"
    " select 'OK' as status, n from r where n = 1 or n < 0"
)


def test_sqlite_interrupts_an_endless_query_after_its_first_row(tmp_path: Path) -> None:
    snapshot = collect_within(sqlite_source(tmp_path, ENDLESS_AFTER_ONE_ROW), timedelta(seconds=1))
    assert snapshot.sql_checks == []
    assert "the statement timeout is 1s" in snapshot.sql_errors["c"]


def test_an_endless_row_stream_is_cut_at_max_rows_and_says_so(tmp_path: Path) -> None:
    endless = (
        "with recursive r(n) as (select 1 union all select n + 1 from r) select 'OK' as status, n from r"
    )
    snapshot = collect_within(sqlite_source(tmp_path, endless, max_rows=250), timedelta(seconds=5))
    (result,) = snapshot.sql_checks
    assert (result.rows, result.truncated, len(result.context)) == (250, True, 20)


def test_a_result_that_fits_is_not_truncated(tmp_path: Path) -> None:
    fits = (
        "with recursive r(n) as (select 1 union all select n + 1 from r where n < 250)"
        " select 'OK' as status, n from r"
    )
    (result,) = collect_within(sqlite_source(tmp_path, fits, max_rows=250), timedelta(seconds=5)).sql_checks
    assert (result.rows, result.truncated) == (250, False)


def test_an_alert_row_within_the_limit_still_alerts(tmp_path: Path) -> None:
    sql = (
        "with recursive r(n) as (select 1 union all select n + 1 from r)"
        " select case when n = 3 then 'ALERT' else 'OK' end as status, n as actual from r"
    )
    (result,) = collect_within(sqlite_source(tmp_path, sql, max_rows=10), timedelta(seconds=5)).sql_checks
    assert (result.status, result.actual, result.truncated) == ("ALERT", 3.0, True)


@pytest.mark.postgres
def test_five_million_rows_on_postgres_keep_memory_flat(pg: Any) -> None:
    floor, big = measure(1), measure(5_000_000)
    print(f"\npeak RSS: {floor.peak_rss_mb:.1f} MB for 1 row, {big.peak_rss_mb:.1f} MB for 5,000,000 rows")
    assert (big.rows_read, big.truncated, big.errors) == (1000, True, {})
    assert big.peak_rss_mb < floor.peak_rss_mb + 50  # reading them all took 2.2 GB


def metric_source(tmp_path: Path, sql: str, max_rows: int) -> Source:
    checked = sqlite_source(tmp_path, "select 'OK' as status").model_dump(
        by_alias=True, exclude={"sql_checks"}
    )
    return Source.model_validate(
        {**checked, "sql_metrics": [{"name": "m", "sql": sql, "max_rows": max_rows}]}
    )


def test_an_endless_sql_metric_stops_at_its_max_rows_and_is_its_error(tmp_path: Path) -> None:
    endless = "with recursive r(n) as (select 1 union all select n + 1 from r) select n as value from r"
    snapshot = collect_within(metric_source(tmp_path, endless, max_rows=100), timedelta(seconds=5))
    assert snapshot.sql_metrics == []
    assert "more than 100 rows (max_rows)" in snapshot.sql_errors["m"]


def test_an_sql_metric_within_its_max_rows_is_read_whole(tmp_path: Path) -> None:
    fits = (
        "with recursive r(n) as (select 1 union all select n + 1 from r where n < 100)"
        " select n as value from r"
    )
    (result,) = collect_within(metric_source(tmp_path, fits, max_rows=100), timedelta(seconds=5)).sql_metrics
    assert [row.value for row in result.rows] == [float(n) for n in range(1, 101)]
