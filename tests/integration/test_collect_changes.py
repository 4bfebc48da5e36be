"""Work that follows change, against real PostgreSQL: a table nobody wrote since its last full read
keeps that read's freshness and exact count (no statement reads the table); a write, a TRUNCATE or
the re-read bound brings the full read back. SQL source -> engine -> SQLite state, end to end."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from driftguard.collect.changes import REREAD_AFTER
from driftguard.collect.connect import dispose_engines
from driftguard.config import Config
from driftguard.engine import Engine
from driftguard.model import CheckKind, Snapshot, TableSnapshot
from driftguard.store.sqlite import SqliteStore

T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
SETUP_AND_CATALOG = 2  # the session's setup statement and the catalog query


@pytest.fixture(autouse=True)
def _fresh_engine_cache() -> Iterator[None]:
    yield
    dispose_engines()


def counters(pg: Any, table: str) -> tuple[int, int, int]:
    with pg.engine.connect() as c:
        row = c.exec_driver_sql(
            "select n_tup_ins, n_tup_upd, n_tup_del from pg_stat_user_tables "
            "where schemaname = %s and relname = %s",
            (pg.schema, table),
        ).one_or_none()
    return (0, 0, 0) if row is None else (int(row[0]), int(row[1]), int(row[2]))


def write(pg: Any, *statements: str, until_counted: tuple[int, int, int] | None = None) -> None:
    """Run `statements`, then wait (bounded) until the statistics show the expected counters: a
    backend flushes them to shared memory shortly after its transaction ends."""
    pg.execute(*statements)
    with pg.engine.connect() as c:
        c.exec_driver_sql("select pg_stat_force_next_flush()")
    if until_counted is None:
        return
    deadline = time.monotonic() + 15
    while counters(pg, "events") != until_counted:
        assert time.monotonic() < deadline, f"counters stayed {counters(pg, 'events')}"
        time.sleep(0.05)


def make_engine(pg: Any, tmp_path: Path) -> tuple[Engine, SqliteStore]:
    source = pg.source_yaml("shop")
    source["tables"] = [
        {
            "name": "events",
            "schema": pg.schema,
            "checks": {"volume": {"exact": True}, "freshness": {"column": "at"}},
        }
    ]
    config = Config.model_validate({"version": 1, "sources": [source]})
    store = SqliteStore(tmp_path / "state.db")
    return Engine(config, store), store


def table_of(snapshot: Snapshot | None) -> TableSnapshot:
    assert snapshot is not None
    table = snapshot.table("events")
    assert table is not None and table.error is None, table
    return table


def test_an_unchanged_table_keeps_its_last_full_read_until_a_write_truncate_or_the_bound(
    pg: Any, tmp_path: Path
) -> None:
    pg.execute("create table events (id bigint, at timestamptz not null)")  # no index on `at`
    write(
        pg,
        "insert into events select g, now() - g * interval '1 minute' from generate_series(1, 500) g",
        until_counted=(500, 0, 0),
    )
    engine, store = make_engine(pg, tmp_path)

    first = table_of(engine.check("shop", T0).snapshot)
    assert first.reused_from is None and first.change_marker is not None and first.row_count == 500

    quiet = engine.check("shop", T0 + timedelta(hours=1))
    kept = table_of(quiet.snapshot)
    assert kept.reused_from == T0
    assert (kept.row_count, kept.last_modified) == (first.row_count, first.last_modified)
    assert kept.round_trips == 0  # nothing but the shared catalog query asked about the table
    assert quiet.snapshot is not None and quiet.snapshot.round_trips == SETUP_AND_CATALOG
    freshness = next(f for f in quiet.findings if f.key.check == CheckKind.FRESHNESS)
    assert "was written since the full read" in freshness.explanation.reason
    assert freshness.explanation.details["values_kept_from"] == T0.isoformat()

    write(pg, "insert into events values (501, now())", until_counted=(501, 0, 0))
    after_write = table_of(engine.check("shop", T0 + timedelta(hours=2)).snapshot)
    assert after_write.reused_from is None and after_write.row_count == 501
    assert after_write.last_modified is not None and first.last_modified is not None
    assert after_write.last_modified > first.last_modified

    # TRUNCATE moves no row counter; the new relfilenode changes the marker.
    write(pg, "truncate events")
    truncated = table_of(engine.check("shop", T0 + timedelta(hours=3)).snapshot)
    assert truncated.reused_from is None and truncated.row_count == 0

    write(pg, "insert into events values (1, now())", until_counted=(502, 0, 0))
    table_of(engine.check("shop", T0 + timedelta(hours=4)).snapshot)
    assert table_of(engine.check("shop", T0 + timedelta(hours=5)).snapshot).reused_from is not None
    bound = T0 + timedelta(hours=4) + REREAD_AFTER
    assert table_of(engine.check("shop", bound).snapshot).reused_from is None
    store.close()
