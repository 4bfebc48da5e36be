"""The Store port's contract, run against every backend.

A backend's test module subclasses `StoreContract` and provides a `store` fixture that yields an
empty store, e.g.::

    class TestSqliteStore(StoreContract):
        @pytest.fixture
        def store(self, tmp_path): ...

Nothing here knows which backend it talks to: every check goes through the port.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from driftguard.errors import StateConflict
from driftguard.ledger import Claim, ClaimRequest, Verdict
from driftguard.model import (
    AlertNotice,
    AlertState,
    AlertStateName,
    CheckKey,
    CheckKind,
    ColumnInfo,
    ColumnProfile,
    DeliveryRecord,
    DeliveryStatus,
    Explanation,
    Finding,
    FindingStatus,
    GroupedNotice,
    Matcher,
    MetricPoint,
    NoticeKind,
    Notification,
    NotificationGroup,
    PeriodCount,
    PointLabel,
    RunCommit,
    RunRecord,
    RunStatus,
    SchemaBaseline,
    SegmentSnapshot,
    Severity,
    Silence,
    Snapshot,
    SqlCheckResult,
    TableSnapshot,
    Transition,
    stable_hash,
)
from driftguard.store.base import PendingDelivery, PendingGroup, Store

# The same contract methods run once per store class (SQLite, DynamoDB), which hypothesis sees as
# "differing executors"; and each example reuses the class's store fixture on purpose (every
# example writes under its own keys).
CONTRACT_HEALTH_CHECKS = [HealthCheck.function_scoped_fixture, HealthCheck.differing_executors]

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
_unique = itertools.count()

_T = TypeVar("_T")


# --------------------------------------------------------------------------- builders


def check_key(
    source: str = "shop",
    table: str = "orders",
    *,
    check: CheckKind = CheckKind.VOLUME,
    metric: str = "row_count",
    column: str | None = None,
) -> CheckKey:
    return CheckKey(source=source, table=table, check=check, metric=metric, column=column)


def fresh_key() -> CheckKey:
    """A key no other test or hypothesis example has used, so examples sharing one store stay apart."""
    return check_key(source=f"src{next(_unique)}")


def finding(key: CheckKey, at: datetime, status: FindingStatus = FindingStatus.ANOMALY) -> Finding:
    return Finding(
        key=key,
        ts=at,
        status=status,
        explanation=Explanation(observed=10.0, expected=100.0, score=4.5, reason="row count dropped"),
    )


def alert_state(key: CheckKey, at: datetime, state: AlertStateName = AlertStateName.FIRING) -> AlertState:
    return AlertState(
        key=key, state=state, since=at, active_since=at, consecutive=1, last_finding=finding(key, at)
    )


def transition(
    key: CheckKey,
    at: datetime,
    from_state: AlertStateName = AlertStateName.OK,
    to_state: AlertStateName = AlertStateName.FIRING,
) -> Transition:
    return Transition(
        id=stable_hash(key.fingerprint, at.isoformat(), from_state, to_state),
        fingerprint=key.fingerprint,
        key=key,
        at=at,
        from_state=from_state,
        to_state=to_state,
        severity=Severity.WARNING,
        reason="row count dropped",
        finding=finding(key, at),
    )


def notification(source: str, run_time: datetime, *, channel: str = "console") -> Notification:
    key = check_key(source)
    return Notification(
        id=stable_hash(source, run_time.isoformat(), channel),
        source=source,
        channel=channel,
        run_time=run_time,
        created_at=run_time,
        alerts=[
            AlertNotice(
                key=key,
                kind=NoticeKind.FIRING,
                state=AlertStateName.FIRING,
                severity=Severity.WARNING,
                since=run_time,
                finding=finding(key, run_time),
                transition_id=None,
            )
        ],
    )


def group(name: str = "g-orders", *, channel: str = "slack") -> NotificationGroup:
    return NotificationGroup(
        key=name,
        route="route.routes[0]",
        channel=channel,
        labels={"table": "orders"},
        wait=timedelta(seconds=30),
        interval=timedelta(minutes=5),
    )


def waiting(source: str, at: datetime, *, in_group: str = "g-orders") -> GroupedNotice:
    """A run's notice of `source` waiting in group `in_group`."""
    part = notification(source, at, channel="slack")
    part = part.model_copy(update={"id": stable_hash(part.id, in_group)})
    return GroupedNotice(group=group(in_group), not_before=at + timedelta(seconds=30), notification=part)


def merged_of(parts: Sequence[GroupedNotice], window: datetime) -> Notification:
    """A stand-in for the group's merged message (the store does not look inside it)."""
    first = parts[0]
    return first.notification.model_copy(
        update={
            "id": stable_hash("merged", first.group.key, window.isoformat()),
            "run_time": window,
            "created_at": window,
            "alerts": [a for p in parts for a in p.notification.alerts],
            "group": first.group,
        }
    )


def snapshot(source: str, at: datetime, *, row_count: int = 100) -> Snapshot:
    return Snapshot(
        source=source,
        scheduled_time=at,
        collected_at=at + timedelta(seconds=2),
        tables=[TableSnapshot(table="orders", row_count=row_count, row_count_method="exact")],
    )


def baseline(
    source: str, table: str = "orders", *, by: str = "learned", columns: Sequence[str] = ("id",)
) -> SchemaBaseline:
    return SchemaBaseline(
        source=source,
        table=table,
        columns=[
            ColumnInfo(name=name, type="integer", raw_type="bigint", nullable=False, position=i)
            for i, name in enumerate(columns, start=1)
        ],
        accepted_at=T0,
        accepted_by=by,
    )


def silence(silence_id: str, starts_at: datetime, ends_at: datetime) -> Silence:
    return Silence(
        id=silence_id,
        matchers=[
            Matcher(label="source", value="shop"),
            Matcher(label="table", value="ord.*", regex=True),
        ],
        starts_at=starts_at,
        ends_at=ends_at,
        created_by="alice",
        comment="migration",
        created_at=starts_at,
    )


def delivered(sent: Notification) -> DeliveryRecord:
    return DeliveryRecord(
        notification_id=sent.id, channel=sent.channel, status=DeliveryStatus.DELIVERED, attempts=1, at=T0
    )


def failed(sent: Notification, *, keep: bool = False) -> DeliveryRecord:
    return DeliveryRecord(
        notification_id=sent.id,
        channel=sent.channel,
        status=DeliveryStatus.FAILED,
        attempts=5,
        at=T0 + timedelta(minutes=5),
        error="HTTP 410 Gone",
        notification=sent if keep else None,
    )


def run_commit(
    source: str,
    at: datetime,
    *,
    points: Sequence[MetricPoint] = (),
    states: Sequence[AlertState] = (),
    expected_versions: dict[str, int] | None = None,
    transitions: Sequence[Transition] = (),
    notifications: Sequence[Notification] = (),
    grouped: Sequence[GroupedNotice] = (),
    baselines: Sequence[SchemaBaseline] = (),
    with_snapshot: bool = True,
    row_count: int = 100,
    context_version: int | None = None,
    fits: dict[str, dict[str, Any]] | None = None,
) -> RunCommit:
    return RunCommit(
        run=RunRecord(
            source=source,
            scheduled_time=at,
            started_at=at,
            finished_at=at + timedelta(seconds=3),
            status=RunStatus.OK if with_snapshot else RunStatus.FAILED,
        ),
        snapshot=snapshot(source, at, row_count=row_count) if with_snapshot else None,
        points=list(points),
        states=list(states),
        expected_versions=expected_versions or {},
        transitions=list(transitions),
        notifications=list(notifications),
        grouped=list(grouped),
        schema_baselines=list(baselines),
        context_version=context_version,
        fits=fits or {},
    )


