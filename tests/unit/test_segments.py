"""Segments (`tables[].segment_by`): config validation, the cap and the (other) segment, missing
segments, one notification for many segment alerts, and the DynamoDB item sizes at the cap.

The collection runs against a SQLite file (real SQL, no server); detection and the alert decision
are the engine's own."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from driftguard.collect.connect import dispose_engines
from driftguard.config import Config, parse_config
from driftguard.engine import Engine
from driftguard.errors import ConfigError
from driftguard.model import CheckKind, FindingStatus, Severity
from driftguard.store.dynamodb import _compress
from driftguard.store.sqlite import SqliteStore

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
ITEM_LIMIT = 400 * 1024  # DynamoDB's item size limit


@pytest.fixture(autouse=True)
def _fresh_engine_cache() -> Iterator[None]:
    yield
    dispose_engines()


def table_yaml(extra: str) -> str:
    return f"""
sources:
  - name: shop
    kind: sqlite
    connection: {{path: shop.db}}
    tables:
      - name: orders
{extra}
"""


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            "        segment_by: [a, b, c]\n        checks: {volume: {column: at}}",
            "segment_by takes one column or a list of two, not 3",
        ),
        ("        segment_by: [a, a]\n        checks: {volume: {column: at}}", "names 'a' twice"),
        (
            "        segment_by: country\n        checks: {freshness: {column: at}}",
            "add checks.volume with a",
        ),
        ("        segment_by: country\n        checks: {volume: {}}", "add checks.volume with a"),
        (
            "        segment_by: country\n        segment_limit: 0\n        checks: {volume: {column: at}}",
            "segment_limit: Input should be greater than or equal to 1",
        ),
        ("        segment_by: {country: 1}\n        checks: {volume: {column: at}}", "segment_by"),
        (
            "        segment_by: country\n        segment_limit: 100\n        checks:\n"
            "          volume: {column: at}\n          freshness: {column: at}\n"
            "          columns: [{name: amount, metrics: [null_rate, mean, min, max, quantiles]}]",
            "segment_limit 100 x 9 series a segment (volume, freshness, column metrics) is 900 series, "
            "above the 600 a segmented table may have (each run records every one in an item of at most "
            "400 KB): lower segment_limit to 66",
        ),
    ],
)
def test_bad_segment_settings_are_refused_at_load_with_file_and_line(extra: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(table_yaml(extra), "driftguard.yml")
    text = str(raised.value)
    assert "driftguard.yml:" in text and message in text, text


def test_segment_by_on_a_clickhouse_source_is_refused_at_load_naming_the_table() -> None:
    config = """
sources:
  - name: events
    kind: clickhouse
    connection: {host: 127.0.0.1, database: default, user: default}
    tables:
      - name: clicks
        segment_by: country
        checks: {volume: {column: at}}
