"""The Lambda runtime's pure helpers: which database drivers X-Ray patches, and that loading a
compiled config never needs PyYAML (a cold start pays for every import)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from driftguard.config import compile_config, parse_config
from driftguard.lambda_runtime import database_drivers

SOURCES = """\
sources:
  - {name: pg, kind: postgres, connection: {host: h, database: d, user: u}}
  - {name: pg-2, kind: postgres, connection: {host: h, database: e, user: u}}
  - {name: lite, kind: sqlite, connection: {path: x.db}}
"""


def test_only_the_drivers_of_configured_sources_are_traced() -> None:
    assert database_drivers(parse_config(SOURCES)) == ("pg8000",)
    mysql = SOURCES + "  - {name: my, kind: mysql, connection: {host: h, database: d, user: u}}\n"
    assert database_drivers(parse_config(mysql)) == ("pg8000", "pymysql")
    assert database_drivers(parse_config("sources: []")) == ()


def test_a_compiled_config_loads_without_yaml(tmp_path: Path) -> None:
    path = tmp_path / "driftguard.json"
    path.write_text(compile_config(parse_config(SOURCES)), encoding="utf-8")
    probe = (
        "import sys; from driftguard.config import load_config; "
        f"c = load_config({str(path)!r}); print(len(c.sources), 'yaml' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["3", "False"]


class _CountingStore:
    def __init__(self) -> None:
        self.reads: list[str | None] = []

    def pending_notifications(self, source: str | None = None) -> list[object]:
        self.reads.append(source)
        return []


def test_the_outbox_is_read_only_after_a_run_that_filled_it() -> None:
    from types import SimpleNamespace

    from driftguard.lambda_runtime import undelivered

    store = _CountingStore()
    rt = SimpleNamespace(store=store)
    summary = {"source": "pg", "scheduled_time": "2026-11-17T10:00:00+00:00"}
    assert undelivered(rt, {**summary, "notified": 0}) == []  # type: ignore[arg-type]
    assert store.reads == []  # a quiet run: no Query
    assert undelivered(rt, {**summary, "notified": 2}) == []  # type: ignore[arg-type]
    assert undelivered(rt, summary) == []  # type: ignore[arg-type]  # cached by an older version
    assert store.reads == ["pg", "pg"]
