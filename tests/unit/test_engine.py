"""The engine's sequencing and failure semantics, with a scripted collector and the real pure
core (detect, alerts) and the real SQLite store."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import exc as sa_exc

from driftguard.alerts import new_silence
from driftguard.config import Config, TableConfig, parse_config
from driftguard.engine import Engine, source_key
from driftguard.errors import PermissionDenied, SourceUnavailable, StateConflict
from driftguard.model import (
    AlertStateName,
    CheckKey,
    CheckKind,
    DeliveryRecord,
    DeliveryStatus,
    FindingStatus,
    Matcher,
    MetricPoint,
    Notification,
    PeriodCount,
    RunStatus,
    Silence,
    Snapshot,
    TableHistory,
    TableSnapshot,
)
from driftguard.store.base import SeriesTail, SourceContext
from driftguard.store.sqlite import SqliteStore

T0 = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)  # a Monday noon
CONFIG = """
sources:
  - name: shop
    kind: sqlite
    connection: {path: shop.db}
    schedule: {rate: 1h}
    tables:
      - name: orders
        checks:
          volume: {column: created_at, period: 1h, min_rows: 10}
channels:
  - {name: console, type: console}
route: {receivers: [console]}
alerting: {error_after_failures: 2, repeat_interval: 4h}
"""


class ScriptedCollector:
    """Plays back per-call behaviour: an int is the last period's row count, an exception is raised."""

    def __init__(self, script: list[Any], history: TableHistory | None = None) -> None:
        self.script = script
        self.history = history
        self.calls = 0
        self.backfills = 0

    def __enter__(self) -> ScriptedCollector:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def backfill(self, table: TableConfig, *, since: datetime, until: datetime) -> TableHistory:
        self.backfills += 1
        return self.history or TableHistory(table=table.name)

    def collect(self, scheduled_time: datetime, last_reads: Any = None) -> Snapshot:
        step = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        if isinstance(step, Exception):
            raise step
        period_start = scheduled_time - timedelta(hours=1)
        table = TableSnapshot(
            table="orders",
            row_count=step,
            row_count_method="period",
            period_counts=[PeriodCount(start=period_start, count=step)],
        )
        return Snapshot(
            source="shop", scheduled_time=scheduled_time, collected_at=scheduled_time, tables=[table]
        )


class RecordingSender:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[Notification] = []
        self.fail = fail

    def __call__(self, n: Notification) -> DeliveryRecord:
        self.sent.append(n)
        status = DeliveryStatus.FAILED if self.fail else DeliveryStatus.DELIVERED
        return DeliveryRecord(
            notification_id=n.id,
            channel=n.channel,
            status=status,
            attempts=3 if self.fail else 1,
            at=T0,
            error="boom" if self.fail else None,
            notification=n if self.fail else None,
        )


@pytest.fixture
def config() -> Config:
    return parse_config(CONFIG)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "state.db")
    yield s
    s.close()


def make_engine(
    config: Config, store: SqliteStore, collector: ScriptedCollector, sender: RecordingSender, **kw: Any
) -> Engine:
    return Engine(
        config,
        store,
        collector_factory=lambda *_: collector,
        senders={"console": sender},
        clock=lambda: T0,
        **kw,
    )


def hourly_history(hours: int, rows: int = 100) -> TableHistory:
    return TableHistory(
        table="orders",
        period_seconds=3600,
        period_counts=[
            PeriodCount(start=T0 - timedelta(hours=h + 1), count=rows) for h in range(hours, 0, -1)
        ],
    )


def test_healthy_run_stores_one_snapshot_and_a_duplicate_changes_nothing(
    config: Config, store: SqliteStore
) -> None:
    collector, sender = ScriptedCollector([100]), RecordingSender()
    engine = make_engine(config, store, collector, sender)
    first = engine.check("shop", T0)
    assert first.run.status == RunStatus.OK and not first.duplicate
    assert len(store.snapshots("shop", limit=10)) == 1
    again = engine.check("shop", T0)
    assert again.duplicate and collector.calls == 1  # not even collected twice
    assert len(store.snapshots("shop", limit=10)) == 1 and len(store.runs("shop")) == 1