"""
    with pytest.raises(ConfigError) as raised:
        parse_config(config, "driftguard.yml")
    text = str(raised.value)
    assert "driftguard.yml:" in text, text
    assert "segment_by is not supported on clickhouse sources yet (table(s) clicks)" in text, text


def test_segment_by_takes_one_column_or_two() -> None:
    one = parse_config(table_yaml("        segment_by: country\n        checks: {volume: {column: at}}"))
    assert one.sources[0].tables[0].segment_by == ("country",)
    assert one.sources[0].tables[0].segment_limit == 100
    two = parse_config(
        table_yaml("        segment_by: [country, device]\n        checks: {volume: {column: at}}")
    )
    assert two.sources[0].tables[0].segment_by == ("country", "device")


def make_orders(
    path: Path, rate: dict[str, int], hours: int, start: datetime, rng: random.Random | None = None
) -> None:
    """`rate[segment]` rows per hour of each of `hours` hours from `start` (ISO text times); with
    `rng`, each hour's count varies by up to 2 and amounts are random (so findings differ in
    every number, as real ones do, and compress no better)."""
    rows = []
    for h in range(hours):
        for country, base in rate.items():
            n = base + (rng.randrange(3) if rng else 0)
            for i in range(n):
                at = (start + timedelta(hours=h, seconds=i * 3000 // n)).strftime("%Y-%m-%d %H:%M:%S")
                rows.append((at, country, rng.uniform(1, 100) if rng else 1.0 + i))
    with sqlite3.connect(path) as conn:
        conn.execute("create table if not exists orders (at text, country text, amount real)")
        conn.executemany("insert into orders values (?, ?, ?)", rows)


def config_for(tmp_path: Path, *, limit: int, columns: bool = False) -> Config:
    checks: dict[str, Any] = {"volume": {"column": "at", "period": "1h"}, "freshness": {"column": "at"}}
    if columns:
        checks["columns"] = [{"name": "amount", "metrics": ["null_rate", "mean"]}]
    return Config.model_validate(
        {
            "sources": [
                {
                    "name": "shop",
                    "kind": "sqlite",
                    "connection": {"path": str(tmp_path / "shop.db")},
                    "schedule": {"rate": "1h"},
                    "tables": [
                        {"name": "orders", "segment_by": "country", "segment_limit": limit, "checks": checks}
                    ],
                }
            ],
            "channels": [{"name": "file", "type": "file", "path": str(tmp_path / "sent.jsonl")}],
            "route": {"receivers": ["file"]},
        }
    )


def test_the_cap_keeps_the_largest_segments_and_sums_the_rest_as_other(tmp_path: Path) -> None:
    rate = {f"c{i:03d}": 1 + i % 7 + (20 if i < 3 else 0) for i in range(12)}
    make_orders(tmp_path / "shop.db", rate, 48, NOW - timedelta(hours=48))
    store = SqliteStore(tmp_path / "state.db")
    try:
        outcome = Engine(config_for(tmp_path, limit=5), store).check("shop", NOW)
    finally:
        store.close()
    assert outcome.snapshot is not None
    segments = outcome.snapshot.tables[0].segments or []
    ranked = sorted(rate, key=lambda c: (-rate[c], f"country={c}"))
    assert [s.segment for s in segments[:5]] == [f"country={c}" for c in ranked[:5]]
    other = segments[5]
    assert (other.segment, other.folded) == ("(other)", 7)
    assert other.row_count == sum(rate[c] for c in ranked[5:])
    assert len(segments) == 6
    volume = {f.key.segment for f in outcome.findings if f.key.check == CheckKind.VOLUME}
    assert volume == {s.segment for s in segments}


def test_a_known_segment_keeps_its_series_below_the_cap_and_one_without_rows_is_missing(
    tmp_path: Path,
) -> None:
    rate = {"big": 30, "mid": 20, "small": 10, "tiny": 3}
    make_orders(tmp_path / "shop.db", rate, 48, NOW - timedelta(hours=48))
    config = config_for(tmp_path, limit=3)
    store = SqliteStore(tmp_path / "state.db")
    try:
        Engine(config, store).check("shop", NOW)
        # next hour: "small" falls to 2 rows (below "tiny"), "mid" has none at all
        make_orders(tmp_path / "shop.db", {"big": 30, "small": 2, "tiny": 3}, 1, NOW)
        later = Engine(config, store).check("shop", NOW + timedelta(hours=1))
    finally:
        store.close()
    assert later.snapshot is not None
    segments = {s.segment: s for s in later.snapshot.tables[0].segments or []}
    # known segments keep their own row even when they rank below the cap
    assert segments["country=small"].present and segments["country=small"].row_count == 2
    assert not segments["country=mid"].present
    found = {(f.key.check, f.key.segment): f for f in later.findings}
    missing = found[(CheckKind.SEGMENT_MISSING, "country=mid")]
    assert missing.status == FindingStatus.ANOMALY
    assert missing.severity == Severity.CRITICAL  # a segment that always has rows dropped to none
    assert "segment country=mid of orders is missing: it has no rows in the 1h to Tue 13:00, expected 20" in (
        missing.explanation.reason
    )
    assert found[(CheckKind.VOLUME, "country=small")].explanation.observed == 2  # its own series
    # "tiny" (3 rows) now ranks among the top 3: it has its own series, backfilled on first sight,
    # and nothing is left over for (other), which is not reported missing
    assert segments["country=tiny"].present and segments["country=tiny"].history is not None
    assert "(other)" not in segments
    assert (CheckKind.SEGMENT_MISSING, "(other)") not in found
    assert (CheckKind.VOLUME, "country=mid") not in found  # missing, not judged as a volume


def test_a_missing_segment_resolves_when_it_has_rows_again(tmp_path: Path) -> None:
    rate = {"a": 30, "b": 20}
    make_orders(tmp_path / "shop.db", rate, 48, NOW - timedelta(hours=48))
    config = config_for(tmp_path, limit=10)
    store = SqliteStore(tmp_path / "state.db")
    try:
        Engine(config, store).check("shop", NOW)
        make_orders(tmp_path / "shop.db", {"a": 30}, 1, NOW)
        gone = Engine(config, store).check("shop", NOW + timedelta(hours=1))
        make_orders(tmp_path / "shop.db", rate, 1, NOW + timedelta(hours=1))
        back = Engine(config, store).check("shop", NOW + timedelta(hours=2))
        states = {
            s.key.segment: s for s in store.alert_states("shop") if s.key.check == CheckKind.SEGMENT_MISSING
        }
    finally:
        store.close()
    missing = [f for f in gone.findings if f.key.check == CheckKind.SEGMENT_MISSING]
    assert [(f.key.segment, f.status) for f in missing] == [("country=b", FindingStatus.ANOMALY)]
    returned = [f for f in back.findings if f.key.check == CheckKind.SEGMENT_MISSING]
    assert [(f.key.segment, f.status) for f in returned] == [("country=b", FindingStatus.OK)]
    assert "segment country=b of orders has rows again: 20" in returned[0].explanation.reason
    assert states["country=b"].state.value == "RESOLVED"


def test_a_hundred_segment_alerts_are_one_notification_and_every_item_fits_dynamodb(tmp_path: Path) -> None:
    """At the default cap, 100 segments (and (other)) all collapsing at once: one grouped
    notification per channel, and the run record, the notification and the snapshot each stay
    far below DynamoDB's 400 KB item limit, compressed as the store writes them."""
    rng = random.Random(17)
    rate = {f"country-{i:03d}": 3 + rng.randrange(12) for i in range(130)}
    make_orders(tmp_path / "shop.db", rate, 30, NOW - timedelta(hours=30), rng)
    config = config_for(tmp_path, limit=100, columns=True)
    store = SqliteStore(tmp_path / "state.db")
    try:
        Engine(config, store).check("shop", NOW)
        make_orders(tmp_path / "shop.db", {c: 60 + rng.randrange(40) for c in rate}, 1, NOW, rng)
        spike = Engine(config, store).check("shop", NOW + timedelta(hours=1))
    finally:
        store.close()
    anomalies = [f for f in spike.findings if f.status == FindingStatus.ANOMALY]
    segments = {f.key.segment for f in anomalies if f.key.check == CheckKind.VOLUME}
    # the new top 100 and the 100 known before (tracked while they have rows), plus (other)
    assert 101 <= len(segments) <= 201
    assert len(spike.notifications) == 1
    assert len(spike.notifications[0].alerts) >= len(segments)
    assert spike.snapshot is not None
    sizes = {
        "run record": len(_compress(spike.run)),
        "notification": len(_compress(spike.notifications[0])),
        "snapshot": len(_compress(spike.snapshot)),
    }
    alerts = len(spike.notifications[0].alerts)
    print(f"segments {len(segments)}, findings {len(spike.findings)}, alerts in the notification {alerts}")
    raw = {
        name: len(model.model_dump_json())
        for name, model in (
            ("run record", spike.run),
            ("notification", spike.notifications[0]),
            ("snapshot", spike.snapshot),
        )
    }
    print("item bodies at 100 segments, compressed:", sizes, "JSON:", raw)
    assert all(size < ITEM_LIMIT for size in sizes.values()), sizes


