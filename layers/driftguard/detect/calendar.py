"""Public holidays and special days: the dates on which a series is not expected to look ordinary.

A holiday reshapes the whole day (a Monday holiday looks like a Sunday), so the seasonal strategy keeps
such days out of the training of ordinary days and judges them against their own kind of day. The
dates come from the `holidays` library (loaded only when a calendar is configured) and from dates the
operator lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cache
from zoneinfo import ZoneInfo

from driftguard.config import DetectionSettings

SPECIAL_DAY = "special day"


def _split(name: str) -> tuple[str, str | None]:
    country, _, subdivision = name.partition("-")
    return country.upper(), subdivision.upper() or None


def check_calendar(name: str) -> None:
    """Raise ValueError (with what to write instead) unless `holidays` knows the country/subdivision."""
    import holidays

    country, subdivision = _split(name)
    supported = holidays.list_supported_countries()
    if country not in supported:
        raise ValueError(
            f"unknown holiday calendar {name!r}: use an ISO 3166 country code known to the holidays "
            f"library, such as 'US', 'GB' or 'DE' (optionally '-' and a subdivision: 'DE-BY')"
        )
    if subdivision is not None and subdivision not in supported[country]:
        known = ", ".join(supported[country][:12]) or "none"
        raise ValueError(f"unknown subdivision {subdivision!r} of {country} (known: {known} ...)")


@cache
def _public_holidays(name: str, year: int) -> dict[date, str]:
    import holidays

    country, subdivision = _split(name)
    return dict(holidays.country_holidays(country, subdiv=subdivision, years=year).items())


@dataclass(frozen=True)
class Calendar:
    """Which dates, in `timezone`, are holidays or special days, and their names."""

    name: str | None
    special_days: frozenset[date]
    timezone: ZoneInfo
    _days: dict[int, str | None] = field(default_factory=dict, compare=False, repr=False)

    def holiday(self, t: float) -> str | None:
        """The holiday's name when epoch second `t` falls on one, else None (cached per UTC day)."""
        key = int(t // 86400)
        if key in self._days:
            return self._days[key]
        day = datetime.fromtimestamp(t, UTC).astimezone(self.timezone).date()
        name = _public_holidays(self.name, day.year).get(day) if self.name else None
        if name is None and day in self.special_days:
            name = SPECIAL_DAY
        # a UTC day may straddle two local days: cache only when both ends agree
        end = datetime.fromtimestamp(key * 86400 + 86399, UTC).astimezone(self.timezone).date()
        start = datetime.fromtimestamp(key * 86400, UTC).astimezone(self.timezone).date()
        if start == end:
            self._days[key] = name
        return name

    def holidays_of(self, secs: Sequence[float]) -> list[str | None]:
        return [self.holiday(t) for t in secs]

    @property
    def rule(self) -> str:
        """The calendar as an explanation names it: 'US holidays', 'US holidays + 2 special days'."""
        parts = [f"{self.name} holidays"] if self.name else []
        if self.special_days:
            parts.append(f"{len(self.special_days)} special days")
        return " + ".join(parts)


@cache
def _calendar(name: str | None, special_days: tuple[date, ...], timezone: str) -> Calendar:
    return Calendar(name, frozenset(special_days), ZoneInfo(timezone))


def calendar_of(settings: DetectionSettings) -> Calendar | None:
    """The calendar the settings configure, None when they configure none."""
    if settings.calendar is None and not settings.special_days:
        return None
    return _calendar(settings.calendar, tuple(settings.special_days), settings.calendar_timezone)
