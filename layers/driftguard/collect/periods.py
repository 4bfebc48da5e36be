"""Period arithmetic on epoch-aligned buckets: the same boundaries in Python and in SQL.

A period bucket is [k * period, (k + 1) * period) in seconds since the Unix epoch, UTC. SQL
computes floor(epoch(ts) / period) * period, so Python and every dialect agree on boundaries.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from driftguard.model import utc


def period_seconds(period: timedelta) -> int:
    seconds = period.total_seconds()
    if seconds < 1 or seconds != int(seconds):
        raise ValueError(f"a volume period must be a whole number of seconds, at least 1 (got {period})")
    return int(seconds)


def floor_time(at: datetime, period: timedelta) -> datetime:
    """The start of the period bucket containing `at`."""
    step = period_seconds(period)
    epoch = utc(at).timestamp()
    return datetime.fromtimestamp(math.floor(epoch / step) * step, tz=UTC)


def ceil_time(at: datetime, period: timedelta) -> datetime:
    """The first bucket boundary at or after `at`."""
    floored = floor_time(at, period)
    return floored if floored == utc(at) else floored + period


def latest_complete_period(scheduled_time: datetime, period: timedelta) -> tuple[datetime, datetime]:
    """[floor(scheduled_time) - period, floor(scheduled_time)): the newest period that has ended."""
    end = floor_time(scheduled_time, period)
    return end - period, end


def complete_period_starts(since: datetime, until: datetime, period: timedelta) -> list[datetime]:
    """Starts of every whole period inside [since, until), oldest first."""
    start, end = ceil_time(since, period), floor_time(until, period)
    starts: list[datetime] = []
    while start < end:
        starts.append(start)
        start += period
    return starts


def counts_since_first_row(
    counted: dict[datetime, int], since: datetime, until: datetime, period: timedelta
) -> list[tuple[datetime, int]]:
    """(start, rows) of every whole period of [since, until) from the first one with rows on, zero
    where none: a table's (or segment's) history starts with its first row, and periods before it
    are not "zero rows" (it did not exist, or was not loaded yet) to teach a baseline."""
    first = min(counted, default=None)
    if first is None:
        return []
    return [(s, counted.get(s, 0)) for s in complete_period_starts(since, until, period) if s >= first]
