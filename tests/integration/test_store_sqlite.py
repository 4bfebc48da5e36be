"""The SQLite store: the shared Store contract, then what only a file on disk can show."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel

import driftguard.store.sqlite as sqlite_store
from contract.store_contract import T0, StoreContract, full_commit, hours, run_commit, run_in_threads
from driftguard.errors import ConfigError, StateConflict, StateError
from driftguard.model import Transition
from driftguard.store.sqlite import SCHEMA_VERSION, SqliteStore


class TestSqliteStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[SqliteStore]:
        opened = SqliteStore(tmp_path / "state" / "state.db")
        yield opened
        opened.close()


def open_at(tmp_path: Path, **options: float) -> SqliteStore:
    return SqliteStore(tmp_path / "state.db", **options)


def row_counts(path: Path) -> dict[str, int]:
    """Rows in every table of the state file, read behind the store's back."""
    with closing(sqlite3.connect(path)) as raw:
        tables = [name for (name,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {table: raw.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] for table in tables}  # noqa: S608


@contextmanager
def write_lock_held(path: Path) -> Iterator[None]:
    """Another process's write transaction, open for the duration of the block."""
    with closing(sqlite3.connect(path, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            other.execute("ROLLBACK")


# --------------------------------------------------------------------------- the file


def test_creates_missing_directories_in_wal_mode_at_the_current_version(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "state.db"

    SqliteStore(path).close()

    with closing(sqlite3.connect(path)) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert raw.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)


def test_reopening_a_file_keeps_everything(tmp_path: Path) -> None:
    commit = full_commit()
    with closing(open_at(tmp_path)) as first:
        first.commit_run(commit)

    with closing(open_at(tmp_path)) as reopened:
        assert reopened.get_run(commit.run.source, commit.run.scheduled_time) == commit.run
        assert reopened.snapshots(commit.run.source) == [commit.snapshot]
        assert reopened.pending_notifications() == commit.notifications
        assert reopened.commit_run(commit) is False


def test_an_older_file_is_migrated_forward_and_keeps_its_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit = full_commit()
    with closing(open_at(tmp_path)) as old:
        old.commit_run(commit)
    next_migration = ("CREATE TABLE added_later (id TEXT PRIMARY KEY)",)
    monkeypatch.setattr(sqlite_store, "_MIGRATIONS", (*sqlite_store._MIGRATIONS, next_migration))
    monkeypatch.setattr(sqlite_store, "SCHEMA_VERSION", SCHEMA_VERSION + 1)

    with closing(open_at(tmp_path)) as upgraded:
        assert upgraded.get_run(commit.run.source, commit.run.scheduled_time) == commit.run

    counts = row_counts(tmp_path / "state.db")
    assert counts["added_later"] == 0
    assert counts["runs"] == 1
    with closing(sqlite3.connect(tmp_path / "state.db")) as raw:
        assert raw.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION + 1,)


def test_a_file_from_before_fits_gains_the_fits_table_and_keeps_its_data(tmp_path: Path) -> None:
    commit = full_commit()
    with closing(open_at(tmp_path)) as old:
        old.commit_run(commit.model_copy(update={"fits": {}}))
    with closing(sqlite3.connect(tmp_path / "state.db")) as raw:  # as the version before fits left it
        raw.execute("DROP TABLE fits")
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION - 1}")

    with closing(open_at(tmp_path)) as upgraded:
        source = commit.run.source
        assert upgraded.get_run(source, commit.run.scheduled_time) == commit.run
        assert upgraded.load_source(source).fits == {}
        later = run_commit(source, T0 + timedelta(days=1), fits=commit.fits)
        assert upgraded.commit_run(later) is True
        assert upgraded.load_source(source).fits == commit.fits

    with closing(sqlite3.connect(tmp_path / "state.db")) as raw:
        assert raw.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)


def test_a_file_from_a_newer_driftguard_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with closing(sqlite3.connect(path)) as raw:
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")

    newer = SCHEMA_VERSION + 1
    with pytest.raises(
        ConfigError, match=rf"{re.escape(str(path))}.*schema version {newer}.*upgrade DriftGuard"
    ):
        SqliteStore(path)

    assert row_counts(path) == {}


