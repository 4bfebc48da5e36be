"""The CLI through its real entry point (the installed `driftguard` script, in a subprocess)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DRIFTGUARD = str(Path(sys.executable).with_name("driftguard"))


def driftguard(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [DRIFTGUARD, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )
    if check and result.returncode != 0:
        raise AssertionError(f"driftguard {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
    return result


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(result.stdout)


# --------------------------------------------------------------------------------------------- setup


def test_init_validate_and_schema(tmp_path: Path) -> None:
    cfg = tmp_path / "dg.yaml"
    driftguard("init", str(cfg), "--kind", "sqlite")
    report = as_json(driftguard("--config", str(cfg), "validate", "--json"))
    assert report["valid"] and report["sources"][0]["kind"] == "sqlite"
    assert driftguard("init", str(cfg), check=False).returncode != 0  # no silent overwrite
    schema = as_json(driftguard("schema"))
    assert "sources" in schema["properties"]


def test_a_bad_config_exits_2_and_names_file_line_and_key(tmp_path: Path) -> None:
    cfg = tmp_path / "dg.yaml"
    cfg.write_text("sources:\n  - name: a\n    kind: sqlite\n    connection: {path: a.db, pasword: x}\n")
    result = driftguard("--config", str(cfg), "validate", check=False)
    assert result.returncode == 2
    assert f"{cfg}:4" in result.stderr and "pasword" in result.stderr
    report = json.loads(driftguard("--config", str(cfg), "validate", "--json", check=False).stdout)
    assert report["valid"] is False and any("pasword" in p for p in report["problems"])


# --------------------------------------------------------------------------------------------- demo


def test_demo_finds_what_was_broken_and_explains_it(tmp_path: Path) -> None:
    report = as_json(driftguard("demo", "--dir", str(tmp_path / "demo"), "--json"))
    last = report["runs"][1]
    anomalies = {
        (f["key"]["table"], f["key"]["check"], f["key"]["metric"])
        for f in last["findings"]
        if f["status"] == "anomaly"
    }
    assert ("orders", "volume", "rows_per_period") in anomalies  # the broken load
    assert ("events", "freshness", "lag_seconds") in anomalies  # the feed that stopped
    assert ("customers", "schema", "schema") in anomalies  # the migration
    assert ("orders", "sql", "no_negative_amounts") in anomalies  # the custom check
    for f in last["findings"]:
        if f["status"] == "anomaly":
            assert f["explanation"]["reason"], f  # every alert explains itself
    assert report["seconds"] < 60
    cfg = Path(report["config"])
    explained = driftguard("--config", str(cfg), "explain", "shop")
    assert "expected" in explained.stdout and "orders" in explained.stdout


# --------------------------------------------------------------------------------------------- lifecycle


def _orders_db(path: Path, hours: dict[datetime, int]) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            "create table if not exists orders (id integer primary key, created_at timestamp not null)"
        )
        conn.executemany(
            "insert into orders (created_at) values (?)",
            [
                ((start + timedelta(seconds=i * 3600 // max(n, 1))).strftime("%Y-%m-%d %H:%M:%S"),)
                for start, n in hours.items()
                for i in range(n)
            ],
        )
    conn.close()


def test_a_run_sequence_notifies_exactly_fire_repeat_escalate_resolve_and_respects_silences(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue: "a local `driftguard run` sequence over a changing database gets exactly the
    expected notifications". In-process, with the CLI's clock pinned just after each run's
    scheduled time, as cron would run it: `--at` never reaches into the future."""
    from click.testing import CliRunner

    import driftguard.cli.common
    from driftguard.cli import main

    clock = {"now": datetime(2026, 11, 2, 9, tzinfo=UTC)}
    monkeypatch.setattr(driftguard.cli.common, "utcnow", lambda: clock["now"])

    def cli(*args: str) -> Any:
        result = CliRunner().invoke(main, ["--config", str(cfg), *args, "--json"])
        assert result.exit_code in (0, 1), result.output  # 1: anomalies, per --fail-on
        return json.loads(result.stdout)

    t0 = datetime(2026, 11, 3, 9, tzinfo=UTC)
    db, notices = tmp_path / "shop.db", tmp_path / "notices.jsonl"
    _orders_db(db, {t0 - timedelta(hours=h): 100 for h in range(2, 24 * 21)})  # the loop adds t0-1h
    cfg = tmp_path / "dg.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "sources": [
                    {
                        "name": "shop",
                        "kind": "sqlite",
                        "connection": {"path": str(db)},
                        "schedule": {"rate": "1h"},
                        "tables": [
                            {"name": "orders", "checks": {"volume": {"column": "created_at", "period": "1h"}}}
                        ],
                    }
                ],
                "channels": [{"name": "audit", "type": "file", "path": str(notices)}],
                "route": {"receivers": ["audit"]},
                "alerting": {"repeat_interval": "2h"},
                "state": {"path": str(tmp_path / "state.db")},
            }
        )
    )
    loads = [100, 40, 40, 40, 0, 100, 40, 40, 40]  # rows loaded in the hour before run k
    expected = [
        [],  # normal
        [("firing", "warning")],  # the load broke
        [],  # still broken, inside repeat_interval
        [("repeat", "warning")],  # 2h later: reminded once
        [("escalated", "critical")],  # nothing loaded at all
        [("resolved", "critical")],  # back to normal
        [],  # broken again, but silenced
        [],  # still silenced
        [("firing", "warning")],  # the silence ended: never told about this incident, so now
    ]
    seen: list[list[tuple[str, str]]] = []
    for k, rows in enumerate(loads):
        at = t0 + timedelta(hours=k)
        _orders_db(db, {at - timedelta(hours=1): rows})
        if k == 6:
            clock["now"] = at - timedelta(minutes=30)
            until = (t0 + timedelta(hours=7, minutes=30)).isoformat()
            cli("silence", "--source", "shop", "--until", until, "--comment", "reload")
        clock["now"] = at + timedelta(minutes=5)
        before = len(notices.read_text().splitlines()) if notices.exists() else 0
        report = cli("run", "--at", at.isoformat())
        assert report["runs"][0]["status"] == "ok" and report["runs"][0]["replay"] is True
        lines = notices.read_text().splitlines()[before:] if notices.exists() else []
        seen.append([(a["kind"], a["severity"]) for n in map(json.loads, lines) for a in n["alerts"]])
    assert seen == expected
    # A silenced alert still changed state, and the audit trail says who muted it.
    history = cli("history", "shop", "--limit", "20")
    muted = [t for t in history["transitions"] if t["silenced_by"]]
    assert muted and muted[-1]["to_state"] == "FIRING"
    # Re-running a scheduled time that was already checked changes nothing and says so.
    again = cli("run", "--at", (t0 + timedelta(hours=8)).isoformat())
    assert again["runs"][0]["duplicate"] is True and again["runs"][0]["replay"] is False
    assert len(notices.read_text().splitlines()) == sum(len(s) > 0 for s in seen)