def test_the_starter_config_with_its_segment_lines_uncommented_validates() -> None:
    from driftguard.cli.monitor import _CONNECTIONS, _SCAFFOLD

    text = _SCAFFOLD.format(
        name="warehouse", kind="postgres", connection=_CONNECTIONS["postgres"], schema_line=""
    )
    assert "# segment_by: country" in text
    enabled = text.replace("# segment_by: country ", "segment_by: country   ").replace(
        "# segment_limit: 100 ", "segment_limit: 100   "
    )
    table = parse_config(enabled).sources[0].tables[0]
    assert (table.segment_by, table.segment_limit) == (("country",), 100)


def test_an_unknown_segment_column_is_the_tables_error_naming_the_key(tmp_path: Path) -> None:
    make_orders(tmp_path / "shop.db", {"a": 5}, 30, NOW - timedelta(hours=30))
    config = config_for(tmp_path, limit=10)
    table = config.sources[0].tables[0].model_copy(update={"segment_by": ("county",)})
    source = config.sources[0].model_copy(update={"tables": [table]})
    config = config.model_copy(update={"sources": [source]})
    store = SqliteStore(tmp_path / "state.db")
    try:
        outcome = Engine(config, store).check("shop", NOW)
    finally:
        store.close()
    errors = [f for f in outcome.findings if f.status == FindingStatus.ERROR]
    assert errors
    assert all("column county does not exist" in f.explanation.reason for f in errors)
    assert all("fix segment_by" in f.explanation.reason for f in errors)


