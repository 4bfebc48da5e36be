"""kill -9 of `driftguard run` at random points, repeated: whatever the moment, the state keeps
its invariants. A check that completed (its run is committed) has its snapshot; no run, snapshot
or transition is stored twice; each fingerprint's transitions chain (each starts where the
previous one ended); and checking the same scheduled times again completes exactly what the
kills interrupted, once.

Runs the installed `driftguard` script on SQLite sources; the kill points are drawn from a seeded
random generator over the length of an uninterrupted run, so they fall in start-up, collection,
detection, commit and delivery alike."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from contextlib import closing
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import yaml

from driftguard.config import load_config
from driftguard.engine import Engine
from driftguard.store.sqlite import SqliteStore

KILLS = int(os.environ.get("DRIFTGUARD_FAULT_KILLS", "20"))
SOURCES, TABLES = 3, 2
BASE = datetime(2026, 3, 10, 0, 0, tzinfo=UTC)
DRIFTGUARD = str(Path(sys.executable).with_name("driftguard"))


def make_world(tmp_path: Path) -> Path:
    data = tmp_path / "data.db"
    with closing(sqlite3.connect(data)) as db:
        for t in range(TABLES):
            db.execute(f"create table t{t} (id integer primary key, amount real, created_at text)")
            db.executemany(
                f"insert into t{t} values (?, ?, ?)",  # noqa: S608 - test data
                [
                    (i, i * 1.5, (BASE - timedelta(minutes=20 * i)).strftime("%Y-%m-%d %H:%M:%S"))
                    for i in range(600)
                ],
            )
        db.commit()
    sources = [
        {
            "name": f"s{s}",
            "kind": "sqlite",
            "connection": {"path": str(data)},
            "tables": [
                {
                    "name": f"t{t}",
                    "checks": {
                        "volume": {"column": "created_at"},
                        "schema": True,
                        "columns": [{"name": "amount", "metrics": ["null_rate", "mean"]}],
                    },
                }
                for t in range(TABLES)
            ],
            # always alerting: every run moves alert states and sends notifications
            "sql_checks": [{"name": "always", "sql": "select 'ALERT' as status, 1 as actual"}],
        }
        for s in range(SOURCES)
    ]
    config = tmp_path / "dg.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "sources": sources,
                "channels": [{"name": "file", "type": "file", "path": str(tmp_path / "sent.jsonl")}],
                "route": {"receivers": ["file"]},
                "alerting": {"repeat_interval": "1h"},
                "state": {"path": str(tmp_path / "state.db")},
            }
        ),
        encoding="utf-8",
    )
    return config


def start_run(config: Path, at: datetime) -> subprocess.Popen[bytes]:
    # --fail-on never: a run that finds anomalies exits 1, and this suite judges state, not alerts
    args = ["--config", str(config), "run", "--at", at.isoformat(), "--workers", "2", "--json"]
    return subprocess.Popen(
        [DRIFTGUARD, *args, "--fail-on", "never"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def rows(state: Path, sql: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(state)) as db:
        return db.execute(sql).fetchall()


def check_invariants(state: Path) -> dict[str, int]:
    runs = rows(state, "select source, scheduled_us, body from runs")
    snapshots = rows(state, "select source, scheduled_us from snapshots")
    collected = {(s, t) for s, t, body in runs if json.loads(body)["status"] != "failed"}
    assert collected <= set(snapshots), "a completed check lost its snapshot"
    assert set(snapshots) <= {(s, t) for s, t, _ in runs}, "a snapshot without its run"
    # in commit order (rowid): each commit moved the state it read, whatever times were checked
    transitions = [json.loads(b) for (b,) in rows(state, "select body from transitions order by rowid")]
    same = Counter((t["fingerprint"], t["at"], t["from_state"], t["to_state"]) for t in transitions)
    assert max(same.values(), default=1) == 1, "a transition stored twice"
    by_fingerprint: dict[str, list[dict[str, Any]]] = {}
    for t in transitions:
        by_fingerprint.setdefault(t["fingerprint"], []).append(t)
    for chain in by_fingerprint.values():
        for before, after in pairwise(chain):
            assert before["to_state"] == after["from_state"], "transitions do not chain"
    return {"runs": len(runs), "snapshots": len(snapshots), "transitions": len(transitions)}


def test_kill_9_at_random_points_never_loses_or_doubles_anything(tmp_path: Path) -> None:
    config = make_world(tmp_path)
    state = tmp_path / "state.db"
    started = time.monotonic()
    assert start_run(config, BASE).wait(timeout=120) == 0  # the first run: backfills history
    steady = time.monotonic()
    assert start_run(config, BASE + timedelta(hours=1)).wait(timeout=120) == 0
    full_run = time.monotonic() - steady  # the kills fall anywhere in a run like this one
    times = [BASE + timedelta(hours=k + 2) for k in range(KILLS)]
    rng = random.Random(12)
    killed_mid_run = 0
    for at in times:
        process = start_run(config, at)
        time.sleep(rng.uniform(0.05, 0.9 * full_run))
        if process.poll() is None:
            killed_mid_run += 1
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        check_invariants(state)
    before_repair = check_invariants(state)
    # Check every interrupted time again (what the next `run --at` would do): it completes the
    # sources a kill interrupted and leaves the completed ones alone.
    store = SqliteStore(state)
    engine = Engine(load_config(config), store)
    outcomes = [engine.check(f"s{s}", at) for at in times for s in range(SOURCES)]
    store.close()
    after = check_invariants(state)
    duplicates = sum(o.duplicate for o in outcomes)
    assert after["runs"] == (KILLS + 2) * SOURCES  # every check of every time, once
    assert after["runs"] - before_repair["runs"] == len(outcomes) - duplicates
    elapsed = time.monotonic() - started
    print(
        f"\n{elapsed:.0f}s; {KILLS} kill -9 ({killed_mid_run} mid-run; a whole run takes {full_run:.1f}s): "
        f"before repair {before_repair}, after {after}; repair re-checked {len(outcomes) - duplicates}, "
        f"skipped {duplicates} completed"
    )
    assert killed_mid_run >= KILLS // 2  # the kills did land inside runs
