"""`driftguard report` reads any state through the Store port: the demo's story on DynamoDB (moto)
gives the same report as on SQLite."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from tests.browser.support import embedded, run_demo

from driftguard.cli import main

TABLE = "driftguard-report"
STATE = f"dynamodb://{TABLE}?region=eu-west-1"


def _report(config: Path, state: str, out: Path) -> dict[str, Any]:
    result = CliRunner().invoke(
        main, ["-c", str(config), "--state", state, "report", "-o", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["bytes"] == out.stat().st_size
    return embedded(out.read_text())


def _essentials(data: dict[str, Any]) -> list[tuple[object, ...]]:
    return [
        (
            c["label"],
            c["state"],
            c["reason"],
            c["chart"] and c["chart"]["value"],
            c["chart"] and c["chart"]["anomaly"],
        )
        for c in data["checks"]
    ]


def test_the_same_report_from_dynamodb_and_from_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto import mock_aws

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        from driftguard.store.dynamodb import DynamoStore

        DynamoStore(table_name=TABLE, region="eu-west-1").create_table()
        on_dynamo = run_demo(tmp_path / "dynamo", STATE)
        dynamo = _report(on_dynamo.config_path, STATE, tmp_path / "d.html")
    on_sqlite = run_demo(tmp_path / "sqlite")
    sqlite = _report(on_sqlite.config_path, str(on_sqlite.state), tmp_path / "s.html")
    assert _essentials(dynamo) == _essentials(sqlite)
    assert [e["text"] for e in dynamo["schema_changes"]] == [e["text"] for e in sqlite["schema_changes"]]
    assert sum(c["state"] == "FIRING" for c in dynamo["checks"]) >= 3
