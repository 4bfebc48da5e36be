"""Never silent: find the sources with no recorded run for two of their periods.

Whatever kept a source from being checked (a firing that ran out of time, throttling, a missed or
deleted schedule, a stack that stopped), its runs stop appearing in the store. The watchdog runs on
its own schedule, reads each source's latest run (`latest_runs`, the adapter) and decides here,
purely, which sources are overdue. For each, the engine records a missed run at the source's latest
scheduled time with a source-level NO_DATA finding (`Engine.record_missed`): it goes through the
alert lifecycle, so it pages once and resolves when a check is recorded again, and the run key
(source, scheduled time) makes a repeated watchdog tick a no-op. Once a source's latest run is a
missed one, every further period without a check gets its own missed run: each scheduled time has
a recorded outcome (checked, failed or missed).

A source that never ran has no run to count from: the watchdog counts from when it began watching
the source instead, which the store keeps (`Store.watched_since`, written the first time the
watchdog sees a source without runs: within one tick of the deploy that configured it). Two of its
periods after that without a run, it is overdue like any other.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from driftguard.config import Schedule, format_duration
from driftguard.errors import ErrorKind
from driftguard.model import utc
from driftguard.store.base import Store

MISSED_PERIODS = 2
"""Periods without a recorded run before the watchdog speaks: one missed firing can be a late one."""

GRACE = timedelta(minutes=5)
"""A firing records its runs within the Express limit after its scheduled time."""


@dataclass(frozen=True)
class LastRun:
    scheduled_time: datetime
    missed: bool
    """Recorded by the watchdog, not by a check."""
    never_ran: bool = False
    """No run at all: `scheduled_time` is when the watchdog began watching the source."""


@dataclass(frozen=True)
class Overdue:
    source: str
    last_run: datetime
    scheduled_time: datetime
    """The latest scheduled time that should have a run by now: the missed run to record."""
    reason: str


def overdue(
    schedules: Mapping[str, Schedule],
    last_runs: Mapping[str, LastRun | None],
    now: datetime,
    watched_since: Mapping[str, datetime] | None = None,
) -> list[Overdue]:
    """The sources that should have a run by `now` and have none, by name: no run for MISSED_PERIODS
    periods after a checked run, or for one more period after a missed run (each plus GRACE). A
    source that never ran counts MISSED_PERIODS from when the watchdog began watching it
    (`watched_since`; without it, the source is left out: there is no time to count from)."""
    now = utc(now)
    watched = watched_since or {}
    found: list[Overdue] = []
    for name in sorted(schedules):
        last = last_runs.get(name)
        if last is None and name in watched:
            last = LastRun(utc(watched[name]), missed=False, never_ran=True)
        if last is None:
            continue
        schedule = schedules[name]
        at = utc(last.scheduled_time)
        periods = 1 if last.missed else MISSED_PERIODS
        if now < at + periods * schedule.period + GRACE:
            continue
        missed = schedule.latest_fire(now - GRACE)
        if missed <= at:
            continue
        found.append(Overdue(name, at, missed, _reason(schedule, last, now)))
    return found


def _reason(schedule: Schedule, last: LastRun, now: datetime) -> str:
    silent = timedelta(minutes=int((now - utc(last.scheduled_time)).total_seconds() // 60))
    if last.never_ran:
        return (
            f"no check recorded ever: {format_duration(silent)} since the watchdog began watching this "
            f"source ({utc(last.scheduled_time).isoformat()}, the deploy that configured it), every "
            f"{format_duration(schedule.period)} expected. Look for a schedule that does not cover it "
            "(`driftguard aws schedules`), a firing that timed out or was throttled (state machine logs), "
            "or the schedule dead-letter queue"
        )
    since = "the last missed run" if last.missed else "the last check"
    return (
        f"no check recorded: {format_duration(silent)} since {since} "
        f"({utc(last.scheduled_time).isoformat()}), every {format_duration(schedule.period)} expected. "
        "Look for a firing that timed out or was throttled (state machine logs), a missing schedule, "
        "or the schedule dead-letter queue"
    )


def find_overdue(store: Store, schedules: Mapping[str, Schedule], now: datetime) -> list[Overdue]:
    """`overdue` on what the store holds: each source's latest run and, for the sources that never
    ran, when the watchdog began watching them (written now for those it sees the first time)."""
    last_runs = latest_runs(store, schedules)
    never_ran = [name for name, last in last_runs.items() if last is None]
    watched = store.watched_since(never_ran, utc(now)) if never_ran else {}
    return overdue(schedules, last_runs, now, watched)


def latest_runs(store: Store, sources: Iterable[str]) -> dict[str, LastRun | None]:
    """Each source's latest recorded run (one newest-first read of its runs each)."""
    latest: dict[str, LastRun | None] = {}
    for name in sources:
        runs = store.runs(name, limit=1)
        latest[name] = (
            LastRun(runs[0].scheduled_time, runs[0].error_kind == ErrorKind.MISSED.value) if runs else None
        )
    return latest