def test_first_run_backfills_history_so_detection_starts_on_day_one(
    config: Config, store: SqliteStore
) -> None:
    collector = ScriptedCollector([100], history=hourly_history(24 * 21))
    outcome = make_engine(config, store, collector, RecordingSender()).check("shop", T0)
    assert collector.backfills == 1
    volume = [f for f in outcome.findings if f.key.table == "orders" and f.key.check.value == "volume"]
    assert volume and all(f.status != FindingStatus.LEARNING for f in volume), volume
    # The second run does not backfill again: the table is known from the first snapshot.
    make_engine(config, store, collector, RecordingSender()).check("shop", T0 + timedelta(hours=1))
    assert collector.backfills == 1


def test_a_broken_load_fires_once_then_repeats_only_after_the_interval(
    config: Config, store: SqliteStore
) -> None:
    collector = ScriptedCollector([100, 2, 2, 2, 2, 2, 100], history=hourly_history(24 * 21))
    sender = RecordingSender()
    engine = make_engine(config, store, collector, sender)
    kinds = []
    for h in range(7):
        before = len(sender.sent)
        engine.check("shop", T0 + timedelta(hours=h))
        kinds.append([a.kind.value for n in sender.sent[before:] for a in n.alerts])
    assert kinds[0] == []
    assert "firing" in kinds[1]
    assert kinds[2] == kinds[3] == kinds[4] == []  # inside repeat_interval (4h)
    assert "repeat" in kinds[5]  # 4h after firing
    assert "resolved" in kinds[6]


def test_an_outage_alerts_once_after_n_failures_and_resolves(config: Config, store: SqliteStore) -> None:
    down = SourceUnavailable("connection refused")
    collector = ScriptedCollector([100, down, down, down, 100], history=hourly_history(24 * 21))
    sender = RecordingSender()
    engine = make_engine(config, store, collector, sender)
    per_run = []
    for h in range(5):
        before = len(sender.sent)
        outcome = engine.check("shop", T0 + timedelta(hours=h))
        per_run.append([(a.key.check.value, a.kind.value) for n in sender.sent[before:] for a in n.alerts])
        if 1 <= h <= 3:
            assert outcome.run.status == RunStatus.FAILED and "connection refused" in (
                outcome.run.error or ""
            )
    assert per_run[1] == []  # one failure is not an outage yet (error_after_failures: 2)
    assert ("source", "error") in per_run[2]
    assert per_run[3] == []  # still down: no second ERROR notice
    assert ("source", "resolved") in per_run[4]
    state = {s.fingerprint: s for s in store.alert_states("shop")}[source_key("shop").fingerprint]
    assert state.state in (AlertStateName.RESOLVED, AlertStateName.OK)


def test_retryable_errors_propagate_for_the_orchestrator_but_permanent_ones_are_recorded(
    config: Config, store: SqliteStore
) -> None:
    engine = make_engine(
        config, store, ScriptedCollector([SourceUnavailable("down")]), RecordingSender(), raise_retryable=True
    )
    with pytest.raises(SourceUnavailable):
        engine.check("shop", T0)
    assert store.get_run("shop", T0) is None  # nothing recorded: the state machine will retry
    engine = make_engine(
        config,
        store,
        ScriptedCollector([PermissionDenied("no SELECT")]),
        RecordingSender(),
        raise_retryable=True,
    )
    outcome = engine.check("shop", T0)
    assert outcome.run.status == RunStatus.FAILED and store.get_run("shop", T0) is not None
    # The orchestrator's final failure is recorded once, idempotently.
    assert engine.record_failure("shop", T0, SourceUnavailable("down")).duplicate


def test_dry_run_stores_and_sends_nothing(config: Config, store: SqliteStore) -> None:
    sender = RecordingSender()
    outcome = make_engine(
        config, store, ScriptedCollector([2], history=hourly_history(24 * 21)), sender
    ).check("shop", T0, dry_run=True)
    assert outcome.dry_run and outcome.findings
    assert store.runs("shop") == [] and store.snapshots("shop") == [] and sender.sent == []
    assert store.series(outcome.findings[0].key, before=T0 + timedelta(days=1)) == []