def test_threads_opening_a_new_file_at_once_migrate_it_once(tmp_path: Path) -> None:
    # The race (switching a new file to WAL answers "database is locked" without waiting) hit about
    # one round in 40 before the store retried it, so run enough rounds to catch it coming back.
    for round_ in range(30):
        folder = tmp_path / str(round_)
        opened = run_in_threads(*[lambda folder=folder: open_at(folder)] * 4)

        assert all(isinstance(store, SqliteStore) for store in opened), (round_, opened)
        for store in opened:
            assert isinstance(store, SqliteStore)
            store.close()
        assert set(row_counts(folder / "state.db").values()) == {0}


# --------------------------------------------------------------------------- failures inside a commit

TABLES_A_COMMIT_WRITES = [
    "alert_states",
    "runs",
    "snapshots",
    "points",
    "transitions",
    "outbox",
    "schema_baselines",
    "fits",
]


@pytest.mark.parametrize("failing_table", TABLES_A_COMMIT_WRITES)
def test_a_failure_at_any_step_of_a_commit_leaves_nothing(tmp_path: Path, failing_table: str) -> None:
    path = tmp_path / "state.db"
    store = open_at(tmp_path)
    with closing(sqlite3.connect(path, isolation_level=None)) as raw:
        raw.execute(
            f"CREATE TRIGGER injected_failure BEFORE INSERT ON {failing_table}"
            " BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
        )
        commit = full_commit()

        with pytest.raises(StateError, match=f"^state file {path} .*injected failure"):
            store.commit_run(commit)

        assert set(row_counts(path).values()) == {0}
        raw.execute("DROP TRIGGER injected_failure")
    assert store.commit_run(commit) is True
    assert all(row_counts(path)[table] > 0 for table in TABLES_A_COMMIT_WRITES)
    store.close()


def test_an_interrupt_mid_commit_rolls_back_and_the_store_stays_usable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_at(tmp_path)
    encode = sqlite_store._encode

    def interrupt_at_transitions(model: BaseModel) -> str:
        if isinstance(model, Transition):
            raise KeyboardInterrupt
        return encode(model)

    monkeypatch.setattr(sqlite_store, "_encode", interrupt_at_transitions)
    commit = full_commit()

    with pytest.raises(KeyboardInterrupt):
        store.commit_run(commit)

    assert set(row_counts(tmp_path / "state.db").values()) == {0}
    monkeypatch.setattr(sqlite_store, "_encode", encode)
    assert store.commit_run(commit) is True
    assert store.transitions(commit.run.source) == commit.transitions
    store.close()


# --------------------------------------------------------------------------- several writers


def test_a_commit_waits_for_another_writer_to_finish(tmp_path: Path) -> None:
    store = open_at(tmp_path, busy_timeout=30)
    finished = threading.Event()
    results: list[bool] = []

    def commit() -> None:
        results.append(store.commit_run(run_commit("shop", T0)))
        finished.set()

    with write_lock_held(tmp_path / "state.db"):
        writer = threading.Thread(target=commit)
        writer.start()
        assert not finished.wait(timeout=0.3), "the commit did not wait for the other writer"
    writer.join(timeout=30)

    assert results == [True]
    store.close()


def test_a_commit_gives_up_after_the_busy_timeout_and_writes_nothing(tmp_path: Path) -> None:
    store = open_at(tmp_path, busy_timeout=0.05)

    # Typed and retryable: the engine re-reads state and tries again, like after any other writer.
    with (
        write_lock_held(tmp_path / "state.db"),
        pytest.raises(StateConflict, match="locked by another writer"),
    ):
        store.commit_run(run_commit("shop", T0))

    assert store.runs() == []
    assert store.commit_run(run_commit("shop", T0)) is True
    store.close()


def test_two_stores_on_one_file_commit_each_run_once(tmp_path: Path) -> None:
    stores = [open_at(tmp_path), open_at(tmp_path)]
    runs = [run_commit("shop", at) for at in hours(10)]

    # Every run is committed by both stores, each from two threads at once.
    results = run_in_threads(*[lambda s=s: [s.commit_run(c) for c in runs] for s in stores for _ in range(2)])

    assert all(isinstance(r, list) for r in results), results
    per_run = [sum(r[i] for r in results if isinstance(r, list)) for i in range(len(runs))]
    assert per_run == [1] * len(runs)
    assert len(stores[0].runs(limit=100)) == len(runs)
    assert row_counts(tmp_path / "state.db")["snapshots"] == len(runs)
    for store in stores:
        store.close()