def fit(fingerprint: str, at: datetime, level: float = 100.0) -> dict[str, Any]:
    """A fit as detection keeps one (the shape of `Fitted.to_json`, which the store does not look into)."""
    return {
        "baseline": {
            "seasonality": ["daily", 3600.0],
            "multiplicative": False,
            "by_time": [[h, level * (1 + h / 48), 0.5 + h / 100] for h in range(24)],
            "level": level,
            "slope": -0.125,
            "sigma": 3.75,
            "counts": True,
            "typical_scale": math.inf,
        },
        "at": at.timestamp(),
        "fingerprint": fingerprint,
        "training": [(at - 56 * 24 * HOUR).timestamp(), at.timestamp(), 5376],
        "note": "",
        "calendar": "US holidays kept out of training",
        "waiting": "",
    }


# Any JSON a fit may hold (no NaN: it is never equal to itself, so a read back could not compare).
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=30,
)
json_objects = st.dictionaries(st.text(max_size=10), json_values, max_size=6)


def points_of(key: CheckKey, times: Sequence[datetime], value: float = 1.0) -> list[MetricPoint]:
    return [MetricPoint(key=key, ts=t, value=value + i) for i, t in enumerate(times)]


LEASE = timedelta(minutes=5)


def claim(claimer: str, *, at: datetime = T0, retry_parked: bool = False) -> ClaimRequest:
    return ClaimRequest(claimer, at, LEASE, retry_parked=retry_parked)


def hours(count: int, start: datetime = T0) -> list[datetime]:
    return [start + i * HOUR for i in range(count)]


def run_in_threads(*calls: Callable[[], _T]) -> list[_T | BaseException]:
    """Run `calls` at the same moment, one thread each; each result is a value or the exception raised."""
    barrier = threading.Barrier(len(calls))
    results: list[_T | BaseException] = [RuntimeError("thread did not finish")] * len(calls)

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = calls[index]()
        except BaseException as error:  # handed back for the test to assert on
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def is_utc(value: datetime | None) -> bool:
    return value is not None and value.tzinfo is not None and value.utcoffset() == timedelta(0)


# --------------------------------------------------------------------------- the contract