def test_a_failed_delivery_is_parked_and_can_be_replayed(config: Config, store: SqliteStore) -> None:
    collector = ScriptedCollector([2], history=hourly_history(24 * 21))
    make_engine(config, store, collector, RecordingSender(fail=True)).check("shop", T0)
    parked = store.failed_deliveries()
    assert len(parked) == 1 and parked[0].notification is not None
    good = RecordingSender()
    engine = make_engine(config, store, collector, good)
    assert engine.deliver([parked[0].notification]) == [parked[0]]  # parked: not retried implicitly
    records = engine.deliver([parked[0].notification], retry_parked=True)
    assert records[0].status == DeliveryStatus.DELIVERED and len(good.sent) == 1
    assert engine.deliver([parked[0].notification], retry_parked=True)[0].status == DeliveryStatus.DELIVERED
    assert len(good.sent) == 1  # delivered notifications are never sent twice


def test_a_state_conflict_is_retried_with_fresh_state(config: Config, tmp_path: Path) -> None:
    class FlakyStore(SqliteStore):
        conflicts = 1

        def commit_run(self, commit: Any) -> bool:
            if self.conflicts:
                self.conflicts -= 1
                raise StateConflict("another writer moved the state")
            return super().commit_run(commit)

    flaky = FlakyStore(tmp_path / "flaky.db")
    try:
        outcome = make_engine(config, flaky, ScriptedCollector([100]), RecordingSender()).check("shop", T0)
        assert outcome.run.status == RunStatus.OK and flaky.conflicts == 0
        assert flaky.get_run("shop", T0) is not None
    finally:
        flaky.close()


class CountingStore(SqliteStore):
    """Counts the reads a check makes, and can hand over series tails as a store with them would."""

    def __init__(self, path: Path, tails: dict[str, SeriesTail] | None = None) -> None:
        super().__init__(path)
        self.reads: Counter[str] = Counter()
        self.tails = tails or {}

    def load_source(self, source: str) -> SourceContext:
        self.reads["load_source"] += 1
        loaded = super().load_source(source)
        return SourceContext(source, loaded.states, loaded.baselines, self.tails)

    def silences(self, *, active_at: datetime | None = None) -> list[Silence]:
        self.reads["silences"] += 1
        return super().silences(active_at=active_at)

    def series(self, key: Any, *, before: datetime, limit: int = 5000) -> list[MetricPoint]:
        self.reads["series"] += 1
        return super().series(key, before=before, limit=limit)


def test_a_quiet_run_reads_no_silences_but_a_noisy_one_is_muted_by_them(
    config: Config, tmp_path: Path
) -> None:
    counting = CountingStore(tmp_path / "state.db")
    collector = ScriptedCollector([100, 100, 2], history=hourly_history(24 * 21))
    sender = RecordingSender()
    engine = make_engine(config, counting, collector, sender)
    engine.check("shop", T0)
    counting.reads.clear()

    engine.check("shop", T0 + timedelta(hours=1))  # nothing moves: silences cannot change anything
    assert counting.reads["silences"] == 0 and counting.reads["load_source"] == 1

    counting.put_silence(
        Silence(
            id="s1",
            matchers=[Matcher(label="source", value="shop")],
            starts_at=T0,
            ends_at=T0 + timedelta(days=1),
            created_by="alice",
            comment="migration",
            created_at=T0,
        )
    )
    outcome = engine.check("shop", T0 + timedelta(hours=2))  # the load drops: it would fire
    assert counting.reads["silences"] == 1
    assert outcome.anomalies and outcome.notifications == [] and sender.sent == []
    (moved,) = counting.transitions("shop")
    assert moved.silenced_by == ["s1"]
    counting.close()


def test_detection_reads_series_from_the_loaded_tails_when_they_can_answer(
    config: Config, tmp_path: Path
) -> None:
    history = hourly_history(24 * 21)
    key = CheckKey(source="shop", table="orders", check=CheckKind.VOLUME, metric="rows_per_period")
    seeded = CountingStore(tmp_path / "seed.db")
    make_engine(config, seeded, ScriptedCollector([100], history=history), RecordingSender()).check(
        "shop", T0
    )
    stored = seeded.series(key, before=T0 + timedelta(days=1), limit=100_000)
    seeded.close()
    tail = SeriesTail([(p.ts, p.value, p.label) for p in stored], complete=True)
    counting = CountingStore(tmp_path / "seed.db", tails={key.fingerprint: tail})

    with_tails = make_engine(config, counting, ScriptedCollector([100]), RecordingSender()).check(
        "shop", T0 + timedelta(hours=1)
    )

    assert counting.reads["series"] == 0
    volume = [f for f in with_tails.findings if f.key == key]
    assert volume and volume[0].status == FindingStatus.OK
    counting.close()


