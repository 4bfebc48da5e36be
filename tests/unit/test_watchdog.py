"""The watchdog: the pure decision of which sources are overdue, the engine recording a missed run
through the alert lifecycle (pages once, resolves with the next check), and the store adapter."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_engine import CONFIG, RecordingSender, ScriptedCollector, make_engine

from driftguard.config import Schedule, parse_config
from driftguard.engine import source_key
from driftguard.errors import ErrorKind
from driftguard.model import AlertStateName, NoticeKind, RunStatus
from driftguard.store.sqlite import SqliteStore
from driftguard.watchdog import GRACE, MISSED_PERIODS, LastRun, find_overdue, latest_runs, overdue

T0 = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)
QUARTER = Schedule(rate=timedelta(minutes=15))
DAILY = Schedule(cron="0 6 * * *", timezone="Europe/Berlin")


def checked(at: datetime) -> LastRun:
    return LastRun(at, missed=False)


# --------------------------------------------------------------------------- the pure decision


def test_a_source_checked_within_two_periods_is_not_overdue() -> None:
    just_before = T0 + 2 * QUARTER.period + GRACE - timedelta(seconds=1)
    assert overdue({"a": QUARTER}, {"a": checked(T0)}, just_before) == []


def test_two_silent_periods_make_a_source_overdue_at_its_latest_scheduled_time() -> None:
    now = T0 + 2 * QUARTER.period + GRACE
    (found,) = overdue({"a": QUARTER}, {"a": checked(T0)}, now)
    assert found.source == "a" and found.last_run == T0
    assert found.scheduled_time == T0 + 2 * QUARTER.period
    assert "35m since the last check" in found.reason and "dead-letter" in found.reason


def test_after_a_missed_run_each_further_silent_period_is_missed_too() -> None:
    missed = T0 + 2 * QUARTER.period
    assert overdue({"a": QUARTER}, {"a": LastRun(missed, missed=True)}, missed + GRACE) == []
    (found,) = overdue({"a": QUARTER}, {"a": LastRun(missed, missed=True)}, missed + QUARTER.period + GRACE)
    assert found.scheduled_time == missed + QUARTER.period


def test_a_source_that_never_ran_is_left_out_without_a_time_it_was_watched() -> None:
    assert overdue({"a": QUARTER}, {"a": None}, T0 + timedelta(days=3)) == []
    assert overdue({"a": QUARTER}, {}, T0 + timedelta(days=3)) == []


def test_cron_schedules_count_their_own_period() -> None:
    last = DAILY.latest_fire(T0)
    assert overdue({"d": DAILY}, {"d": checked(last)}, last + timedelta(days=1, hours=23)) == []
    (found,) = overdue({"d": DAILY}, {"d": checked(last)}, last + timedelta(days=2) + GRACE)
    assert found.scheduled_time == DAILY.latest_fire(last + timedelta(days=2))


@given(
    minutes=st.sampled_from([1, 5, 15, 30, 60, 120, 1440]),
    silent=st.integers(min_value=0, max_value=6 * 1440 * 60),
    missed=st.booleans(),
)
def test_overdue_exactly_when_the_silence_reaches_its_periods(
    minutes: int, silent: int, missed: bool
) -> None:
    schedule = Schedule(rate=timedelta(minutes=minutes))
    last = schedule.latest_fire(T0)
    now = last + timedelta(seconds=silent)
    found = overdue({"s": schedule}, {"s": LastRun(last, missed)}, now)
    due = timedelta(seconds=silent) >= (1 if missed else MISSED_PERIODS) * schedule.period + GRACE
    assert bool(found) == due
    for o in found:
        assert last < o.scheduled_time <= now - GRACE
        assert o.scheduled_time == schedule.latest_fire(now - GRACE)


@given(st.dictionaries(st.sampled_from("abcdefgh"), st.integers(0, 200), min_size=1))
def test_the_decision_is_per_source_and_ordered(silences: dict[str, int]) -> None:
    schedules = {name: QUARTER for name in silences}
    runs = {name: checked(T0) for name in silences}
    now = T0 + timedelta(minutes=max(silences.values()))
    found = overdue(schedules, runs, now)
    assert [o.source for o in found] == sorted(o.source for o in found)
    assert len(found) == (1 if max(silences.values()) * 60 >= 2 * 900 + GRACE.total_seconds() else 0) * len(
        silences
    )


# --------------------------------------------------------------------------- engine and store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "state.db")
    yield s
    s.close()


def test_a_missed_run_pages_once_and_the_next_check_resolves_it(store: SqliteStore) -> None:
    config = parse_config(CONFIG)
    sender = RecordingSender()
    engine = make_engine(config, store, ScriptedCollector([100]), sender)
    engine.check("shop", T0)
    hour = timedelta(hours=1)
    (first,) = overdue(
        {"shop": config.schedule_of(config.sources[0])}, latest_runs(store, ["shop"]), T0 + 2 * hour + GRACE
    )
    outcome = engine.record_missed(first.source, first.scheduled_time, first.reason)
    assert outcome.run.status == RunStatus.FAILED and outcome.run.error_kind == ErrorKind.MISSED.value
    (state,) = [s for s in store.alert_states("shop") if s.key == source_key("shop")]
    assert state.state == AlertStateName.NO_DATA
    (page,) = sender.sent
    assert [a.kind for a in page.alerts] == [NoticeKind.ERROR]
    assert engine.record_missed(first.source, first.scheduled_time, first.reason).duplicate

    (second,) = overdue(
        {"shop": config.schedule_of(config.sources[0])}, latest_runs(store, ["shop"]), T0 + 3 * hour + GRACE
    )
    assert second.scheduled_time == T0 + 3 * hour
    engine.record_missed(second.source, second.scheduled_time, second.reason)
    assert len(sender.sent) == 1, "a continuing outage pages once"

    engine.check("shop", T0 + 4 * hour)
    resolved = sender.sent[-1]
    assert len(sender.sent) == 2 and [a.kind for a in resolved.alerts] == [NoticeKind.RESOLVED]
    (state,) = [s for s in store.alert_states("shop") if s.key == source_key("shop")]
    assert state.state == AlertStateName.RESOLVED


def test_latest_runs_reads_the_newest_run_and_whether_it_was_missed(store: SqliteStore) -> None:
    config = parse_config(CONFIG)
    engine = make_engine(config, store, ScriptedCollector([100]), RecordingSender())
    assert latest_runs(store, ["shop"]) == {"shop": None}
    engine.check("shop", T0)
    assert latest_runs(store, ["shop"]) == {"shop": LastRun(T0, missed=False)}
    engine.record_missed("shop", T0 + timedelta(hours=3), "no run")
    assert latest_runs(store, ["shop"]) == {"shop": LastRun(T0 + timedelta(hours=3), missed=True)}


# --------------------------------------------------------------------------- sources that never ran


def test_a_source_that_never_ran_counts_two_periods_from_when_it_was_first_watched() -> None:
    watched = {"a": T0}
    just_before = T0 + 2 * QUARTER.period + GRACE - timedelta(seconds=1)
    assert overdue({"a": QUARTER}, {"a": None}, just_before, watched) == []
    (found,) = overdue({"a": QUARTER}, {"a": None}, T0 + 2 * QUARTER.period + GRACE, watched)
    assert found.last_run == T0 and found.scheduled_time == T0 + 2 * QUARTER.period
    assert "no check recorded ever" in found.reason and "began watching" in found.reason


@given(
    minutes=st.sampled_from([5, 15, 60, 1440]),
    offset=st.integers(min_value=0, max_value=3600),
    silent=st.integers(min_value=0, max_value=4 * 1440 * 60),
)
def test_a_never_run_source_is_overdue_exactly_when_two_periods_passed_since_it_was_watched(
    minutes: int, offset: int, silent: int
) -> None:
    schedule = Schedule(rate=timedelta(minutes=minutes))
    since = T0 + timedelta(seconds=offset)  # the first tick that saw it: any time, not a firing
    now = since + timedelta(seconds=silent)
    found = overdue({"s": schedule}, {}, now, {"s": since})
    assert bool(found) == (timedelta(seconds=silent) >= MISSED_PERIODS * schedule.period + GRACE)
    for o in found:
        assert since < o.scheduled_time <= now - GRACE
        assert o.scheduled_time == schedule.latest_fire(now - GRACE)


def test_a_source_with_runs_ignores_when_it_was_first_watched() -> None:
    now = T0 + timedelta(hours=6)
    assert overdue({"a": QUARTER}, {"a": checked(now - QUARTER.period)}, now, {"a": T0}) == []


def test_the_store_keeps_the_first_time_a_source_was_watched(store: SqliteStore) -> None:
    assert store.watched_since(["a", "b"], T0) == {"a": T0, "b": T0}
    later = T0 + timedelta(hours=1)
    assert store.watched_since(["b", "c"], later) == {"b": T0, "c": later}, "the first time stands"
    assert store.watched_since([], later) == {}


def test_find_overdue_registers_never_run_sources_and_pages_after_two_periods(store: SqliteStore) -> None:
    config = parse_config(CONFIG)
    schedules = {"shop": config.schedule_of(config.sources[0])}  # hourly
    assert find_overdue(store, schedules, T0) == []
    assert find_overdue(store, schedules, T0 + timedelta(hours=2)) == [], "not before two periods + grace"
    (found,) = find_overdue(store, schedules, T0 + timedelta(hours=2) + GRACE)
    assert found.source == "shop" and found.last_run == T0
    engine = make_engine(config, store, ScriptedCollector([100]), sender := RecordingSender())
    engine.record_missed(found.source, found.scheduled_time, found.reason)
    (page,) = sender.sent
    assert [a.kind for a in page.alerts] == [NoticeKind.ERROR]
    engine.check("shop", T0 + timedelta(hours=3))
    assert [a.kind for a in sender.sent[-1].alerts] == [NoticeKind.RESOLVED] and len(sender.sent) == 2
