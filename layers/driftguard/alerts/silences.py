"""Silences: data with matchers and an expiry, as in Alertmanager.

A silence mutes the notices of every alert whose labels satisfy all of its matchers while
`starts_at <= now < ends_at`. It never stops the lifecycle: a silenced alert still changes
state and its transitions are recorded with the ids of the silences that muted them.

Silence ids are a stable hash of what was asked (matchers, start, end, author, comment, time of
asking), not a random uuid: the helpers stay pure and a retried `driftguard silence` creates the
same silence again instead of a twin.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from driftguard.alerts.labels import LABEL_NAMES, Labels
from driftguard.model import Matcher, Silence, stable_hash, utc


def validate_matcher(matcher: Matcher) -> Matcher:
    """Return `matcher` if its label is known and its regex compiles; else raise ValueError."""
    if matcher.label not in LABEL_NAMES:
        raise ValueError(f"unknown label {matcher.label!r} in a matcher; labels are {', '.join(LABEL_NAMES)}")
    if matcher.regex:
        try:
            re.compile(matcher.value)
        except re.error as e:
            raise ValueError(
                f"{matcher.label}=~{matcher.value!r} is not a valid regular expression ({e})"
            ) from None
    return matcher


def parse_matcher(text: str) -> Matcher:
    """'label=value', 'label!=value', 'label=~regex' or 'label!~regex' -> Matcher (validated)."""
    m = re.fullmatch(r"\s*([a-z_]+)\s*(=~|!~|!=|=)(.*)", text)
    if m is None:
        raise ValueError(
            f"{text!r} is not a matcher: write label=value, label!=value, label=~regex or label!~regex"
        )
    label, op, value = m.group(1), m.group(2), m.group(3).strip()
    return validate_matcher(Matcher(label=label, value=value, regex="~" in op, negative=op.startswith("!")))


def format_matcher(matcher: Matcher) -> str:
    op = ("!" if matcher.negative else "=") + ("~" if matcher.regex else ("=" if matcher.negative else ""))
    return f"{matcher.label}{op}{matcher.value}"


def matches(matcher: Matcher, labels: Labels) -> bool:
    """Exact or fully anchored regex; for `tag`, any tag; `negative` inverts the result."""
    values = labels.values(matcher.label)
    if matcher.regex:
        pattern = re.compile(matcher.value)
        hit = any(pattern.fullmatch(v) for v in values)
    else:
        hit = matcher.value in values
    return hit != matcher.negative


def new_silence(
    matchers: Iterable[Matcher],
    *,
    created_by: str,
    comment: str,
    now: datetime,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    duration: timedelta | None = None,
) -> Silence:
    """A validated silence from `starts_at` (default: now) until `ends_at` or for `duration`."""
    checked = [validate_matcher(m) for m in matchers]
    if not checked:
        raise ValueError("a silence needs at least one matcher; it would otherwise mute every alert")
    if (ends_at is None) == (duration is None):
        raise ValueError("give exactly one of an end time or a duration")
    now = utc(now)
    start = utc(starts_at) if starts_at is not None else now
    end = utc(ends_at) if ends_at is not None else start + (duration or timedelta(0))
    if end <= start:
        raise ValueError(f"the silence would end ({end.isoformat()}) before it starts ({start.isoformat()})")
    if end <= now:
        raise ValueError(f"the silence would end ({end.isoformat()}) in the past; nothing would be silenced")
    if not comment.strip():
        raise ValueError("a silence needs a comment saying why, for whoever finds the alert muted")
    ident = stable_hash(*(format_matcher(m) for m in checked), start, end, created_by, comment, now)
    return Silence(
        id=ident,
        matchers=checked,
        starts_at=start,
        ends_at=end,
        created_by=created_by,
        comment=comment,
        created_at=now,
    )


def extend(silence: Silence, until: datetime) -> Silence:
    """The same silence ending at `until`, which must be later than its current end."""
    until = utc(until)
    if until <= silence.ends_at:
        raise ValueError(
            f"silence {silence.id} already lasts until {silence.ends_at.isoformat()}; "
            f"{until.isoformat()} would not extend it"
        )
    return silence.model_copy(update={"ends_at": until})


def expire(silence: Silence, now: datetime) -> Silence:
    """The same silence ended at `now` (kept for the record); a future silence never starts."""
    end = max(silence.starts_at, min(silence.ends_at, utc(now)))
    return silence.model_copy(update={"ends_at": end})


def silenced_by(labels: Labels, silences: Sequence[Silence], now: datetime) -> list[str]:
    """Ids of the silences active at `now` whose matchers all hold for `labels`."""
    return [
        s.id for s in silences if s.active(now) and s.matchers and all(matches(m, labels) for m in s.matchers)
    ]