def test_a_run_refused_as_judged_on_an_old_read_is_judged_again_on_a_fresh_load(
    config: Config, tmp_path: Path
) -> None:
    key = CheckKey(source="shop", table="orders", check=CheckKind.VOLUME, metric="rows_per_period")
    store = CountingStore(tmp_path / "state.db")
    make_engine(
        config, store, ScriptedCollector([100], history=hourly_history(24 * 21)), RecordingSender()
    ).check("shop", T0)
    stored = store.series(key, before=T0 + timedelta(days=1), limit=100_000)
    # What a warm container remembered from before another writer moved the source: the table then
    # loaded ten times as much, so 100 rows would look like a collapse.
    remembered = SeriesTail([(p.ts, p.value * 10, p.label) for p in stored], complete=True)
    commits: list[int | None] = []

    class MovedMeanwhile(CountingStore):
        def load_source(self, source: str) -> SourceContext:
            loaded = super().load_source(source)
            if self.reads["load_source"] == 1:
                return SourceContext(
                    source, loaded.states, loaded.baselines, {key.fingerprint: remembered}, 1
                )
            return SourceContext(source, loaded.states, loaded.baselines, {}, 2)

        def commit_run(self, commit: Any) -> bool:
            commits.append(commit.context_version)
            if commit.context_version != 2:
                raise StateConflict("source 'shop' changed since the run read it")
            return super().commit_run(commit)

    store.close()
    moved = MovedMeanwhile(tmp_path / "state.db")
    outcome = make_engine(config, moved, ScriptedCollector([100]), RecordingSender()).check(
        "shop", T0 + timedelta(hours=1)
    )

    assert commits == [1, 2] and moved.reads["load_source"] == 2
    (volume,) = [f for f in outcome.findings if f.key == key]
    assert volume.status == FindingStatus.OK  # judged on the fresh load, not the remembered collapse
    assert outcome.notifications == [] and moved.get_run("shop", T0 + timedelta(hours=1)) is not None
    moved.close()


def test_a_silence_that_ends_with_its_alert_is_stored_ended(store: SqliteStore) -> None:
    config = parse_config(
        CONFIG.replace(
            "route: {receivers: [console]}", "route: {receivers: [console], end_silences_on_resolve: true}"
        )
    )
    silence = new_silence(
        [Matcher(label="table", value="orders")],
        created_by="ana",
        comment="load rerun",
        now=T0,
        duration=timedelta(days=1),
    )
    store.put_silence(silence)
    collector = ScriptedCollector([2, 100], history=hourly_history(24 * 21))
    engine = make_engine(config, store, collector, RecordingSender())
    engine.check("shop", T0)  # the broken load fires, silenced
    assert [s.id for s in store.silences(active_at=T0 + timedelta(minutes=30))] == [silence.id]
    engine.check("shop", T0 + timedelta(hours=1))  # the load is back: the alert resolves
    (ended,) = store.silences()
    assert ended.id == silence.id and ended.ends_at == T0 + timedelta(hours=1)
    assert store.silences(active_at=T0 + timedelta(hours=2)) == []


@pytest.mark.parametrize(
    "raised",
    [sa_exc.PendingRollbackError("Can't reconnect until invalid transaction is rolled back"), TypeError("x")],
)
def test_any_failure_of_a_source_is_its_failed_run_never_an_exception(
    config: Config, store: SqliteStore, raised: Exception
) -> None:
    engine = make_engine(config, store, ScriptedCollector([raised]), RecordingSender())
    outcome = engine.check("shop", T0)
    assert outcome.run.status == RunStatus.FAILED and outcome.run.error_kind == "internal"
    assert outcome.run.error == f"source shop: unexpected {type(raised).__name__}: {raised}"
    assert store.get_run("shop", T0) == outcome.run


