"""How numbers, durations, percentages, ranges and times read, in the CLI, every notification
and the report alike: one module, so one alert never shows `6h 21m` in one place and `6.4h` in
another. Pure functions, no I/O."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from driftguard.model import utc

# Expectations are estimates: more digits than this only suggest a precision they do not have.
ESTIMATE_DIGITS = 4
VALUE_DIGITS = 6


def format_number(value: float, *, digits: int = VALUE_DIGITS) -> str:
    """Integers whole with thousands separators; other numbers to `digits` significant digits."""
    if not math.isfinite(value):
        return str(value)
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.{digits}g}"


def format_duration(delta: timedelta | float) -> str:
    """'2d 3h', '6h 21m', '4m 10s', '12s': the two largest units, whole."""
    seconds = max(int(delta.total_seconds() if isinstance(delta, timedelta) else delta), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    for big, big_unit, small, small_unit in (
        (days, "d", hours, "h"),
        (hours, "h", minutes, "m"),
        (minutes, "m", secs, "s"),
    ):
        if big:
            return f"{big}{big_unit} {small}{small_unit}" if small else f"{big}{big_unit}"
    return f"{secs}s"


def format_percent(rate: float, *, digits: int = 3) -> str:
    """A share in [0, 1] as a percentage to `digits` significant digits: 0.00123 -> '0.123%'."""
    if not math.isfinite(rate):
        return str(rate)
    return f"{format_number(rate * 100, digits=digits)}%"


def format_value(
    value: float | str | None, *, seconds: bool = False, rate: bool = False, digits: int = VALUE_DIGITS
) -> str:
    """A measured value as people read it: a duration for lags (`seconds`), a percentage for
    rates (`rate`, values in [0, 1]), else a number; text as it is; 'n/a' for nothing."""
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    number = float(value)
    if seconds and math.isfinite(number):
        return format_duration(timedelta(seconds=number))
    if rate and 0 <= number <= 1:
        return format_percent(number, digits=min(digits, 3))
    return format_number(number, digits=digits)


def format_estimate(value: float | str, *, seconds: bool = False, rate: bool = False) -> str:
    return format_value(value, seconds=seconds, rate=rate, digits=ESTIMATE_DIGITS)


def format_range(
    lower: float | None, upper: float | None, *, seconds: bool = False, rate: bool = False
) -> str:
    """'28.27 to 154.7', 'at least 5', 'at most 1h', or '' when unbounded."""
    lo = format_estimate(lower, seconds=seconds, rate=rate) if lower is not None else None
    hi = format_estimate(upper, seconds=seconds, rate=rate) if upper is not None else None
    if lo is not None and hi is not None:
        return f"{lo} to {hi}"
    if lo is not None:
        return f"at least {lo}"
    if hi is not None:
        return f"at most {hi}"
    return ""


def format_expected(
    expected: float | str | None,
    lower: float | None,
    upper: float | None,
    *,
    seconds: bool = False,
    rate: bool = False,
) -> str:
    """'66.5 (normal range 28.27 to 154.7)', or whichever part is known; '' for neither."""
    centre = format_estimate(expected, seconds=seconds, rate=rate) if expected is not None else ""
    normal = format_range(lower, upper, seconds=seconds, rate=rate)
    if centre and normal:
        return f"{centre} (normal range {normal})"
    return centre or normal


def format_time(at: datetime) -> str:
    return f"{utc(at):%Y-%m-%d %H:%M} UTC"


def format_count(n: int, noun: str, plural: str | None = None) -> str:
    """'1 value', '3 values': never '1 values'."""
    return f"{n:,} {noun if n == 1 else (plural or noun + 's')}"


def format_schema_change(change: dict[str, object]) -> str:
    """One schema change as words: 'removed lifetime_value', 'type of amount: INTEGER → TEXT'."""
    kind = str(change.get("change", "changed")).replace("_", " ")
    column = change.get("column", "?")
    before, after = change.get("before"), change.get("after")
    if kind == "added":
        return f"added {column}" + (f" ({after})" if after else "")
    if kind == "removed":
        return f"removed {column}"
    what = kind.removesuffix(" changed")
    if before is not None or after is not None:
        return f"{what} of {column}: {before or 'none'} → {after or 'none'}"
    return f"{kind}: {column}"


def format_schema_changes(details: dict[str, object]) -> str:
    """What changed in a schema finding's details, or '' when nothing did."""
    changes = details.get("changes")
    if not isinstance(changes, list):
        return ""
    return "; ".join(format_schema_change(c) for c in changes if isinstance(c, dict))
