"""Operators manage the deployed monitor from their terminal: the CLI on DynamoDB state."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from driftguard.cli import main
from driftguard.model import RunCommit, RunRecord, RunStatus

TABLE = "driftguard-state"
STATE = f"dynamodb://{TABLE}?region=eu-west-1"


@pytest.fixture
def deployed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    from moto import mock_aws

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(key, value)
    cfg = tmp_path / "driftguard.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "sources": [
                    {
                        "name": "shop",
                        "kind": "postgres",
                        "connection": {"host": "db", "database": "shop", "user": "u"},
                        "tables": [{"name": "orders"}],
                    }
                ],
            }
        )
    )
    with mock_aws():
        from driftguard.store.dynamodb import DynamoStore

        store = DynamoStore(table_name=TABLE, region="eu-west-1")
        store.create_table()
        at = datetime(2026, 11, 17, 11, tzinfo=UTC)
        store.commit_run(
            RunCommit(
                run=RunRecord(
                    source="shop",
                    scheduled_time=at,
                    started_at=at,
                    finished_at=at + timedelta(seconds=2),
                    status=RunStatus.OK,
                    findings=1,
                ),
                snapshot=None,
                points=[],
            )
        )
        yield cfg


def invoke(*args: str) -> Any:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_status_silence_and_silences_on_dynamodb_state(deployed: Path) -> None:
    status = invoke("--config", str(deployed), "--state", STATE, "status", "--json")
    assert status["sources"][0]["last_run"]["status"] == "ok"
    invoke(
        "--config",
        str(deployed),
        "--state",
        STATE,
        "silence",
        "--source",
        "shop",
        "--duration",
        "2h",
        "--comment",
        "migration",
        "--json",
    )
    silences = invoke("--config", str(deployed), "--state", STATE, "silences", "--json")
    assert [s["comment"] for s in silences] == ["migration"]