def test_a_lost_connection_during_backfill_fails_the_source_instead_of_learning_from_scratch(
    config: Config, store: SqliteStore
) -> None:
    class LosesTheConnectionInBackfill(ScriptedCollector):
        def backfill(self, table: TableConfig, *, since: datetime, until: datetime) -> TableHistory:
            raise SourceUnavailable("source shop: the connection was lost")

    collector = LosesTheConnectionInBackfill([100])
    outcome = make_engine(config, store, collector, RecordingSender()).check("shop", T0)
    assert outcome.run.status == RunStatus.FAILED and collector.calls == 0
    assert outcome.run.error == "source shop: the connection was lost"


class LimitRecordingStore(SqliteStore):
    """Records the window every series read asks for."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.limits: list[int] = []

    def series(self, key: Any, *, before: datetime, limit: int = 5000) -> list[MetricPoint]:
        self.limits.append(limit)
        return super().series(key, before=before, limit=limit)


def noisy_history(hours: int) -> TableHistory:
    """Hourly counts around 100 with a daily rhythm and a little noise (deterministic)."""
    counts = []
    for h in range(hours, 0, -1):
        start = T0 - timedelta(hours=h + 1)
        counts.append(PeriodCount(start=start, count=100 + 30 * (start.hour in range(9, 18)) + (h * 7) % 11))
    return TableHistory(table="orders", period_seconds=3600, period_counts=counts)


def test_a_steady_check_judges_by_the_kept_fit_and_reads_only_the_newest_points(
    config: Config, tmp_path: Path
) -> None:
    """The fit the first check made is stored with the run; the next plainly normal hour is judged by
    it, reading a dozen points instead of three weeks, and stores no new fit; an hour that is not
    plainly normal is fitted in full again, alerts, and its fit replaces the kept one."""
    key = CheckKey(source="shop", table="orders", check=CheckKind.VOLUME, metric="rows_per_period")
    store = LimitRecordingStore(tmp_path / "state.db")
    collector = ScriptedCollector([105, 108, 400], history=noisy_history(24 * 21))
    engine = make_engine(config, store, collector, RecordingSender())

    engine.check("shop", T0)
    first_fit = store.fits("shop")[key.fingerprint]
    assert first_fit["at"] == (T0 - timedelta(hours=1)).timestamp()  # the judged period's start
    assert max(store.limits) > 24 * 21  # the first judgement read its training window

    store.limits.clear()
    steady = engine.check("shop", T0 + timedelta(hours=1))
    (finding,) = [f for f in steady.findings if f.key == key]
    assert finding.status == FindingStatus.OK
    assert store.limits and max(store.limits) <= 12  # the newest points only, for runs of deviations
    assert store.fits("shop")[key.fingerprint] == first_fit  # judged by it, nothing new to keep

    store.limits.clear()
    spike = engine.check("shop", T0 + timedelta(hours=2))
    (finding,) = [f for f in spike.findings if f.key == key]
    assert finding.status == FindingStatus.ANOMALY
    assert max(store.limits) > 24 * 21  # fitted in full
    assert store.fits("shop")[key.fingerprint]["at"] == (T0 + timedelta(hours=1)).timestamp()
    store.close()


def test_a_damaged_kept_fit_is_fitted_again_not_trusted(config: Config, tmp_path: Path) -> None:
    key = CheckKey(source="shop", table="orders", check=CheckKind.VOLUME, metric="rows_per_period")
    store = LimitRecordingStore(tmp_path / "state.db")
    engine = make_engine(
        config, store, ScriptedCollector([105, 108], history=noisy_history(24 * 21)), RecordingSender()
    )
    engine.check("shop", T0)
    with store._lock, store._conn:  # damage the stored fit as an older or broken writer might
        store._conn.execute("UPDATE fits SET body = ?", ('{"baseline": {"level": "x"}}',))
    store.limits.clear()
    outcome = engine.check("shop", T0 + timedelta(hours=1))
    assert [f.status for f in outcome.findings if f.key == key] == [FindingStatus.OK]
    assert max(store.limits) > 24 * 21  # judged by a full fit
    assert store.fits("shop")[key.fingerprint]["at"] == T0.timestamp()  # and a sound fit kept again
    store.close()