class StoreContract:
    """Subclasses provide a `store` fixture yielding an empty Store."""

    # ------------------------------------------------------------------ runs
    def test_commit_run_reads_back_run_and_snapshot(self, store: Store) -> None:
        commit = run_commit("shop", T0)

        assert store.commit_run(commit) is True

        assert store.get_run("shop", T0) == commit.run
        assert store.snapshots("shop") == [commit.snapshot]

    def test_get_run_of_unknown_run_is_none(self, store: Store) -> None:
        store.commit_run(run_commit("shop", T0))

        assert store.get_run("shop", T0 + HOUR) is None
        assert store.get_run("other", T0) is None

    def test_second_commit_of_same_run_returns_false_and_writes_nothing(self, store: Store) -> None:
        key = check_key("shop")
        first = run_commit("shop", T0, points=points_of(key, [T0 - HOUR]))
        assert store.commit_run(first) is True
        retry = run_commit(
            "shop",
            T0,
            row_count=999,
            points=points_of(key, [T0], value=42.0),
            states=[alert_state(key, T0)],
            transitions=[transition(key, T0)],
            notifications=[notification("shop", T0)],
            baselines=[baseline("shop")],
        )

        assert store.commit_run(retry) is False

        assert store.get_run("shop", T0) == first.run
        assert store.snapshots("shop", limit=10) == [first.snapshot]
        assert store.series(key, before=T0 + HOUR) == first.points
        assert store.alert_states() == []
        assert store.transitions("shop") == []
        assert store.pending_notifications() == []
        assert store.schema_baselines("shop").get("orders") is None

    def test_retry_of_committed_run_returns_false_even_if_its_states_are_now_stale(
        self, store: Store
    ) -> None:
        key = check_key("shop")
        commit = run_commit("shop", T0, states=[alert_state(key, T0)])
        assert store.commit_run(commit) is True

        assert store.commit_run(commit) is False
        assert [s.version for s in store.alert_states()] == [1]

    def test_same_scheduled_time_of_two_sources_are_two_runs(self, store: Store) -> None:
        assert store.commit_run(run_commit("shop", T0)) is True
        assert store.commit_run(run_commit("billing", T0)) is True

        assert {r.source for r in store.runs()} == {"shop", "billing"}

    def test_failed_run_is_stored_without_snapshot(self, store: Store) -> None:
        commit = run_commit("shop", T0, with_snapshot=False)

        assert store.commit_run(commit) is True

        assert store.get_run("shop", T0) == commit.run
        assert store.snapshots("shop") == []

    def test_runs_are_newest_first_filtered_and_limited(self, store: Store) -> None:
        for at in hours(5):
            store.commit_run(run_commit("shop", at))
            store.commit_run(run_commit("billing", at + timedelta(minutes=30)))

        shop = store.runs("shop", limit=3)
        everything = store.runs(limit=100)

        assert [r.scheduled_time for r in shop] == [T0 + 4 * HOUR, T0 + 3 * HOUR, T0 + 2 * HOUR]
        assert all(r.source == "shop" for r in shop)
        assert len(everything) == 10
        times = [r.scheduled_time for r in everything]
        assert times == sorted(times, reverse=True)
        assert store.runs("nobody") == []

    # ------------------------------------------------------------------ snapshots
    def test_snapshots_are_newest_first_as_of_inclusive_and_limited(self, store: Store) -> None:
        for i, at in enumerate(hours(5)):
            store.commit_run(run_commit("shop", at, row_count=i))
        store.commit_run(run_commit("billing", T0 + 10 * HOUR))

        latest = store.snapshots("shop")
        as_of = store.snapshots("shop", as_of=T0 + 2 * HOUR, limit=10)
        between = store.snapshots("shop", as_of=T0 + 2 * HOUR + timedelta(minutes=59), limit=2)

        assert [s.scheduled_time for s in latest] == [T0 + 4 * HOUR]
        assert [s.scheduled_time for s in as_of] == [T0 + 2 * HOUR, T0 + HOUR, T0]
        assert [s.scheduled_time for s in between] == [T0 + 2 * HOUR, T0 + HOUR]
        assert store.snapshots("shop", as_of=T0 - timedelta(microseconds=1)) == []
        assert store.snapshots("nobody") == []

    def test_times_one_microsecond_apart_stay_distinct_and_ordered(self, store: Store) -> None:
        tick = timedelta(microseconds=1)
        for at in (T0, T0 + tick, T0 + 2 * tick):
            store.commit_run(run_commit("shop", at))

        assert [s.scheduled_time for s in store.snapshots("shop", as_of=T0 + tick, limit=5)] == [
            T0 + tick,
            T0,
        ]

    # ------------------------------------------------------------------ series
    def test_series_is_the_latest_points_before_a_time_oldest_first(self, store: Store) -> None:
        key = fresh_key()
        store.put_points(points_of(key, hours(10)))

        window = store.series(key, before=T0 + 8 * HOUR, limit=3)

        assert [p.ts for p in window] == [T0 + 5 * HOUR, T0 + 6 * HOUR, T0 + 7 * HOUR]
        assert [p.value for p in window] == [6.0, 7.0, 8.0]
        assert all(p.key == key for p in window)
        assert store.series(key, before=T0) == []

    def test_series_keeps_keys_apart(self, store: Store) -> None:
        total = check_key("shop", metric="null_rate", check=CheckKind.COLUMN, column="total")
        email = check_key("shop", metric="null_rate", check=CheckKind.COLUMN, column="email")
        store.put_points(points_of(total, hours(3), value=1.0))
        store.put_points(points_of(email, hours(3), value=100.0))

        assert [p.value for p in store.series(total, before=T0 + 3 * HOUR)] == [1.0, 2.0, 3.0]
        assert [p.value for p in store.series(email, before=T0 + 3 * HOUR)] == [100.0, 101.0, 102.0]

    def test_put_points_replaces_the_point_at_the_same_time(self, store: Store) -> None:
        key = fresh_key()
        store.put_points(points_of(key, hours(3), value=1.0))

        store.put_points([MetricPoint(key=key, ts=T0 + HOUR, value=50.0, label=PointLabel.INCIDENT)])

        assert [(p.value, p.label) for p in store.series(key, before=T0 + 3 * HOUR)] == [
            (1.0, PointLabel.NONE),
            (50.0, PointLabel.INCIDENT),
            (3.0, PointLabel.NONE),
        ]

    def test_committed_points_join_the_series(self, store: Store) -> None:
        key = check_key("shop")
        store.put_points(points_of(key, hours(2, start=T0 - 2 * HOUR), value=5.0))

        store.commit_run(run_commit("shop", T0, points=[MetricPoint(key=key, ts=T0, value=9.0)]))

        assert [p.value for p in store.series(key, before=T0 + HOUR)] == [5.0, 6.0, 9.0]

    def test_label_points_marks_an_inclusive_range_of_one_series(self, store: Store) -> None:
        key, other = fresh_key(), fresh_key()
        store.put_points(points_of(key, hours(6)) + points_of(other, hours(6)))

        labelled = store.label_points(key, T0 + HOUR, T0 + 3 * HOUR, PointLabel.MAINTENANCE)

        assert labelled == 3
        assert [p.excluded for p in store.series(key, before=T0 + 6 * HOUR)] == [
            False,
            True,
            True,
            True,
            False,
            False,
        ]
        assert not any(p.excluded for p in store.series(other, before=T0 + 6 * HOUR))
        assert store.label_points(key, T0 + 10 * HOUR, T0 + 20 * HOUR, PointLabel.INCIDENT) == 0

    def test_label_points_can_clear_a_label(self, store: Store) -> None:
        key = fresh_key()
        store.put_points(points_of(key, hours(2)))
        store.label_points(key, T0, T0 + HOUR, PointLabel.INCIDENT)

        assert store.label_points(key, T0, T0, PointLabel.NONE) == 1

        assert [p.label for p in store.series(key, before=T0 + 2 * HOUR)] == [
            PointLabel.NONE,
            PointLabel.INCIDENT,
        ]

    def test_non_finite_point_values_survive(self, store: Store) -> None:
        key = fresh_key()
        store.put_points(
            [
                MetricPoint(key=key, ts=T0, value=math.inf),
                MetricPoint(key=key, ts=T0 + HOUR, value=-math.inf),
                MetricPoint(key=key, ts=T0 + 2 * HOUR, value=math.nan),
            ]
        )

        values = [p.value for p in store.series(key, before=T0 + 3 * HOUR)]

        assert values[:2] == [math.inf, -math.inf]
        assert math.isnan(values[2])

    def test_times_in_other_zones_are_the_same_instants_and_come_back_utc(self, store: Store) -> None:
        key = fresh_key()
        plus_two = timezone(timedelta(hours=2))
        local = (T0 + HOUR).astimezone(plus_two)
        store.put_points([MetricPoint(key=key, ts=local, value=1.0)])

        (point,) = store.series(key, before=(T0 + 2 * HOUR).astimezone(plus_two))

        assert point.ts == T0 + HOUR
        assert is_utc(point.ts)
        assert store.series(key, before=local) == []

    @settings(max_examples=40, deadline=None, suppress_health_check=CONTRACT_HEALTH_CHECKS)
    @given(
        instants=st.lists(
            st.datetimes(
                min_value=datetime(1900, 1, 1),
                max_value=datetime(2200, 1, 1),
                timezones=st.sampled_from(
                    [UTC, timezone(timedelta(hours=-7)), timezone(timedelta(hours=5, minutes=30))]
                ),
            ),
            min_size=1,
            max_size=10,
            unique_by=lambda t: t.astimezone(UTC),
        )
    )
    def test_any_instant_reads_back_exactly_as_utc(self, store: Store, instants: list[datetime]) -> None:
        key = fresh_key()
        store.put_points([MetricPoint(key=key, ts=t, value=0.0) for t in instants])

        got = store.series(key, before=max(instants) + timedelta(microseconds=1))

        assert [p.ts for p in got] == sorted(instants)
        assert all(is_utc(p.ts) for p in got)

    @settings(max_examples=40, deadline=None, suppress_health_check=CONTRACT_HEALTH_CHECKS)
    @given(
        offsets=st.sets(st.integers(min_value=0, max_value=10_000_000), max_size=40),
        before_offset=st.integers(min_value=-1, max_value=10_000_001),
        limit=st.integers(min_value=0, max_value=50),
    )
    def test_series_is_the_last_limit_points_before_in_time_order(
        self, store: Store, offsets: set[int], before_offset: int, limit: int
    ) -> None:
        key = fresh_key()
        seconds = timedelta(seconds=1)
        # Insert out of order to show the store, not the caller, does the ordering.
        store.put_points(
            [MetricPoint(key=key, ts=T0 + o * seconds, value=float(o)) for o in sorted(offsets, reverse=True)]
        )

        got = store.series(key, before=T0 + before_offset * seconds, limit=limit)

        expected = sorted(o for o in offsets if o < before_offset)[-limit:] if limit else []
        assert [p.value for p in got] == [float(o) for o in expected]
        assert [p.ts for p in got] == [T0 + o * seconds for o in expected]
        assert store.series_values(key, before=T0 + before_offset * seconds, limit=limit) == [
            float(o) for o in expected
        ]

    def test_series_values_are_the_series_as_a_column(self, store: Store) -> None:
        key = fresh_key()
        store.put_points(points_of(key, hours(10)))
        store.put_points([MetricPoint(key=key, ts=T0 + 10 * HOUR, value=math.nan)])
        store.put_points([MetricPoint(key=key, ts=T0 + 11 * HOUR, value=-math.inf)])

        for before, limit in ((T0 + 8 * HOUR, 3), (T0 + 12 * HOUR, 5), (T0, 4), (T0 + 12 * HOUR, 0)):
            window = [p.value for p in store.series(key, before=before, limit=limit)]
            column = store.series_values(key, before=before, limit=limit)
            assert len(column) == len(window)
            same = [a == b or (math.isnan(a) and math.isnan(b)) for a, b in zip(column, window, strict=True)]
            assert all(same)
        assert store.series_values(key, before=T0 + 8 * HOUR, limit=3) == [6.0, 7.0, 8.0]
        assert math.isnan(store.series_values(key, before=T0 + 11 * HOUR, limit=1)[0])

    # ------------------------------------------------------------------ one check's reads
    def test_load_source_holds_the_sources_states_and_baselines(self, store: Store) -> None:
        key, other = check_key("shop"), check_key("billing")
        store.commit_run(run_commit("shop", T0, states=[alert_state(key, T0)], baselines=[baseline("shop")]))
        store.commit_run(run_commit("billing", T0, states=[alert_state(other, T0)]))
        accepted = baseline("shop", "customers", by="alice")
        store.put_schema_baseline(accepted)

        loaded = store.load_source("shop")

        assert loaded.source == "shop"
        assert loaded.states == {key.fingerprint: alert_state(key, T0).model_copy(update={"version": 1})}
        assert loaded.baselines == {"orders": baseline("shop"), "customers": accepted}
        empty = store.load_source("nobody")
        assert (empty.states, empty.baselines, empty.tails) == ({}, {}, {})

    def test_load_source_sees_the_latest_commit(self, store: Store) -> None:
        key = check_key("shop")
        store.commit_run(run_commit("shop", T0, states=[alert_state(key, T0)]))
        assert store.load_source("shop").states[key.fingerprint].version == 1

        resolved = alert_state(key, T0 + HOUR, AlertStateName.RESOLVED)
        store.commit_run(
            run_commit("shop", T0 + HOUR, states=[resolved], expected_versions={key.fingerprint: 1})
        )

        assert store.load_source("shop").states == {
            key.fingerprint: resolved.model_copy(update={"version": 2})
        }

    @settings(max_examples=25, deadline=None, suppress_health_check=CONTRACT_HEALTH_CHECKS)
    @given(
        backfilled=st.sets(st.integers(min_value=0, max_value=400), max_size=60),
        committed=st.integers(min_value=0, max_value=3),
        labelled=st.tuples(st.integers(min_value=0, max_value=400), st.integers(min_value=0, max_value=40)),
        before=st.integers(min_value=-1, max_value=420),
        limit=st.integers(min_value=0, max_value=80),
    )
    def test_a_series_read_through_load_source_is_what_series_returns(
        self,
        store: Store,
        backfilled: set[int],
        committed: int,
        labelled: tuple[int, int],
        before: int,
        limit: int,
    ) -> None:
        source = f"src{next(_unique)}"
        key = check_key(source)
        step = timedelta(minutes=15)
        store.put_points([MetricPoint(key=key, ts=T0 + o * step, value=float(o)) for o in sorted(backfilled)])
        for n in range(committed):  # runs after the backfill, each with its point
            at = T0 + (401 + n) * step
            store.commit_run(run_commit(source, at, points=[MetricPoint(key=key, ts=at, value=-n)]))
        start, length = labelled
        store.label_points(key, T0 + start * step, T0 + (start + length) * step, PointLabel.INCIDENT)

        loaded = store.load_source(source)
        window = loaded.series(key, before=T0 + before * step, limit=limit)

        if window is not None:  # None: this store's tail cannot tell, and the engine asks `series`
            assert window == store.series(key, before=T0 + before * step, limit=limit)
            column = loaded.series_values(key, before=T0 + before * step, limit=limit)
            assert column == store.series_values(key, before=T0 + before * step, limit=limit)
        assert loaded.series(check_key(source, table="other"), before=T0, limit=5) in (None, [])

    def test_points_read_back_behave_like_validated_points(self, store: Store) -> None:
        """Stores build the points they read back without validating them again (`stored_point`):
        they must still be ordinary MetricPoints (equal, hashable, frozen, dumped and copied like
        points built the usual way), through `series` and through a loaded tail alike."""
        key = CheckKey(source="reread", table="orders", check=CheckKind.FRESHNESS, metric="last_modified")
        written = [
            MetricPoint(key=key, ts=T0, value=1.5),
            MetricPoint(key=key, ts=T0 + timedelta(hours=1), value=2.5, label=PointLabel.ANOMALY),
        ]
        store.put_points(written)

        reads = [store.series(key, before=T0 + timedelta(days=1))]
        loaded = store.load_source("reread").series(key, before=T0 + timedelta(days=1), limit=10)
        if loaded is not None:  # None: this store hands over no tails
            reads.append(loaded)
        for read in reads:
            assert read == written
            assert [hash(p) for p in read] == [hash(p) for p in written]
            assert [p.model_dump() for p in read] == [p.model_dump() for p in written]
            assert [p.model_fields_set for p in read] == [{"key", "ts", "value", "label"}] * 2
            relabelled = read[1].model_copy(update={"label": PointLabel.NONE})
            assert (relabelled.label, read[1].label, relabelled.model_fields_set) == (
                PointLabel.NONE,
                PointLabel.ANOMALY,
                {"key", "ts", "value", "label"},
            )
            with pytest.raises(ValidationError):
                read[0].value = 3.0  # type: ignore[misc]
            assert read[0].ts.tzinfo is UTC

    # ------------------------------------------------------------------ fits
    def test_a_committed_fit_is_loaded_back_equal_with_the_source(self, store: Store) -> None:
        key, other = check_key("shop"), check_key("shop", table="customers")
        fits = {key.fingerprint: fit(key.fingerprint, T0), other.fingerprint: fit(other.fingerprint, T0, 7.5)}

        assert store.commit_run(run_commit("shop", T0, fits=fits)) is True

        assert store.load_source("shop").fits == fits
        assert store.load_source("nobody").fits == {}

    @settings(max_examples=30, deadline=None, suppress_health_check=CONTRACT_HEALTH_CHECKS)
    @given(fits=st.dictionaries(st.text(min_size=1, max_size=16), json_objects, max_size=4))
    def test_any_json_fit_reads_back_equal(self, store: Store, fits: dict[str, dict[str, Any]]) -> None:
        source = f"src{next(_unique)}"

        assert store.commit_run(run_commit(source, T0, fits=fits)) is True

        assert store.load_source(source).fits == fits

    def test_a_later_commit_replaces_the_fits_it_carries_and_keeps_the_others(self, store: Store) -> None:
        key, other = check_key("shop"), check_key("shop", table="customers")
        store.commit_run(
            run_commit(
                "shop",
                T0,
                fits={
                    key.fingerprint: fit(key.fingerprint, T0),
                    other.fingerprint: fit(other.fingerprint, T0),
                },
            )
        )
        refitted = fit(key.fingerprint, T0 + HOUR, level=250.0)

        assert store.commit_run(run_commit("shop", T0 + HOUR, fits={key.fingerprint: refitted})) is True
        store.commit_run(run_commit("shop", T0 + 2 * HOUR))  # a run that fitted nothing keeps them all

        assert store.load_source("shop").fits == {
            key.fingerprint: refitted,
            other.fingerprint: fit(other.fingerprint, T0),
        }

    def test_a_duplicate_commit_writes_no_fit(self, store: Store) -> None:
        key, new = check_key("shop"), check_key("shop", table="customers")
        first = fit(key.fingerprint, T0)
        assert store.commit_run(run_commit("shop", T0, fits={key.fingerprint: first})) is True
        retry = run_commit(
            "shop",
            T0,
            fits={
                key.fingerprint: fit(key.fingerprint, T0, level=1.0),
                new.fingerprint: fit(new.fingerprint, T0),
            },
        )

        assert store.commit_run(retry) is False

        assert store.load_source("shop").fits == {key.fingerprint: first}

    def test_a_commit_refused_for_a_conflict_writes_no_fit(self, store: Store) -> None:
        key = check_key("shop")
        first = fit(key.fingerprint, T0 - HOUR)
        store.commit_run(
            run_commit("shop", T0 - HOUR, states=[alert_state(key, T0 - HOUR)], fits={key.fingerprint: first})
        )
        stale = run_commit(
            "shop",
            T0,
            states=[alert_state(key, T0, AlertStateName.RESOLVED)],  # read as new: it is at version 1
            fits={key.fingerprint: fit(key.fingerprint, T0, level=1.0)},
        )

        with pytest.raises(StateConflict):
            store.commit_run(stale)

        assert store.load_source("shop").fits == {key.fingerprint: first}

    def test_fits_of_one_source_never_appear_in_anothers_context(self, store: Store) -> None:
        shop, billing = check_key("shop"), check_key("billing")
        store.commit_run(run_commit("shop", T0, fits={shop.fingerprint: fit(shop.fingerprint, T0)}))
        store.commit_run(
            run_commit("billing", T0, fits={billing.fingerprint: fit(billing.fingerprint, T0, 2.0)})
        )
        # The same fingerprint committed by two sources stays two fits: each source keeps its own.
        store.commit_run(
            run_commit("billing", T0 + HOUR, fits={shop.fingerprint: fit(shop.fingerprint, T0, 3.0)})
        )

        assert store.load_source("shop").fits == {shop.fingerprint: fit(shop.fingerprint, T0)}
        assert store.load_source("billing").fits == {
            billing.fingerprint: fit(billing.fingerprint, T0, 2.0),
            shop.fingerprint: fit(shop.fingerprint, T0, 3.0),
        }
        assert store.load_source("shop-2").fits == {}  # a source named after another's prefix

    def test_a_fit_that_is_not_json_is_left_out_and_never_fails_the_run(
        self, store: Store, caplog: pytest.LogCaptureFixture
    ) -> None:
        good, bad = check_key("shop"), check_key("shop", table="customers")
        commit = run_commit(
            "shop", T0, fits={good.fingerprint: fit(good.fingerprint, T0), bad.fingerprint: {"x": {1, 2}}}
        )

        assert store.commit_run(commit) is True

        assert store.get_run("shop", T0) == commit.run
        assert store.load_source("shop").fits == {good.fingerprint: fit(good.fingerprint, T0)}
        assert any(bad.fingerprint in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)

    # ------------------------------------------------------------------ alert states
    def test_new_state_is_stored_at_version_one_and_each_update_adds_one(self, store: Store) -> None:
        key = check_key("shop")
        store.commit_run(run_commit("shop", T0, states=[alert_state(key, T0, AlertStateName.PENDING)]))

        (stored,) = store.alert_states("shop")
        assert (stored.state, stored.version) == (AlertStateName.PENDING, 1)

        firing = alert_state(key, T0 + HOUR, AlertStateName.FIRING)
        store.commit_run(
            run_commit("shop", T0 + HOUR, states=[firing], expected_versions={key.fingerprint: 1})
        )

        (stored,) = store.alert_states("shop")
        assert stored == firing.model_copy(update={"version": 2})

    def test_alert_states_filter_by_source(self, store: Store) -> None:
        shop, billing = check_key("shop"), check_key("billing")
        store.commit_run(run_commit("shop", T0, states=[alert_state(shop, T0)]))
        store.commit_run(run_commit("billing", T0, states=[alert_state(billing, T0)]))

        assert [s.key for s in store.alert_states("shop")] == [shop]
        assert {s.key for s in store.alert_states()} == {shop, billing}
        assert store.alert_states("nobody") == []

    @pytest.mark.parametrize(
        ("stored_version", "expected_version"),
        [(1, 0), (2, 1), (0, 1)],
        ids=["new-but-exists", "stale-version", "expected-but-missing"],
    )
    def test_state_conflict_writes_nothing(
        self, store: Store, stored_version: int, expected_version: int
    ) -> None:
        key, untouched = check_key("shop"), check_key("shop", metric="lag_seconds", check=CheckKind.FRESHNESS)
        for version in range(stored_version):
            store.commit_run(
                run_commit(
                    "shop",
                    T0 - (10 - version) * HOUR,
                    states=[alert_state(key, T0 - HOUR)],
                    expected_versions={key.fingerprint: version},
                )
            )
        before = (store.alert_states(), store.runs(limit=100), store.snapshots("shop", limit=100))
        conflicting = run_commit(
            "shop",
            T0,
            points=points_of(key, [T0]),
            # A state that would be fine on its own is listed first: it must not be written either.
            states=[alert_state(untouched, T0), alert_state(key, T0, AlertStateName.RESOLVED)],
            expected_versions={key.fingerprint: expected_version},
            transitions=[transition(key, T0)],
            notifications=[notification("shop", T0)],
            baselines=[baseline("shop")],
        )

        with pytest.raises(StateConflict):
            store.commit_run(conflicting)

        assert (store.alert_states(), store.runs(limit=100), store.snapshots("shop", limit=100)) == before
        assert store.get_run("shop", T0) is None
        assert store.series(key, before=T0 + HOUR) == []
        assert store.transitions("shop") == []
        assert store.pending_notifications() == []
        assert store.schema_baselines("shop").get("orders") is None

    def test_run_refused_for_a_conflict_can_commit_once_rebased(self, store: Store) -> None:
        key = check_key("shop")
        store.commit_run(run_commit("shop", T0 - HOUR, states=[alert_state(key, T0 - HOUR)]))
        with pytest.raises(StateConflict):
            store.commit_run(run_commit("shop", T0, states=[alert_state(key, T0)]))

        rebased = run_commit(
            "shop", T0, states=[alert_state(key, T0)], expected_versions={key.fingerprint: 1}
        )

        assert store.commit_run(rebased) is True
        assert [s.version for s in store.alert_states()] == [2]

    # ------------------------------------------------------------------ transitions
    def test_transitions_are_newest_first_and_filter_by_table_fingerprint_and_time(
        self, store: Store
    ) -> None:
        orders, lag = check_key("shop"), check_key("shop", metric="lag_seconds", check=CheckKind.FRESHNESS)
        customers = check_key("shop", table="customers")
        at = hours(3)
        store.commit_run(
            run_commit("shop", at[0], transitions=[transition(orders, at[0]), transition(customers, at[0])])
        )
        store.commit_run(run_commit("shop", at[1], transitions=[transition(lag, at[1])]))
        store.commit_run(
            run_commit(
                "shop",
                at[2],
                transitions=[transition(orders, at[2], AlertStateName.FIRING, AlertStateName.RESOLVED)],
            )
        )
        store.commit_run(run_commit("billing", at[2], transitions=[transition(check_key("billing"), at[2])]))

        def seen(found: list[Transition]) -> list[tuple[str, datetime]]:
            return [(t.key.label, t.at) for t in found]

        assert seen(store.transitions("shop", table="orders")) == [
            (orders.label, at[2]),
            (lag.label, at[1]),
            (orders.label, at[0]),
        ]
        assert seen(store.transitions("shop", fingerprint=orders.fingerprint)) == [
            (orders.label, at[2]),
            (orders.label, at[0]),
        ]
        as_of = store.transitions("shop", as_of=at[1])
        # Transitions at the same instant may come in either order.
        assert [t.at for t in as_of] == [at[1], at[0], at[0]]
        assert set(seen(as_of)) == {(lag.label, at[1]), (orders.label, at[0]), (customers.label, at[0])}
        assert seen(store.transitions("shop", table="customers", limit=5)) == [(customers.label, at[0])]
        assert len(store.transitions("shop", limit=2)) == 2
        assert store.transitions("shop", table="orders", fingerprint=customers.fingerprint) == []
        assert [t.key.source for t in store.transitions("billing")] == ["billing"]

    def test_a_transition_is_written_once_by_id_and_never_rewritten(self, store: Store) -> None:
        key = check_key("shop")
        original = transition(key, T0)
        store.commit_run(run_commit("shop", T0, transitions=[original]))

        rewritten = original.model_copy(update={"reason": "a retry that decided differently"})
        store.commit_run(run_commit("shop", T0 + HOUR, transitions=[rewritten]))

        assert store.transitions("shop") == [original]

    # ------------------------------------------------------------------ schema baselines
    def test_learned_baseline_is_kept_until_an_operator_replaces_it(self, store: Store) -> None:
        learned = baseline("shop", columns=("id", "total"))
        store.commit_run(run_commit("shop", T0, baselines=[learned]))
        assert store.schema_baselines("shop").get("orders") == learned

        store.commit_run(run_commit("shop", T0 + HOUR, baselines=[baseline("shop", columns=("id",))]))
        assert store.schema_baselines("shop").get("orders") == learned

        accepted = baseline("shop", by="alice", columns=("id", "total", "currency"))
        store.put_schema_baseline(accepted)
        store.commit_run(run_commit("shop", T0 + 2 * HOUR, baselines=[baseline("shop", columns=("id",))]))

        assert store.schema_baselines("shop").get("orders") == accepted
        assert store.schema_baselines("shop").get("customers") is None
        assert store.schema_baselines("billing").get("orders") is None

    def test_schema_baselines_of_a_source_come_in_one_read_by_table(self, store: Store) -> None:
        orders, customers = baseline("shop", "orders"), baseline("shop", "customers", by="alice")
        store.commit_run(run_commit("shop", T0, baselines=[orders]))
        store.put_schema_baseline(customers)
        store.put_schema_baseline(baseline("billing", "orders"))
        assert store.schema_baselines("shop") == {"orders": orders, "customers": customers}
        assert store.schema_baselines("nobody") == {}

    def test_put_schema_baseline_creates_one(self, store: Store) -> None:
        accepted = baseline("shop", "customers", by="alice")

        store.put_schema_baseline(accepted)

        assert store.schema_baselines("shop").get("customers") == accepted

    # ------------------------------------------------------------------ silences

    def test_put_silence_creates_and_extends_by_id(self, store: Store) -> None:
        first = silence("s1", T0, T0 + HOUR)
        store.put_silence(first)
        assert store.silences() == [first]

        extended = first.model_copy(update={"ends_at": T0 + 5 * HOUR, "comment": "migration, longer"})
        store.put_silence(extended)

        assert store.silences() == [extended]

    def test_delete_silence_says_whether_it_existed(self, store: Store) -> None:
        store.put_silence(silence("s1", T0, T0 + HOUR))
        store.put_silence(silence("s2", T0, T0 + HOUR))

        assert store.delete_silence("s1") is True
        assert store.delete_silence("s1") is False
        assert store.delete_silence("never") is False
        assert [s.id for s in store.silences()] == ["s2"]

    def test_active_silences_follow_silence_active(self, store: Store) -> None:
        silences = [
            silence("past", T0 - 2 * HOUR, T0),
            silence("now", T0 - HOUR, T0 + HOUR),
            silence("starting", T0, T0 + 2 * HOUR),
            silence("future", T0 + HOUR, T0 + 2 * HOUR),
        ]
        for s in silences:
            store.put_silence(s)

        for at in (T0 - HOUR, T0 - timedelta(microseconds=1), T0, T0 + HOUR, T0 + 3 * HOUR):
            active = store.silences(active_at=at)
            assert sorted(s.id for s in active) == sorted(s.id for s in silences if s.active(at)), at
        assert sorted(s.id for s in store.silences(active_at=T0)) == ["now", "starting"]
        assert len(store.silences()) == 4

    # ------------------------------------------------------------------ outbox
    def test_committed_notifications_are_pending_oldest_first(self, store: Store) -> None:
        first = notification("shop", T0)
        second_console = notification("shop", T0 + HOUR)
        second_slack = notification("shop", T0 + HOUR, channel="slack").model_copy(
            update={"created_at": T0 + HOUR + timedelta(seconds=1)}
        )
        billing = notification("billing", T0 + 30 * timedelta(minutes=1))
        store.commit_run(run_commit("shop", T0, notifications=[first]))
        store.commit_run(run_commit("billing", billing.run_time, notifications=[billing]))
        store.commit_run(run_commit("shop", T0 + HOUR, notifications=[second_slack, second_console]))

        assert store.pending_notifications() == [first, billing, second_console, second_slack]
        assert store.pending_notifications("shop") == [first, second_console, second_slack]
        assert store.pending_notifications("nobody") == []

    def test_a_notification_is_queued_once_by_id_and_never_rewritten(self, store: Store) -> None:
        queued = notification("shop", T0)
        store.commit_run(run_commit("shop", T0, notifications=[queued]))

        requeued = queued.model_copy(update={"created_at": T0 + HOUR, "silence_hint": "different"})
        store.commit_run(run_commit("shop", T0 + HOUR, notifications=[requeued]))

        assert store.pending_notifications() == [queued]

    def test_a_delivered_notification_is_not_queued_again(self, store: Store) -> None:
        sent = notification("shop", T0)
        store.commit_run(run_commit("shop", T0, notifications=[sent]))
        store.record_delivery(delivered(sent))

        store.commit_run(run_commit("shop", T0 + HOUR, notifications=[sent]))

        assert store.pending_notifications() == []

    def test_delivered_notification_leaves_the_outbox(self, store: Store) -> None:
        sent, waiting = notification("shop", T0, channel="slack"), notification("shop", T0)
        store.commit_run(run_commit("shop", T0, notifications=[sent, waiting]))

        store.record_delivery(delivered(sent))

        assert store.pending_notifications() == [waiting]
        assert store.delivery(sent.id) == delivered(sent)
        assert store.delivery(waiting.id) is None
        assert store.failed_deliveries() == []

    @pytest.mark.parametrize("caller_keeps_notification", [True, False])
    def test_failed_delivery_is_parked_with_its_notification(
        self, store: Store, caller_keeps_notification: bool
    ) -> None:
        parked, waiting = notification("shop", T0, channel="webhook"), notification("shop", T0)
        store.commit_run(run_commit("shop", T0, notifications=[parked, waiting]))

        store.record_delivery(failed(parked, keep=caller_keeps_notification))

        assert store.pending_notifications() == [waiting]
        assert store.failed_deliveries() == [failed(parked, keep=True)]
        assert store.delivery(parked.id) == failed(parked, keep=True)

    def test_replayed_failed_delivery_is_no_longer_failed(self, store: Store) -> None:
        parked = notification("shop", T0)
        store.commit_run(run_commit("shop", T0, notifications=[parked]))
        store.record_delivery(failed(parked))

        store.record_delivery(delivered(parked))

        assert store.failed_deliveries() == []
        assert store.delivery(parked.id) == delivered(parked)
        assert store.pending_notifications() == []

    def test_failed_deliveries_are_oldest_first(self, store: Store) -> None:
        notes = [notification("shop", at) for at in hours(3)]
        store.commit_run(run_commit("shop", T0, notifications=notes))
        for minutes, note in zip((30, 10, 20), notes, strict=True):
            store.record_delivery(
                failed(note, keep=True).model_copy(update={"at": T0 + timedelta(minutes=minutes)})
            )

        assert [r.notification_id for r in store.failed_deliveries()] == [
            notes[1].id,
            notes[2].id,
            notes[0].id,
        ]

    # ------------------------------------------------------------------ delivery ledger
    def test_a_claim_is_granted_once_with_the_body_read_from_the_store(self, store: Store) -> None:
        note = notification("shop", T0)
        store.commit_run(run_commit("shop", T0, notifications=[note]))

        first = store.claim_delivery(note.id, claim("a"))
        second = store.claim_delivery(note.id, claim("b"))

        assert first == Claim(Verdict.SEND, notification=note)
        assert second.verdict is Verdict.IN_FLIGHT and second.holder == "a" and second.notification is None
        assert store.claim_delivery(note.id, claim("a")).verdict is Verdict.IN_FLIGHT  # its own, too
        assert store.claim_delivery("no-such-id", claim("a")).verdict is Verdict.UNKNOWN

    def test_of_simultaneous_claims_exactly_one_wins(self, store: Store) -> None:
        note = notification("shop", T0)
        store.commit_run(run_commit("shop", T0, notifications=[note]))

        results = run_in_threads(
            *[lambda i=i: store.claim_delivery(note.id, claim(f"c{i}")) for i in range(6)]
        )

        verdicts = sorted(r.verdict.value if isinstance(r, Claim) else repr(r) for r in results)
        assert verdicts == ["in_flight"] * 5 + ["send"]

    def test_a_delivered_notification_is_never_claimed_again_nor_parked_over(self, store: Store) -> None:
        note = notification("shop", T0)
        store.commit_run(run_commit("shop", T0, notifications=[note]))
        store.claim_delivery(note.id, claim("a"))
        store.record_delivery(delivered(note))

        later = store.claim_delivery(note.id, claim("b", at=T0 + 10 * HOUR, retry_parked=True))
        store.record_delivery(failed(note))  # a late failure report of another sender

        assert later == Claim(Verdict.DELIVERED, record=delivered(note))
        assert store.delivery(note.id) == delivered(note)
        assert store.failed_deliveries() == [] and store.pending_notifications() == []

    def test_a_claim_is_taken_over_when_its_lease_expires_or_its_holder_is_gone(self, store: Store) -> None:
        expiring, orphaned = notification("shop", T0), notification("shop", T0, channel="slack")
        store.commit_run(run_commit("shop", T0, notifications=[expiring, orphaned]))
        for note in (expiring, orphaned):
            store.claim_delivery(note.id, claim("crashed"))

        before_expiry = T0 + timedelta(minutes=4)
        assert store.claim_delivery(expiring.id, claim("b", at=before_expiry)).verdict is Verdict.IN_FLIGHT
        assert store.claim_delivery(expiring.id, claim("b", at=T0 + timedelta(minutes=6))).granted
        gone = ClaimRequest("c", before_expiry, LEASE, orphaned=lambda holder: holder == "crashed")
        assert store.claim_delivery(orphaned.id, gone).granted

    def test_a_released_claim_can_be_claimed_at_once_and_only_its_holder_releases(self, store: Store) -> None:
        note = notification("shop", T0)
        store.commit_run(run_commit("shop", T0, notifications=[note]))
        store.claim_delivery(note.id, claim("a"))

        store.release_delivery(note.id, "someone-else")
        assert store.claim_delivery(note.id, claim("b")).verdict is Verdict.IN_FLIGHT
        store.release_delivery(note.id, "a")
        assert store.claim_delivery(note.id, claim("b")).granted

    def test_a_parked_notification_is_claimed_only_to_be_redelivered(self, store: Store) -> None:
        note = notification("shop", T0)
        store.commit_run(run_commit("shop", T0, notifications=[note]))
        store.record_delivery(failed(note))

        assert store.claim_delivery(note.id, claim("a")) == Claim(
            Verdict.PARKED, record=failed(note, keep=True)
        )
        replay = store.claim_delivery(note.id, claim("a", retry_parked=True))
        assert replay.granted and replay.notification == note
        assert store.claim_delivery(note.id, claim("b", retry_parked=True)).verdict is Verdict.IN_FLIGHT
        store.record_delivery(delivered(note))
        assert store.failed_deliveries() == [] and store.delivery(note.id) == delivered(note)

    def test_the_backlog_lists_waiting_entries_with_their_claims_and_parked_ones(self, store: Store) -> None:
        claimed, waiting, parked, sent = (notification("shop", T0, channel=c) for c in ("a", "b", "c", "d"))
        store.commit_run(run_commit("shop", T0, notifications=[claimed, waiting, parked, sent]))
        store.claim_delivery(claimed.id, claim("x"))
        store.record_delivery(failed(parked))
        store.record_delivery(delivered(sent))

        backlog = store.delivery_backlog()

        assert sorted(backlog.pending, key=lambda p: p.notification.channel) == [
            PendingDelivery(claimed, "x", T0 + LEASE),
            PendingDelivery(waiting),
        ]
        assert backlog.parked == [failed(parked, keep=True)]

    # ------------------------------------------------------------------ grouped notices
    def test_grouped_notices_wait_by_group_oldest_first_and_not_in_the_outbox(self, store: Store) -> None:
        late, early, other = (
            waiting("shop", T0 + HOUR),
            waiting("billing", T0),
            waiting("shop", T0, in_group="g2"),
        )
        store.commit_run(run_commit("shop", T0 + HOUR, grouped=[late]))
        store.commit_run(run_commit("billing", T0, grouped=[early]))
        store.commit_run(run_commit("shop", T0, grouped=[other]))

        assert sorted(store.pending_groups(), key=lambda g: g.key) == [
            PendingGroup("g-orders", [early, late]),
            PendingGroup("g2", [other]),
        ]
        assert store.pending_notifications() == [] and store.delivery_backlog().pending == []

    def test_sealing_moves_a_groups_notices_into_one_outbox_message_and_records_its_window(
        self, store: Store
    ) -> None:
        parts = [waiting("shop", T0), waiting("billing", T0 + timedelta(seconds=10))]
        store.commit_run(run_commit("shop", T0, grouped=parts[:1]))
        store.commit_run(run_commit("billing", T0 + timedelta(seconds=10), grouped=parts[1:]))
        (read,) = store.pending_groups()
        window = T0 + timedelta(seconds=30)

        assert store.seal_group(read, merged_of(read.parts, window)) is True

        assert store.pending_notifications() == [merged_of(parts, window)]
        assert store.pending_groups() == []
        later = waiting("shop", T0 + timedelta(minutes=1))
        store.commit_run(run_commit("shop", T0 + timedelta(minutes=1), grouped=[later]))
        assert store.pending_groups() == [PendingGroup("g-orders", [later], window, 1)]
        sent = store.claim_delivery(merged_of(parts, window).id, claim("a"))
        assert sent.granted and sent.notification == merged_of(parts, window)

    def test_a_sealed_notice_is_never_queued_again(self, store: Store) -> None:
        part = waiting("shop", T0)
        store.commit_run(run_commit("shop", T0, grouped=[part]))
        (read,) = store.pending_groups()
        store.seal_group(read, merged_of(read.parts, T0 + HOUR))

        store.commit_run(run_commit("shop", T0 + HOUR, grouped=[part]))

        assert store.pending_groups() == []

    def test_a_seal_of_a_group_read_before_another_seal_writes_nothing(self, store: Store) -> None:
        first = waiting("shop", T0)
        store.commit_run(run_commit("shop", T0, grouped=[first]))
        (stale,) = store.pending_groups()
        store.seal_group(stale, merged_of(stale.parts, T0 + HOUR))
        second = waiting("shop", T0 + HOUR)
        store.commit_run(run_commit("shop", T0 + HOUR, grouped=[second]))

        # the same read again, and a read of other notices that claims the sealed group's version
        assert store.seal_group(stale, merged_of(stale.parts, T0 + 2 * HOUR)) is False
        assert store.seal_group(replace_parts(stale, [second]), merged_of([second], T0 + 3 * HOUR)) is False

        assert store.pending_notifications() == [merged_of([first], T0 + HOUR)]
        assert store.pending_groups() == [PendingGroup("g-orders", [second], T0 + HOUR, 1)]

    def test_of_simultaneous_seals_of_one_group_exactly_one_wins(self, store: Store) -> None:
        parts = [waiting(f"s{i}", T0 + i * timedelta(seconds=1)) for i in range(3)]
        for i, part in enumerate(parts):
            store.commit_run(run_commit(f"s{i}", part.created_at, grouped=[part]))
        (read,) = store.pending_groups()
        window = T0 + timedelta(seconds=30)

        results = run_in_threads(*[lambda: store.seal_group(read, merged_of(read.parts, window))] * 4)

        assert sorted(results, key=repr) == [False, False, False, True]
        assert store.pending_notifications() == [merged_of(parts, window)]
        assert store.pending_groups() == []

    # ------------------------------------------------------------------ fidelity
    def test_a_commit_with_every_field_populated_reads_back_equal(self, store: Store) -> None:
        commit = full_commit()
        missing = unpopulated_fields(commit)
        assert missing == [], f"full_commit() must set every model field; extend it to set {missing}"

        assert store.commit_run(commit) is True

        (state,) = commit.states
        assert store.get_run(commit.run.source, commit.run.scheduled_time) == commit.run
        assert store.snapshots(commit.run.source) == [commit.snapshot]
        assert store.series(state.key, before=T0 + HOUR) == commit.points
        assert store.alert_states() == [state.model_copy(update={"version": 1})]
        assert store.transitions(commit.run.source) == commit.transitions
        assert store.pending_notifications() == commit.notifications
        assert store.pending_groups() == [PendingGroup("g-1", commit.grouped)]
        assert store.schema_baselines("shöp").get("orders") == commit.schema_baselines[0]
        assert store.load_source("shöp").fits == commit.fits

    def test_every_time_read_back_is_aware_utc(self, store: Store) -> None:
        commit = full_commit()
        store.commit_run(commit)
        (state,) = commit.states
        (sent,) = commit.notifications
        store.record_delivery(failed(sent))
        store.put_silence(silence("s1", T0, T0 + HOUR))

        (run,) = store.runs()
        (snap,) = store.snapshots("shöp")
        (stored_state,) = store.alert_states()
        (trans,) = store.transitions("shöp")
        (note,) = store.failed_deliveries()
        (muted,) = store.silences()
        ((part,),) = [g.parts for g in store.pending_groups()]
        assert note.notification is not None
        times: list[datetime | None] = [
            run.scheduled_time,
            run.started_at,
            run.finished_at,
            snap.scheduled_time,
            snap.collected_at,
            snap.tables[0].last_modified,
            *(p.ts for p in store.series(state.key, before=T0 + HOUR)),
            stored_state.since,
            stored_state.active_since,
            stored_state.last_notified_at,
            *stored_state.notified_at.values(),
            trans.at,
            note.at,
            note.notification.run_time,
            note.notification.alerts[0].recent[0][0],
            muted.starts_at,
            muted.ends_at,
            part.not_before,
            part.created_at,
        ]
        assert all(is_utc(t) for t in times), times

    # ------------------------------------------------------------------ concurrency
    def test_two_threads_committing_the_same_run_commit_it_once(self, store: Store) -> None:
        key = check_key("shop")
        commits = [run_commit("shop", T0, points=points_of(key, [T0]), row_count=n) for n in (1, 2)]

        results = run_in_threads(*(lambda c=c: store.commit_run(c) for c in commits))

        assert sorted(results, key=repr) == [False, True]
        (stored,) = store.snapshots("shop", limit=10)
        assert stored == commits[results.index(True)].snapshot

    def test_two_runs_racing_to_create_one_state_one_wins(self, store: Store) -> None:
        key = check_key("shop")
        commits = [run_commit("shop", at, states=[alert_state(key, at)]) for at in (T0, T0 + HOUR)]

        results = run_in_threads(*(lambda c=c: store.commit_run(c) for c in commits))

        assert sum(r is True for r in results) == 1
        assert sum(isinstance(r, StateConflict) for r in results) == 1
        winner = commits[results.index(True)]
        assert [r.scheduled_time for r in store.runs()] == [winner.run.scheduled_time]
        assert [s.since for s in store.alert_states()] == [winner.run.scheduled_time]


