"""Local state size over many runs, with and without `state.retention`.

.venv/bin/python -m bench.perf.state_retention [--tables 600] [--runs 1000] [--retention-hours 168]

One real run is made first: `driftguard`'s engine checks a SQLite source of `--tables` tables
(each with volume, schema and two column metrics) into a fresh state, and the commit it writes
(snapshot, points, alert states, transitions, notifications) is captured. That commit is then
replayed `--runs` times, an hour apart (times and ids shifted, notifications marked delivered),
into two state files: one without retention and one whose retention keeps `--retention-hours`.
Replaying one real commit instead of collecting 1,000 times keeps the bench to minutes while
every run writes what a real run of that source writes. Printed: the file sizes every so often
and at the end, and bytes per run.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

from driftguard.config import Config
from driftguard.engine import Engine
from driftguard.model import DeliveryRecord, DeliveryStatus, RunCommit
from driftguard.store.sqlite import SqliteStore

START = datetime(2026, 1, 1, tzinfo=UTC)


def _data(path: Path, tables: int) -> None:
    with closing(sqlite3.connect(path)) as db:
        for t in range(tables):
            db.execute(f"create table t{t} (id integer primary key, amount real, name text, created_at text)")
            db.executemany(
                f"insert into t{t} values (?, ?, ?, ?)",  # noqa: S608 - bench data
                [(i, i * 1.5, f"n{i % 7}", f"2025-12-31 {i % 24:02d}:00:00") for i in range(50)],
            )
        db.commit()


def one_real_commit(workdir: Path, tables: int) -> RunCommit:
    data = workdir / "data.db"
    _data(data, tables)
    config = Config.model_validate(
        {
            "sources": [
                {
                    "name": "warehouse",
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
                        for t in range(tables)
                    ],
                }
            ]
        }
    )
    store = SqliteStore(workdir / "capture.db")
    captured: list[RunCommit] = []
    commit_run = store.commit_run

    def capture(commit: RunCommit) -> bool:
        captured.append(commit)
        return commit_run(commit)

    store.commit_run = capture  # type: ignore[method-assign]
    Engine(config, store).check("warehouse", START)
    store.close()
    return captured[-1]


def shifted(commit: RunCommit, k: int) -> RunCommit:
    """The commit as if made `k` hours later (a new run: new times, new ids)."""
    d = timedelta(hours=k)
    run = commit.run.model_copy(update={"scheduled_time": commit.run.scheduled_time + d})
    snapshot = commit.snapshot
    if snapshot is not None:
        snapshot = snapshot.model_copy(update={"scheduled_time": snapshot.scheduled_time + d})
    return commit.model_copy(
        update={
            "run": run,
            "snapshot": snapshot,
            "points": [p.model_copy(update={"ts": p.ts + d}) for p in commit.points],
            "states": [],
            "expected_versions": {},
            "transitions": [
                t.model_copy(update={"id": f"{t.id}-{k}", "at": t.at + d}) for t in commit.transitions
            ],
            "notifications": [
                n.model_copy(update={"id": f"{n.id}-{k}", "created_at": n.created_at + d})
                for n in commit.notifications
            ],
            "schema_baselines": [],
            "context_version": None,
        }
    )


def _size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=int, default=600)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--retention-hours", type=int, default=168)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        started = time.perf_counter()
        commit = one_real_commit(workdir, args.tables)
        print(
            f"one real run of {args.tables} tables: {len(commit.points)} points, "
            f"{len(commit.transitions)} transitions, {len(commit.notifications)} notifications "
            f"({time.perf_counter() - started:.1f}s)"
        )
        retention = timedelta(hours=args.retention_hours)
        stores = {
            "no retention": SqliteStore(workdir / "forever.db"),
            f"retention {args.retention_hours}h": SqliteStore(workdir / "pruned.db", retention=retention),
        }
        print(f"{'runs':>6} " + " ".join(f"{name + ' MB':>20}" for name in stores))
        every = max(1, args.runs // 10)
        for k in range(1, args.runs + 1):
            replay = shifted(commit, k)
            for store in stores.values():
                store.commit_run(replay)
                for n in replay.notifications:
                    store.record_delivery(
                        DeliveryRecord(
                            notification_id=n.id,
                            channel=n.channel,
                            status=DeliveryStatus.DELIVERED,
                            attempts=1,
                            at=n.created_at,
                        )
                    )
            if k % every == 0 or k == args.runs:
                sizes = [_size_mb(s.path) for s in stores.values()]
                print(f"{k:>6} " + " ".join(f"{size:>20.1f}" for size in sizes))
        for name, store in stores.items():
            (runs,) = store._read("SELECT count(*) FROM runs", ())[0]
            print(
                f"{name}: {_size_mb(store.path):.1f} MB, {runs} runs kept, "
                f"{_size_mb(store.path) * 1e6 / max(runs, 1) / 1e3:.0f} KB per kept run"
            )
            store.close()


if __name__ == "__main__":
    main()