def test_a_steady_check_backfills_no_segment_again(tmp_path: Path) -> None:
    rate = {f"c{i}": 2 + i for i in range(6)}
    make_orders(tmp_path / "shop.db", rate, 30, NOW - timedelta(hours=30))
    config = config_for(tmp_path, limit=3)
    store = SqliteStore(tmp_path / "state.db")
    try:
        first = Engine(config, store).check("shop", NOW)
        make_orders(tmp_path / "shop.db", rate, 1, NOW)
        steady = Engine(config, store).check("shop", NOW + timedelta(hours=1))
    finally:
        store.close()
    assert first.snapshot is not None and steady.snapshot is not None
    assert all(s.history is not None for s in first.snapshot.tables[0].segments or [])
    assert [s.segment for s in steady.snapshot.tables[0].segments or [] if s.history is not None] == []


def test_known_segments_put_those_with_an_open_missing_alert_first() -> None:
    from driftguard.detect.kinds import known_segments
    from driftguard.model import AlertState, AlertStateName, CheckKey

    def state(check: CheckKind, segment: str, active: bool = False) -> AlertState:
        key = CheckKey(source="shop", table="orders", check=check, metric="m", segment=segment)
        name = AlertStateName.FIRING if active else AlertStateName.OK
        return AlertState(key=key, state=name, since=NOW, active_since=NOW if active else None)

    states = [
        state(CheckKind.VOLUME, "country=A"),
        state(CheckKind.VOLUME, "country=Z"),
        state(CheckKind.VOLUME, "(other)"),
        state(CheckKind.SEGMENT_MISSING, "country=Z", active=True),
        state(CheckKind.SEGMENT_MISSING, "country=A"),
        state(CheckKind.FRESHNESS, "country=F"),  # not a volume series: not a known segment
    ]
    known = known_segments(states)
    assert known("orders") == ["country=Z", "(other)", "country=A"]
    assert known("customers") == []


def test_routes_match_on_the_segment_label(tmp_path: Path) -> None:
    from driftguard.alerts import Labels, route
    from driftguard.model import CheckKey

    config = Config.model_validate(
        {
            "channels": [{"name": "console", "type": "console"}, {"name": "de", "type": "console"}],
            "route": {
                "receivers": ["console"],
                "routes": [{"match_re": {"segment": "country=(DE|AT)"}, "receivers": ["de"]}],
            },
            "sources": [{"name": "shop", "kind": "sqlite", "connection": {"path": "x.db"}}],
        }
    )
    source = config.sources[0]
    de = CheckKey(source="shop", table="orders", check=CheckKind.VOLUME, metric="m", segment="country=DE")
    fr = de.model_copy(update={"segment": "country=FR"})
    assert [c for c, _ in route(config.route, Labels.of(de, Severity.WARNING, source))] == ["de"]
    assert [c for c, _ in route(config.route, Labels.of(fr, Severity.WARNING, source))] == ["console"]


# --------------------------------------------------------------------------- detection alone


def judged_missing(history: list[float]) -> Any:
    """The segment_missing finding of a segment with no row now, whose hourly volume series held
    `history` (oldest first, up to the period before), judged by detection alone."""
    from driftguard.detect import evaluate_snapshot
    from driftguard.model import CheckKey, MetricPoint, SegmentSnapshot, Snapshot, TableSnapshot

    config = config_for(Path("unused"), limit=10)
    source = config.sources[0]
    start = NOW - timedelta(hours=1)
    volume = CheckKey(
        source="shop", table="orders", check=CheckKind.VOLUME, metric="rows_per_period", segment="country=DE"
    )
    points = [
        MetricPoint(key=volume, ts=start - timedelta(hours=len(history) - i), value=v)
        for i, v in enumerate(history)
    ]

    def read(key: CheckKey, before: datetime, limit: int) -> list[MetricPoint]:
        return [p for p in points if p.key == key and p.ts < before][-limit:]

    table = TableSnapshot(
        table="orders", segments=[SegmentSnapshot(segment="country=DE", present=False, period_start=start)]
    )
    snapshot = Snapshot(source="shop", scheduled_time=NOW, collected_at=NOW, tables=[table])
    evaluation = evaluate_snapshot(config, source, snapshot, read, lambda _table: None)
    [finding] = [f for f in evaluation.findings if f.key.check == CheckKind.SEGMENT_MISSING]
    [zero] = [p for p in evaluation.points if p.key == volume]
    assert (zero.ts, zero.value) == (start, 0.0)  # the absence is kept in the segment's series
    return finding