def replace_parts(group: PendingGroup, parts: list[GroupedNotice]) -> PendingGroup:
    return PendingGroup(group.key, parts, group.last_notified, group.version)


def unpopulated_fields(root: BaseModel) -> list[str]:
    """`Model.field` for each field of each model inside `root` that no instance sets to a non-empty value."""
    models: set[type[BaseModel]] = set()
    populated: set[tuple[type[BaseModel], str]] = set()

    def walk(value: object) -> None:
        if isinstance(value, BaseModel):
            models.add(type(value))
            for name in type(value).model_fields:
                field = getattr(value, name)
                if field is not None and field != "" and field != [] and field != {}:
                    populated.add((type(value), name))
                walk(field)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)

    walk(root)
    return sorted(
        f"{m.__name__}.{name}"
        for m in models
        for name, info in m.model_fields.items()
        if (m, name) not in populated and not info.exclude  # excluded fields are never stored
    )


def full_commit() -> RunCommit:
    """A commit with every optional field set, awkward values included (non-ASCII, inf, microseconds)."""
    at = T0 + timedelta(microseconds=123_457)
    key = CheckKey(
        source="shöp", table="orders", check=CheckKind.COLUMN, metric="mean", column="tötal", segment="eu"
    )
    explanation = Explanation(
        observed=12.5,
        expected="≈ 100",
        lower=-math.inf,
        upper=math.inf,
        score=7.25,
        method="seasonal median + MAD",
        training_start=at - 7 * 24 * HOUR,
        training_end=at - HOUR,
        training_points=168,
        seasonal_slot="Mon 09:00",
        effect_size=-0.875,
        direction="drop",
        needed_points=3,
        reason="mean of tötal fell by 88%",
        details={"diff": {"added": ["currency"], "removed": []}, "rows": [{"id": 1, "ok": True, "x": None}]},
    )
    found = Finding(
        key=key, ts=at, status=FindingStatus.ANOMALY, severity=Severity.CRITICAL, explanation=explanation
    )
    columns = [
        ColumnInfo(name="id", type="integer", raw_type="bigint", nullable=False, position=1),
        ColumnInfo(name="tötal", type="numeric", raw_type="numeric(12,2)", nullable=True, position=2),
    ]
    moved = Transition(
        id="t-1",
        fingerprint=key.fingerprint,
        key=key,
        at=at,
        from_state=AlertStateName.PENDING,
        to_state=AlertStateName.FIRING,
        severity=Severity.CRITICAL,
        reason="held for 2 runs",
        finding=found,
        silenced_by=["s-9"],
    )
    sent = Notification(
        id="n-1",
        source="shöp",
        channel="slack",
        run_time=at,
        created_at=at + timedelta(seconds=1),
        owner="team-data",
        tags=["tier-1", "pii"],
        alerts=[
            AlertNotice(
                key=key,
                kind=NoticeKind.ESCALATED,
                state=AlertStateName.FIRING,
                severity=Severity.CRITICAL,
                since=at - HOUR,
                active_since=at - 2 * HOUR,
                finding=found,
                transition_id="t-1",
                changed="warning → critical",
                recent=[(at - HOUR, 99.5), (at, 12.5)],
            )
        ],
        silence_hint="driftguard silence add source=shöp --for 2h",
        group=NotificationGroup(
            key="g-1",
            route="route.routes[0]",
            channel="slack",
            labels={"table": "orders", "owner": "team-data"},
            wait=timedelta(0),
            interval=timedelta(minutes=5, microseconds=1),
        ),
    )
    part = GroupedNotice(
        group=sent.group,
        not_before=at + timedelta(seconds=30),
        notification=sent.model_copy(update={"id": "n-2"}),
    )
    return RunCommit(
        run=RunRecord(
            source="shöp",
            scheduled_time=at,
            started_at=at + timedelta(milliseconds=5),
            finished_at=at + timedelta(seconds=3),
            status=RunStatus.PARTIAL,
            error="table customers: permission denied",
            error_kind="permission",
            findings=4,
            anomalies=1,
            notifications=1,
            results=[found],
        ),
        snapshot=Snapshot(
            source="shöp",
            scheduled_time=at,
            collected_at=at + timedelta(seconds=2),
            tables=[
                TableSnapshot(
                    table="orders",
                    db_schema="public",
                    row_count=1_000_000,
                    row_count_method="exact",
                    last_modified=at - timedelta(minutes=3),
                    period_counts=[
                        PeriodCount(start=at - 2 * HOUR, count=10),
                        PeriodCount(start=at - HOUR, count=0),
                    ],
                    columns=columns,
                    profiles=[
                        ColumnProfile(
                            column="tötal",
                            row_count=1_000_000,
                            null_count=12,
                            distinct_count=5000,
                            mean=12.5,
                            min=0.01,
                            max="9999.99",
                            quantiles={"p25": 1.5, "p50": 9.0, "p75": 20.25},
                            period_start=at - HOUR,
                            sample_rows=100_000,
                            errors={"min": "source shöp, table orders: canceling statement (SQLSTATE 57014)"},
                        )
                    ],
                    round_trips=4,
                    change_marker=2**48 - 1,
                    reused_from=at - HOUR,
                    segments=[
                        SegmentSnapshot(
                            segment="country=DÉ",
                            period_start=at - HOUR,
                            row_count=41,
                            last_modified=at - timedelta(minutes=5),
                            profiles=[
                                ColumnProfile(
                                    column="tötal",
                                    row_count=41,
                                    null_count=1,
                                    mean=3.5,
                                    period_start=at - HOUR,
                                )
                            ],
                        ),
                        SegmentSnapshot(segment="country=GB", present=False),
                        SegmentSnapshot(segment="(other)", row_count=7, folded=12),
                    ],
                ),
                TableSnapshot(table="customers", error="permission denied", error_kind="permission"),
            ],
            sql_checks=[
                SqlCheckResult(
                    name="no_negative",
                    status="ALERT",
                    actual=3.0,
                    threshold=0.0,
                    context=[{"id": 7, "total": -1.5}],
                    rows=3,
                )
            ],
            sql_errors={"late_orders": "relation does not exist"},
            duration_ms=812.5,
            round_trips=9,
        ),
        points=[
            MetricPoint(key=key, ts=at - HOUR, value=99.5, label=PointLabel.NONE),
            MetricPoint(key=key, ts=at, value=12.5, label=PointLabel.ANOMALY),
        ],
        states=[
            AlertState(
                key=key,
                state=AlertStateName.FIRING,
                severity=Severity.CRITICAL,
                since=at,
                active_since=at - HOUR,
                consecutive=2,
                last_finding=found,
                last_notified_at=at + timedelta(seconds=1),
                last_notified_severity=Severity.CRITICAL,
                last_transition_id="t-1",
                version=0,
                notified_at={"slack": at + timedelta(seconds=1), "email": at - HOUR},
                last_notified_finding=found.model_copy(update={"ts": at - HOUR}),
            )
        ],
        expected_versions={key.fingerprint: 0},  # explicit "must not exist yet"
        transitions=[moved],
        notifications=[sent],
        grouped=[part],
        schema_baselines=[
            SchemaBaseline(
                source="shöp", table="orders", columns=columns, accepted_at=at, accepted_by="learned"
            )
        ],
        context_version=0,  # judged on a source never written before
        fits={key.fingerprint: {**fit(key.fingerprint, at), "note": "a level shift to ≈ 100 was adopted"}},
    )
