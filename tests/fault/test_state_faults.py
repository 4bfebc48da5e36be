"""State file faults are one clear line naming the file and what to do (a StateError), and leave
nothing half-written: read-only, corrupt, truncated, full disk, deleted or replaced mid-run,
and missing for a command that must not create one."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from contract.store_contract import T0, full_commit, run_commit
from driftguard.errors import StateError, StateMissing
from driftguard.store import sqlite as sqlite_store
from driftguard.store.sqlite import SqliteStore


def counts(path: Path) -> dict[str, int]:
    with closing(sqlite3.connect(path)) as raw:
        tables = [n for (n,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: raw.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}  # noqa: S608


def one_clear_line(error: BaseException, path: Path, *needles: str) -> None:
    text = str(error)
    assert "\n" not in text and str(path) in text, text
    for needle in needles:
        assert needle in text, text


def a_store_with_history(path: Path, runs: int = 40) -> None:
    store = SqliteStore(path)
    for i in range(runs):
        store.commit_run(run_commit("orders", T0 + timedelta(hours=i)))
    store.close()


def test_a_file_that_is_not_a_state_file_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(os.urandom(8192))
    with pytest.raises(StateError) as e:
        SqliteStore(path)
    one_clear_line(e.value, path, "move it aside")


def test_a_truncated_file_is_refused_clearly_and_not_written(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    a_store_with_history(path)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(StateError) as e:
        store = SqliteStore(path)
        store.runs("orders", limit=100)
        store.commit_run(run_commit("orders", T0 - timedelta(hours=1)))
    one_clear_line(e.value, path, "move it aside")
    assert path.stat().st_size == size // 2


def test_a_read_only_file_is_refused_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state.db"
    a_store_with_history(path, runs=1)
    before = counts(path)
    connect = sqlite3.connect

    def read_only(database: Any, **kwargs: Any) -> sqlite3.Connection:
        # what a file without write permission gives (this test may run as root, which ignores chmod)
        return connect(f"file:{database}?mode=ro", uri=True, **kwargs)

    monkeypatch.setattr(sqlite_store.sqlite3, "connect", read_only)
    store = SqliteStore(path)
    with pytest.raises(StateError) as e:
        store.commit_run(run_commit("orders", T0 + timedelta(days=9)))
    one_clear_line(e.value, path, "read-only", "writable")
    store.close()
    assert counts(path) == before


def test_a_full_disk_is_refused_clearly_and_nothing_is_half_written(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SqliteStore(path)
    store.commit_run(run_commit("orders", T0))
    before = counts(path)
    (pages,) = store._conn.execute("PRAGMA page_count").fetchone()
    store._conn.execute(f"PRAGMA max_page_count = {pages}")  # the file may not grow: a full disk
    with pytest.raises(StateError) as e:
        store.commit_run(full_commit())
    one_clear_line(e.value, path, "full", "free space")
    assert counts(path) == before
    store._conn.execute("PRAGMA max_page_count = 1073741823")  # space freed: the store goes on
    assert store.commit_run(full_commit()) is True
    store.close()


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_file_gone_mid_run_is_refused_instead_of_losing_the_results(tmp_path: Path, how: str) -> None:
    path = tmp_path / "state.db"
    store = SqliteStore(path)
    store.commit_run(run_commit("orders", T0))
    path.unlink()
    if how == "replaced":
        SqliteStore(path).close()
    with pytest.raises(StateError) as e:
        store.commit_run(run_commit("orders", T0 + timedelta(hours=1)))
    one_clear_line(e.value, path, how if how == "deleted" else "replaced", "run again")
    store.close()


def test_reading_a_missing_state_never_creates_one(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "state.db"
    with pytest.raises(StateMissing) as e:
        SqliteStore(path, create=False)
    one_clear_line(e.value, path, "driftguard run")
    assert not path.parent.exists()


@pytest.mark.parametrize("command", [["status"], ["history", "orders"]])
def test_the_cli_prints_a_state_fault_as_one_line(
    tmp_path: Path, command: list[str], run_cli: Callable[..., Any]
) -> None:
    config = tmp_path / "dg.yaml"
    (tmp_path / "data.db").touch()
    config.write_text(
        "sources: [{name: orders, kind: sqlite, connection: {path: data.db}}]\nstate: {path: state.db}\n"
    )
    (tmp_path / "state.db").write_bytes(b"not a database" * 1000)
    result = run_cli("--config", str(config), *command)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert str(tmp_path / "state.db") in line and "move it aside" in line


def test_a_run_whose_state_file_is_deleted_midway_fails_loudly(
    tmp_path: Path, run_cli: Callable[..., Any]
) -> None:
    # a check that takes a few seconds, so the file goes while the run is collecting
    slow = (
        "with recursive r(n) as (select 1 union all select n + 1 from r where n < 3000000)"
        " select 'OK' as status, count(*) as actual from r"
    )
    (tmp_path / "data.db").touch()
    config = tmp_path / "dg.yaml"
    config.write_text(
        "sources:\n"
        "  - {name: orders, kind: sqlite, connection: {path: data.db},\n"
        f'     sql_checks: [{{name: slow, sql: "{slow}"}}]}}\n'
        "state: {path: state.db}\n"
    )
    state = tmp_path / "state.db"
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("driftguard")), "--config", str(config), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not state.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # past opening: the run is collecting now
    state.unlink()
    _, stderr = process.communicate(timeout=120)
    assert process.returncode != 0, "the run's results were lost silently"
    (line,) = stderr.strip().splitlines()
    assert str(state) in line and "deleted or replaced" in line