def test_a_segment_that_always_has_rows_and_has_none_is_missing_and_critical() -> None:
    finding = judged_missing([20 + i % 3 for i in range(72)])
    assert finding.status == FindingStatus.ANOMALY
    assert finding.severity == Severity.CRITICAL
    assert finding.key.segment == "country=DE"
    assert finding.explanation.reason.startswith(
        "segment country=DE of orders is missing: it has no rows in the 1h to Tue 12:00, expected 20"
    )


def test_a_segment_that_often_has_no_rows_is_not_missing_when_it_has_none() -> None:
    finding = judged_missing([3.0 if i % 4 == 0 else 0.0 for i in range(72)])
    assert finding.status == FindingStatus.OK
    assert finding.explanation.reason.startswith("segment country=DE of orders has no rows in the 1h")


def test_a_segment_without_enough_history_is_learning_not_missing() -> None:
    assert judged_missing([20.0, 21.0]).status == FindingStatus.LEARNING


def test_segments_named_by_other_columns_are_not_missing_after_segment_by_changes(tmp_path: Path) -> None:
    make_orders(tmp_path / "shop.db", {"a": 20, "b": 10}, 30, NOW - timedelta(hours=30))
    config = config_for(tmp_path, limit=10)
    store = SqliteStore(tmp_path / "state.db")
    try:
        Engine(config, store).check("shop", NOW)
        table = config.sources[0].tables[0].model_copy(update={"segment_by": ("country", "amount")})
        source = config.sources[0].model_copy(update={"tables": [table]})
        changed = config.model_copy(update={"sources": [source]})
        make_orders(tmp_path / "shop.db", {"a": 20, "b": 10}, 1, NOW)
        later = Engine(changed, store).check("shop", NOW + timedelta(hours=1))
    finally:
        store.close()
    assert later.snapshot is not None
    names = [s.segment for s in later.snapshot.tables[0].segments or [] if s.segment != "(other)"]
    assert len(names) == 10 and all(n.startswith("country=") and ",amount=" in n for n in names)
    assert not [f for f in later.findings if f.key.check == CheckKind.SEGMENT_MISSING]


def test_a_backfill_that_times_out_leaves_the_segments_learning_and_the_checks_running(
    tmp_path: Path,
) -> None:
    import sqlalchemy as sa

    from driftguard.collect.dialects import SqliteRules
    from driftguard.collect.segments import SegmentCollection
    from driftguard.collect.table_query import TableTarget
    from driftguard.errors import QueryTimeout
    from driftguard.model import ColumnInfo

    make_orders(tmp_path / "shop.db", {"a": 20, "b": 10}, 30, NOW - timedelta(hours=30))
    table = config_for(tmp_path, limit=10).sources[0].tables[0]
    columns = [
        ColumnInfo(name="at", type="text", raw_type="TEXT", nullable=True, position=1),
        ColumnInfo(name="country", type="text", raw_type="TEXT", nullable=True, position=2),
        ColumnInfo(name="amount", type="float", raw_type="REAL", nullable=True, position=3),
    ]
    target = TableTarget(config=table, schema=None, columns=columns, row_estimate=None, where="orders")
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'shop.db'}")
    statements: list[str] = []

    def run(statement: sa.Executable) -> Any:
        text = str(statement)
        statements.append(text)
        if "in_window" in text:  # the backfill's GROUP BY (period, segment)
            raise QueryTimeout("orders: the statement ran past the 30s statement timeout")
        with engine.connect() as conn:
            return conn.execute(statement).fetchall()

    collection = SegmentCollection(target, SqliteRules(), NOW, (), timedelta(days=56))
    try:
        segments = collection.collect(run)
    finally:
        engine.dispose()
    assert [(s.segment, s.row_count, s.history) for s in segments] == [
        ("country=a", 20, None),
        ("country=b", 10, None),
    ]
    assert sum("in_window" in s for s in statements) == 1


def test_a_long_value_names_its_segment_by_its_first_hundred_characters(tmp_path: Path) -> None:
    long = "x" * 150
    make_orders(tmp_path / "shop.db", {long: 5, "short": 3}, 3, NOW - timedelta(hours=3))
    store = SqliteStore(tmp_path / "state.db")
    try:
        outcome = Engine(config_for(tmp_path, limit=10), store).check("shop", NOW)
    finally:
        store.close()
    assert outcome.snapshot is not None
    names = [s.segment for s in outcome.snapshot.tables[0].segments or []]
    assert names == ["country=" + "x" * 100, "country=short"]