PROCESS_WRITER = """
import json, sys
from contract.store_contract import hours, run_commit
from driftguard.store.sqlite import SqliteStore

store = SqliteStore(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()  # start together with the other writer
print(json.dumps([store.commit_run(run_commit("shop", at)) for at in hours(int(sys.argv[2]))]))
store.close()
"""


def test_two_processes_commit_each_run_once(tmp_path: Path) -> None:
    path, run_count = tmp_path / "state.db", 30
    # The driftguard under test (layers/), not whichever one the interpreter has installed.
    paths = [str(Path(__file__).parents[1]), str(Path(__file__).parents[2] / "layers")]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", PROCESS_WRITER, str(path), str(run_count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )
        for _ in range(2)
    ]
    for writer in writers:
        assert writer.stdout is not None
        assert writer.stdout.readline() == "ready\n"
    outputs = [writer.communicate("go\n", timeout=120) for writer in writers]

    assert [w.returncode for w in writers] == [0, 0], [err for _, err in outputs]
    committed = [json.loads(out) for out, _ in outputs]
    assert [a + b for a, b in zip(*committed, strict=True)] == [1] * run_count
    assert row_counts(path)["runs"] == run_count


def test_retention_prunes_old_history_of_the_committed_source_and_keeps_undelivered_notices(
    tmp_path: Path,
) -> None:
    from contract.store_contract import check_key, delivered, failed, notification, points_of, transition

    store = SqliteStore(tmp_path / "state.db", retention=timedelta(hours=24))
    key = check_key("shop")
    times = [T0 + timedelta(hours=h) for h in range(0, 72, 6)]
    parked = notification("shop", times[0], channel="parked")
    for at in times:
        sent = notification("shop", at)
        store.commit_run(
            run_commit(
                "shop",
                at,
                points=points_of(key, [at]),
                transitions=[transition(key, at)],
                notifications=[sent, parked] if at == times[0] else [sent],
            )
        )
        store.record_delivery(delivered(sent).model_copy(update={"at": at}))
        if at == times[0]:
            store.record_delivery(failed(parked, keep=True))
    store.commit_run(run_commit("other", times[0]))  # another source's history is its own to prune
    newest, horizon = times[-1], times[-1] - timedelta(hours=24)
    kept = [at for at in times if at >= horizon]
    assert [r.scheduled_time for r in reversed(store.runs("shop", limit=100))] == kept
    assert len(store.snapshots("shop", limit=100)) == len(kept)
    assert [p.ts for p in store.series(key, before=newest + timedelta(hours=1))] == kept
    assert [t.at for t in reversed(store.transitions("shop", limit=100))] == kept
    assert store.get_run("other", times[0]) is not None
    assert [d.notification_id for d in store.failed_deliveries()] == [parked.id]  # parked: kept
    counts = row_counts(tmp_path / "state.db")
    assert counts["outbox"] == len(kept) + 1 and counts["deliveries"] == len(kept) + 1
    store.close()


def test_retention_drops_fits_not_made_again_within_it(tmp_path: Path) -> None:
    from contract.store_contract import check_key, fit

    store = SqliteStore(tmp_path / "state.db", retention=timedelta(hours=24))
    kept, dropped = check_key("shop"), check_key("shop", table="customers")
    store.commit_run(
        run_commit("shop", T0, fits={kept.fingerprint: fit(kept.fingerprint, T0), dropped.fingerprint: {}})
    )
    store.commit_run(run_commit("other", T0, fits={dropped.fingerprint: fit(dropped.fingerprint, T0)}))
    later = T0 + timedelta(hours=30)
    store.commit_run(run_commit("shop", later, fits={kept.fingerprint: fit(kept.fingerprint, later)}))

    assert store.load_source("shop").fits == {kept.fingerprint: fit(kept.fingerprint, later)}
    # Another source's fits are pruned by its own commits only.
    assert store.load_source("other").fits == {dropped.fingerprint: fit(dropped.fingerprint, T0)}
    store.close()


def test_the_cli_store_keeps_the_configured_retention(tmp_path: Path) -> None:
    from driftguard.cli.common import CliContext

    config = tmp_path / "dg.yaml"
    config.write_text("state: {path: state.db, retention: 60d}\n")
    cli = CliContext(config_path=str(config))
    assert isinstance(cli.store, SqliteStore) and cli.store.retention == timedelta(days=60)
    cli.close()
