"""Grouped notifications through the CLI: `run` holds a route's notices for group_wait and says when
they are due, `flush` sends them once, `flush --wait` waits for them."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from tests.cli.conftest import T0, Shop, load_orders

WAIT = timedelta(minutes=10)


def notices(shop: Shop) -> list[dict[str, object]]:
    path = shop.root / "notices.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def group_the_route(config: Path) -> None:
    doc = yaml.safe_load(config.read_text(encoding="utf-8"))
    doc["route"].update({"group_by": ["owner"], "group_wait": "10m", "group_interval": "1h"})
    config.write_text(yaml.safe_dump(doc), encoding="utf-8")


@pytest.fixture
def grouped_shop(shop: Shop) -> Shop:
    group_the_route(shop.config)
    load_orders(shop.db, {T0 - timedelta(hours=1): 20})  # a thin load: one anomaly
    return shop


def test_run_holds_the_notice_and_flush_sends_it_once_due(grouped_shop: Shop) -> None:
    shop = grouped_shop
    run = shop.cli("run")
    assert run.exit_code == 1, run.output  # the anomaly, as ever
    assert notices(shop) == []
    assert "1 notice(s) wait in 1 group(s); the next is due at 2026-11-17 11:10" in run.stdout

    assert shop.json("flush") == {"grouped_deliveries": []}  # 5 minutes after the run: not yet
    listed = shop.cli("deliveries").stdout
    assert "waiting  1 notice(s) for audit owner=data-team, due 2026-11-17 11:10" in listed, listed
    (waiting,) = shop.json("deliveries")["waiting"]
    assert waiting["due"].startswith("2026-11-17T11:10") and len(waiting["notices"]) == 1
    shop.clock["now"] = T0 + WAIT
    (sent,) = shop.json("flush")["grouped_deliveries"]
    assert sent["status"] == "delivered" and sent["channel"] == "audit"
    (notice,) = notices(shop)
    assert shop.json("flush") == {"grouped_deliveries": []}
    assert len(notices(shop)) == 1 and notice["id"] == sent["notification_id"]


def test_flush_wait_sleeps_until_the_group_is_due(
    grouped_shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = grouped_shop
    report = shop.json("run", codes=(1,))
    ((waiting,),) = [r["grouped"] for r in report["runs"]]
    assert waiting["group"]["labels"] == {"owner": "data-team"} and report["grouped_deliveries"] == []
    slept: list[float] = []

    def sleep(seconds: float) -> None:  # the clock moves as the process would have slept
        slept.append(seconds)
        shop.clock["now"] += timedelta(seconds=seconds)

    monkeypatch.setattr("time.sleep", sleep)
    result = shop.cli("flush", "--wait")
    assert result.exit_code == 0, result.output
    assert slept == [300.0] and len(notices(shop)) == 1  # 11:05 -> 11:10
    assert "sent to audit" in result.stdout


def test_the_init_starters_grouping_lines_are_valid_once_uncommented(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from driftguard.cli.monitor import init
    from driftguard.config import parse_config

    path = tmp_path / "driftguard.yaml"
    assert CliRunner().invoke(init, [str(path)]).exit_code == 0
    text = path.read_text(encoding="utf-8")
    assert parse_config(text).route.group_by is None  # commented out: no grouping by default
    uncommented = re.sub(r"^  # (group_\w+: )", r"  \1", text, flags=re.MULTILINE)
    route = parse_config(uncommented).route
    assert (route.group_by, route.group_wait, route.group_interval) == (
        ["owner"],
        timedelta(seconds=30),
        timedelta(minutes=5),
    )
