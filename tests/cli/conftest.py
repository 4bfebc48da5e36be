"""A small shop in SQLite, its config, and the CLI run in-process with a pinned clock."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

import driftguard.cli.common
from driftguard.cli import main

# A Tuesday 11:00 UTC: a busy weekday hour, so a thin load stands out.
T0 = datetime(2026, 11, 17, 11, tzinfo=UTC)
HOURS_OF_HISTORY = 24 * 21


def load_orders(db: Path, hours: dict[datetime, int], table: str = "orders") -> None:
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(
            f'create table if not exists "{table}" (id integer primary key, created_at timestamp not null, '
            "amount real, status text)"
        )
        conn.executemany(
            f'insert into "{table}" (created_at, amount, status) values (?, ?, ?)',  # noqa: S608 - test names
            [
                (
                    (start + timedelta(seconds=i * 3600 // max(n, 1))).strftime("%Y-%m-%d %H:%M:%S"),
                    None if i % 10 == 0 else float(i),
                    None if i % 4 == 0 else "paid",
                )
                for start, n in hours.items()
                for i in range(n)
            ],
        )
    conn.close()


@dataclass
class Shop:
    """A workspace: a database, a config, a state path, and the CLI pointed at them."""

    root: Path
    db: Path
    config: Path
    state: Path
    clock: dict[str, datetime]

    def cli(self, *args: str, config: bool = True) -> Result:
        prefix = ["--config", str(self.config)] if config else []
        return CliRunner().invoke(main, [*prefix, *args], catch_exceptions=True)

    def json(self, *args: str, codes: tuple[int, ...] = (0,)) -> Any:
        result = self.cli(*args, "--json")
        assert result.exit_code in codes, (result.exit_code, result.output)
        return json.loads(result.stdout)

    def at(self, when: datetime) -> None:
        """Pin the CLI's clock (a few minutes after `when`, as a scheduler would run it)."""
        self.clock["now"] = when + timedelta(minutes=5)


def write_config(
    path: Path, db: Path, state: Path, *, tables: list[dict[str, Any]] | None = None, **extra: Any
) -> None:
    source = {
        "name": "shop",
        "kind": "sqlite",
        "connection": {"path": str(db)},
        "schedule": {"rate": "1h"},
        "owner": "data-team",
        "tags": ["tier-1"],
        "tables": tables
        or [
            {
                "name": "orders",
                "checks": {
                    "volume": {"column": "created_at", "period": "1h"},
                    "schema": True,
                    "columns": [
                        {"name": "amount", "metrics": ["null_rate"]},
                        {"name": "status", "metrics": ["null_rate"]},
                    ],
                },
            }
        ],
    }
    doc = {
        "sources": [source],
        "channels": [{"name": "audit", "type": "file", "path": str(path.parent / "notices.jsonl")}],
        "route": {"receivers": ["audit"]},
        "state": {"path": str(state)},
        **extra,
    }
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Shop]:
    db, cfg, state = tmp_path / "shop.db", tmp_path / "dg.yaml", tmp_path / "state" / "state.db"
    load_orders(db, {T0 - timedelta(hours=h): 100 for h in range(2, HOURS_OF_HISTORY)})
    write_config(cfg, db, state)
    clock = {"now": T0 + timedelta(minutes=5)}
    monkeypatch.setattr(driftguard.cli.common, "utcnow", lambda: clock["now"])
    monkeypatch.chdir(tmp_path)
    yield Shop(tmp_path, db, cfg, state, clock)
