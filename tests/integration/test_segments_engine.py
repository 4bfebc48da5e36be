"""Segments end to end on real engines: a per-country orders table on PostgreSQL, MariaDB and a
DuckDB file, checked by the engine with SQLite state. The first run backfills every country from
the table's own rows; a later hour in which one country's orders collapse alerts for that country
only, with the segment in the alert's labels and explanation, in one notification; a country that
stops having rows is a `segment_missing` alert; countries beyond `segment_limit` are one `(other)`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from driftguard.alerts import Labels
from driftguard.collect.connect import dispose_engines
from driftguard.config import Config
from driftguard.engine import Engine
from driftguard.model import CheckKind, FindingStatus
from driftguard.store.sqlite import SqliteStore

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
DAYS = 7
RATES = {"US": 30, "DE": 20, "FR": 15, "GB": 10, "IT": 5}  # orders per hour


@pytest.fixture(autouse=True)
def _fresh_engine_cache() -> Iterator[None]:
    yield
    dispose_engines()


@pytest.fixture(params=["postgres", "mysql", "duckdb"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "duckdb":
        from integration.test_sql_metrics_engine import DuckdbFile

        return DuckdbFile(tmp_path / "lake.duckdb")
    return request.getfixturevalue("pg" if request.param == "postgres" else "mysql")


def orders(start: datetime, hours: int, rate: Callable[[str, int], int]) -> list[dict[str, Any]]:
    """`rate(country, hour)` orders per country in each of `hours` hours from `start`."""
    rows = []
    for h in range(hours):
        for country in RATES:
            n = rate(country, h)
            for i in range(n):
                at = start + timedelta(hours=h, seconds=i * 3300 // max(n, 1))
                amount = None if i % 10 == 0 else 10 + i % 7
                rows.append({"created_at": at.replace(tzinfo=None), "country": country, "amount": amount})
    return rows


def steady(country: str, hour: int) -> int:
    return RATES[country] + hour * 7 % 3


def test_one_country_collapsing_alerts_for_that_segment_only(db: Any, tmp_path: Path) -> None:
    schema = getattr(db, "schema", None)
    metadata = sa.MetaData(schema=schema)
    table = sa.Table(
        "orders",
        metadata,
        sa.Column("created_at", sa.DateTime, index=True),
        sa.Column("country", sa.String(8)),
        sa.Column("amount", sa.Numeric(10, 2)),
    )
    metadata.create_all(db.engine)
    with db.engine.begin() as conn:
        conn.execute(table.insert(), orders(NOW - timedelta(days=DAYS), DAYS * 24, steady))
    notified = tmp_path / "notifications.jsonl"
    source = {
        **db.source_yaml(),
        "schedule": {"rate": "1h"},
        "tables": [
            {
                "name": "orders",
                **({"schema": schema} if schema else {}),
                "segment_by": "country",
                "segment_limit": 4,
                "checks": {
                    "volume": {"column": "created_at", "period": "1h"},
                    "freshness": {"column": "created_at"},
                    "columns": [{"name": "amount", "metrics": ["null_rate", "mean"]}],
                },
            }
        ],
    }
    config = Config.model_validate(
        {
            "sources": [source],
            "channels": [{"name": "file", "type": "file", "path": str(notified)}],
            "route": {"receivers": ["file"]},
        }
    )
    store = SqliteStore(tmp_path / "state.db")
    try:
        first = Engine(config, store).check("src", NOW)
        volume = {f.key.segment: f for f in first.findings if f.key.check == CheckKind.VOLUME}
        # the four largest countries on their own, Italy in (other); each judged on its backfill
        assert set(volume) == {"country=US", "country=DE", "country=FR", "country=GB", "(other)"}
        assert all(f.status == FindingStatus.OK for f in volume.values()), [
            f.explanation.reason for f in volume.values()
        ]
        assert "(other) (1 segments beyond the segment_limit)" in volume["(other)"].explanation.reason
        de_key = volume["country=DE"].key
        assert len(store.series(de_key, before=NOW, limit=10_000)) >= DAYS * 24 - 2
        columns = [f for f in first.findings if f.key.check == CheckKind.COLUMN]
        assert {f.key.segment for f in columns} == set(volume)
        # column metrics too learn from each segment's backfilled periods: judged on day one
        assert [f.explanation.reason for f in columns if f.status == FindingStatus.LEARNING] == []

        # next hour: Germany's orders collapse, everyone else as usual
        with db.engine.begin() as conn:
            conn.execute(
                table.insert(), orders(NOW, 1, lambda c, h: 1 if c == "DE" else steady(c, DAYS * 24 + h))
            )
        second = Engine(config, store).check("src", NOW + timedelta(hours=1))
        anomalies = [f for f in second.findings if f.status == FindingStatus.ANOMALY]
        assert anomalies, "the collapse of country=DE was not found"
        assert {f.key.segment for f in anomalies} == {"country=DE"}, [f.explanation.reason for f in anomalies]
        drop = next(f for f in anomalies if f.key.check == CheckKind.VOLUME)
        assert drop.explanation.reason.startswith("orders segment country=DE received 1 rows")
        assert drop.explanation.direction == "drop"
        assert Labels.of(drop.key, drop.severity, config.sources[0]).values("segment") == ("country=DE",)
        assert len(second.notifications) == 1  # one grouped message for the run, not one per segment
        sent = [json.loads(line) for line in notified.read_text().splitlines()]
        assert any("country=DE" in json.dumps(n) for n in sent)

        # the hour after: Germany is back, Great Britain has no row at all
        with db.engine.begin() as conn:
            conn.execute(
                table.insert(),
                orders(NOW + timedelta(hours=1), 1, lambda c, h: 0 if c == "GB" else steady(c, h)),
            )
        third = Engine(config, store).check("src", NOW + timedelta(hours=2))
        missing = [f for f in third.findings if f.key.check == CheckKind.SEGMENT_MISSING]
        gb = next(f for f in missing if f.key.segment == "country=GB")
        assert gb.status == FindingStatus.ANOMALY
        assert gb.explanation.reason.startswith("segment country=GB of orders is missing: it has no rows")
        de_volume = next(
            f for f in third.findings if f.key.check == CheckKind.VOLUME and f.key.segment == "country=DE"
        )
        assert de_volume.status == FindingStatus.OK, de_volume.explanation.reason
        assert not any(
            f.key.check == CheckKind.VOLUME and f.key.segment == "country=GB" for f in third.findings
        )
    finally:
        store.close()