def test_dry_run_changes_no_state_and_status_history_explain_report(tmp_path: Path) -> None:
    at = datetime(2026, 11, 17, 11, tzinfo=UTC)
    db = tmp_path / "shop.db"
    _orders_db(db, {at - timedelta(hours=h): 50 for h in range(1, 24 * 15)})
    cfg = tmp_path / "dg.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "sources": [
                    {
                        "name": "shop",
                        "kind": "sqlite",
                        "connection": {"path": str(db)},
                        "tables": [
                            {"name": "orders", "checks": {"volume": {"column": "created_at"}, "schema": True}}
                        ],
                    }
                ],
                "state": {"path": str(tmp_path / "state.db")},
            }
        )
    )
    dry = as_json(
        driftguard("--config", str(cfg), "check", "shop", "--at", at.isoformat(), "--dry-run", "--json")
    )
    assert dry["dry_run"] and dry["findings"]
    assert not (tmp_path / "state.db").exists()  # a dry run stores nothing, not even an empty state
    missing = driftguard("--config", str(cfg), "status", "--json", check=False)
    assert missing.returncode == 2 and "state.db does not exist" in missing.stderr
    real = as_json(
        driftguard(
            "--config", str(cfg), "check", "shop", "--at", at.isoformat(), "--json", "--fail-on", "never"
        )
    )
    assert not real["dry_run"] and real["status"] == "ok"
    status = as_json(driftguard("--config", str(cfg), "status", "--json"))
    assert status["sources"][0]["last_run"]["scheduled_time"].startswith("2026-11-17T11:00")
    history = as_json(
        driftguard(
            "--config",
            str(cfg),
            "history",
            "shop",
            "--as-of",
            (at - timedelta(hours=1)).isoformat(),
            "--json",
        )
    )
    assert history["snapshots"] == []  # nothing had been collected yet at that time
    history = as_json(driftguard("--config", str(cfg), "history", "shop", "--table", "orders", "--json"))
    assert [s["scheduled_time"][:16] for s in history["snapshots"]] == ["2026-11-17T11:00"]
    explained = as_json(driftguard("--config", str(cfg), "explain", "shop", "--all", "--json"))
    assert {f["key"]["check"] for f in explained["findings"]} >= {"volume", "schema"}


# --------------------------------------------------------------------------------------------- postgres


@pytest.mark.postgres
def test_postgres_example_run_reports_snapshots_and_findings(_pg_admin: Any, tmp_path: Path) -> None:
    """The README's promise: `driftguard run --config examples/postgres.yaml --json` against the
    local PostgreSQL reports snapshots and findings."""
    seed = (REPO / "examples" / "postgres-seed.sql").read_text()
    with _pg_admin.begin() as conn:
        conn.exec_driver_sql(seed)
    try:
        folder = tmp_path / "examples"
        folder.mkdir()
        shutil.copy(REPO / "examples" / "postgres.yaml", folder / "postgres.yaml")
        report = as_json(
            driftguard("--config", str(folder / "postgres.yaml"), "run", "--json", "--fail-on", "never")
        )
        (run,) = report["runs"]
        assert run["status"] == "ok" and run["error"] is None
        findings = {(f["key"]["table"], f["key"]["check"]) for f in run["findings"]}
        assert {
            ("orders", "volume"),
            ("orders", "freshness"),
            ("orders", "schema"),
            ("payments", "volume"),
            ("audit_log", "freshness"),
            ("orders", "sql"),
        } <= findings
        stale = [f for f in run["findings"] if f["key"]["table"] == "audit_log"]
        assert stale[0]["status"] == "anomaly"  # the seed's audit log stopped 2 days ago (max_age 1d)
        history = as_json(
            driftguard("--config", str(folder / "postgres.yaml"), "history", "shop-pg", "--json")
        )
        tables = {t["table"]: t for t in history["snapshots"][0]["tables"]}
        assert tables["payments"]["row_count_method"] == "statistics"  # no scan without a time column
        assert tables["orders"]["period_counts"][0]["count"] > 0
    finally:
        with _pg_admin.begin() as conn:
            conn.exec_driver_sql("drop schema if exists driftguard_example cascade")
