"""The Lambda runtime's pure helpers: which database drivers X-Ray patches, and that loading a
compiled config never needs PyYAML (a cold start pays for every import)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import cast

import pytest

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


def test_a_check_feeds_its_cadences_heartbeat_and_a_critical_sources_alarm(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The series infra/constructs/monitoring.py alarms on: ChecksRun by cadence for every check,
    CheckFailures by source for sources tagged critical (and nothing per source for the others)."""
    import json

    from aws_lambda_powertools import Metrics

    from driftguard.lambda_runtime import Runtime, emit_check_metrics
    from driftguard.schedules import cadence_id
    from driftguard.secrets import SecretResolver
    from driftguard.store.base import Store

    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "DriftGuard-Payments")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "DriftGuard")
    config = parse_config(
        "sources:\n"
        "  - {name: pg, kind: postgres, tags: [critical], schedule: {cron: '0 6 * * 1-5'},"
        " connection: {host: h, database: d, user: u}}\n"
        "  - {name: pg-2, kind: postgres, connection: {host: h, database: e, user: u}}\n"
    )
    rt = Runtime(config=config, store=cast("Store", None), secrets=SecretResolver())
    summary = {"duplicate": False, "findings": 1, "anomalies": 0, "firing": 0, "duration_ms": 5.0}
    for source in ("pg", "pg-2"):
        emit_check_metrics(Metrics(), rt, {**summary, "source": source, "status": "failed"})
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    by_dimension = [
        (blob["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"], d, blob[d], blob["service"])
        for blob in lines
        for d in ("cadence", "source")
        if d in blob
    ]
    assert by_dimension == [
        ("ChecksRun", "cadence", cadence_id(config.sources[0].schedule), "DriftGuard-Payments"),  # type: ignore[arg-type]
        ("CheckFailures", "source", "pg", "DriftGuard-Payments"),
        ("ChecksRun", "cadence", cadence_id(config.defaults.schedule), "DriftGuard-Payments"),
    ]
