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


@dataclass(frozen=True)
class Overdue:
    source: str
    last_run: datetime
    scheduled_time: datetime
    """The latest scheduled time that should have a run by now: the missed run to record."""
    reason: str


def overdue(
    schedules: Mapping[str, Schedule], last_runs: Mapping[str, LastRun | None], now: datetime
) -> list[Overdue]:
    """The sources that should have a run by `now` and have none, by name: no run for MISSED_PERIODS
    periods after a checked run, or for one more period after a missed run (each plus GRACE). A
    source that never ran is left out: it has no time to count from (docs/scaling.md)."""
    now = utc(now)
    found: list[Overdue] = []
    for name in sorted(schedules):
        last = last_runs.get(name)
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
    since = "the last missed run" if last.missed else "the last check"
    return (
        f"no check recorded: {format_duration(silent)} since {since} "
        f"({utc(last.scheduled_time).isoformat()}), every {format_duration(schedule.period)} expected. "
        "Look for a firing that timed out or was throttled (state machine logs), a missing schedule, "
        "or the schedule dead-letter queue"
    )


def latest_runs(store: Store, sources: Iterable[str]) -> dict[str, LastRun | None]:
    """Each source's latest recorded run (one newest-first read of its runs each)."""
    latest: dict[str, LastRun | None] = {}
    for name in sources:
        runs = store.runs(name, limit=1)
        latest[name] = (
            LastRun(runs[0].scheduled_time, runs[0].error_kind == ErrorKind.MISSED.value) if runs else None
        )
    return latest
