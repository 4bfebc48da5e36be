"""Learned SQL metrics end to end on real engines: the engine runs the metric's query against
PostgreSQL, MariaDB or a DuckDB file, learns from the rows its `ts` column returns on the first
run, and on a later run alerts on a new hour that departs from them, with the volume explanation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from driftguard.collect.connect import dispose_engines
from driftguard.config import Config
from driftguard.engine import Engine
from driftguard.model import CheckKey, CheckKind, FindingStatus
from driftguard.store.sqlite import SqliteStore

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
HOURS = 14 * 24  # two weeks of hourly history
HOUR_OF = {
    "postgres": "date_trunc('hour', paid_at)",
    "mysql": "timestampadd(hour, timestampdiff(hour, '1970-01-01', paid_at), '1970-01-01')",
    "duckdb": "date_trunc('hour', paid_at)",
}


@pytest.fixture(autouse=True)
def _fresh_engine_cache() -> Iterator[None]:
    yield
    dispose_engines()


class DuckdbFile:
    kind = "duckdb"

    def __init__(self, path: Path) -> None:
        self.path = path
        # NullPool: the file is released after each statement, so the read-only collector can open it
        self.engine = sa.create_engine(f"duckdb:///{path}", poolclass=sa.pool.NullPool)

    def source_yaml(self) -> dict[str, Any]:
        return {"name": "src", "kind": "duckdb", "connection": {"path": str(self.path)}}


@pytest.fixture(params=["postgres", "mysql", "duckdb"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "duckdb":
        return DuckdbFile(tmp_path / "lake.duckdb")
    return request.getfixturevalue("pg" if request.param == "postgres" else "mysql")


def payments(start: datetime, hours: int, per_hour: Any) -> list[dict[str, Any]]:
    """`per_hour(i)` payments in each of `hours` hours from `start`, alternating card/transfer."""
    rows = []
    for h in range(hours):
        for n in range(per_hour(h)):
            at = start + timedelta(hours=h, minutes=n * 50 // max(per_hour(h), 1))
            rows.append({"paid_at": at.replace(tzinfo=None), "method": "card" if n % 2 else "transfer"})
    return rows


def test_a_metric_learns_from_its_own_ts_rows_and_alerts_on_a_spike(db: Any, tmp_path: Path) -> None:
    schema = getattr(db, "schema", None)
    metadata = sa.MetaData(schema=schema)
    name = f'"{schema}".payments' if schema else "payments"
    table = sa.Table(
        "payments", metadata, sa.Column("paid_at", sa.DateTime), sa.Column("method", sa.String(20))
    )
    metadata.create_all(db.engine)
    with db.engine.begin() as conn:
        conn.execute(table.insert(), payments(NOW - timedelta(hours=HOURS), HOURS, lambda h: 10 + h * 7 % 5))
    source = {
        **db.source_yaml(),
        "schedule": {"rate": "1h"},
        "sql_metrics": [
            {
                "name": "hourly_payments",
                "sql": f"select {HOUR_OF[db.kind]} as ts, count(*) as value from {name} group by 1",  # noqa: S608
                "period": "1h",
                "severity": "critical",
            },
            {
                "name": "by_method",
                "sql": f"select method as segment, count(*) as value from {name} group by 1",  # noqa: S608
            },
        ],
    }
    notified = tmp_path / "notifications.jsonl"
    config = Config.model_validate(
        {
            "sources": [source],
            "channels": [{"name": "file", "type": "file", "path": str(notified)}],
            "route": {"receivers": ["file"]},
        }
    )
    store = SqliteStore(tmp_path / "state.db")
    hourly = CheckKey(source="src", check=CheckKind.SQL_METRIC, metric="hourly_payments")
    try:
        first = Engine(config, store).check("src", NOW)
        found = {f.key: f for f in first.findings}
        # judged against the two weeks the query itself returned: no learning period
        assert found[hourly].status == FindingStatus.OK, found[hourly].explanation.reason
        assert len(store.series(hourly, before=NOW, limit=10_000)) == HOURS
        segments = {k.segment for k in found if k.metric == "by_method"}
        assert segments == {None, "card", "transfer"}

        with db.engine.begin() as conn:
            conn.execute(table.insert(), payments(NOW, 1, lambda h: 200))
        second = Engine(config, store).check("src", NOW + timedelta(hours=1))
        spike = {f.key: f for f in second.findings}[hourly]
        assert spike.status == FindingStatus.ANOMALY
        assert "hourly_payments was 200 at Tue 10 Mar 12:00" in spike.explanation.reason
        assert spike.explanation.expected is not None and 9 <= spike.explanation.expected <= 15
        sent = [json.loads(line) for line in notified.read_text().splitlines()]
        assert any("hourly_payments" in json.dumps(n) for n in sent)
    finally:
        store.close()
