"""Silence matchers and the pure silence helpers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from test_alerts_fixtures import ITEMS_NULLS, ORDERS_ROWS, T0, make_config

from driftguard.alerts import Labels, expire, extend, new_silence, parse_matcher, silenced_by
from driftguard.alerts.silences import format_matcher, matches
from driftguard.model import Matcher, Severity, Silence

H = timedelta(hours=1)
ORDERS = Labels.of(ORDERS_ROWS, Severity.WARNING, make_config().sources[0])
ITEMS = Labels.of(ITEMS_NULLS, Severity.CRITICAL, make_config(tags=[], owner=None).sources[0])


def m(label: str, value: str, *, regex: bool = False, negative: bool = False) -> Matcher:
    return Matcher(label=label, value=value, regex=regex, negative=negative)


@pytest.mark.parametrize(
    ("matcher", "orders", "items"),
    [
        (m("source", "orders_db"), True, True),
        (m("table", "orders"), True, False),
        (m("table", "order"), False, False),
        (m("table", "ord.*", regex=True), True, False),
        (m("table", "rders", regex=True), False, False),  # fully anchored
        (m("table", "orders", negative=True), False, True),
        (m("check", "column"), False, True),
        (m("metric", "null_rate"), False, True),
        (m("column", "sku"), False, True),
        (m("column", ""), True, False),  # absent labels are empty
        (m("severity", "critical"), False, True),
        (m("severity", "warn.*", regex=True, negative=True), False, True),
        (m("owner", "data-team"), True, False),
        (m("tag", "sales"), True, False),
        (m("tag", "tier.", regex=True), True, False),
        (m("tag", "tier", regex=True), False, False),
        (m("tag", "sales", negative=True), False, True),  # no tag matches
    ],
)
def test_matchers(matcher: Matcher, orders: bool, items: bool) -> None:
    assert (matches(matcher, ORDERS), matches(matcher, ITEMS)) == (orders, items)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("table=orders", m("table", "orders")),
        ("table!=orders", m("table", "orders", negative=True)),
        ("table=~ord.*", m("table", "ord.*", regex=True)),
        ("tag!~tier[12]", m("tag", "tier[12]", regex=True, negative=True)),
        ("comment=a=b", None),
        ("column=", m("column", "")),
    ],
)
def test_parse_and_format_matchers(text: str, expected: Matcher | None) -> None:
    if expected is None:
        with pytest.raises(ValueError, match="unknown label 'comment'"):
            parse_matcher(text)
        return
    assert parse_matcher(text) == expected
    assert format_matcher(expected) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("table", "is not a matcher"),
        ("owner=~(", "not a valid regular expression"),
        ("colour=red", "unknown label 'colour'"),
    ],
)
def test_bad_matchers_are_explained(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_matcher(text)


def _silence(*matchers: Matcher, start_offset: timedelta = timedelta(0), hours: int = 2) -> Silence:
    return new_silence(
        matchers or [m("table", "orders")],
        created_by="ana",
        comment="backfill",
        now=T0,
        starts_at=T0 + start_offset,
        duration=hours * H,
    )


def test_new_silence_is_stable_and_validated() -> None:
    s = _silence()
    assert (s.starts_at, s.ends_at, s.created_at, s.created_by, s.comment) == (
        T0,
        T0 + 2 * H,
        T0,
        "ana",
        "backfill",
    )
    assert s.id == _silence().id
    assert s.id != _silence(m("table", "items")).id
    until = new_silence([m("table", "orders")], created_by="ana", comment="c", now=T0, ends_at=T0 + H)
    assert until.ends_at == T0 + H


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"matchers": []}, "at least one matcher"),
        ({"matchers": [m("nope", "x")]}, "unknown label"),
        ({"matchers": [m("table", "(", regex=True)]}, "not a valid regular expression"),
        ({"ends_at": T0 - H, "duration": None}, "before it starts"),
        ({"starts_at": T0 - 3 * H, "duration": H}, "in the past"),
        ({"ends_at": T0 + H}, "exactly one of"),
        ({"duration": None}, "exactly one of"),
        ({"comment": "  "}, "needs a comment"),
    ],
)
def test_new_silence_refuses_nonsense(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "matchers": [m("table", "orders")],
        "created_by": "ana",
        "comment": "why",
        "now": T0,
        "duration": H,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        new_silence(**args)  # type: ignore[arg-type]


def test_silenced_by_needs_an_active_silence_whose_matchers_all_hold() -> None:
    both = _silence(m("table", "orders"), m("severity", "warning"))
    other = _silence(m("table", "orders"), m("severity", "critical"))
    later = _silence(m("source", "orders_db"), start_offset=H)
    assert silenced_by(ORDERS, [both, other, later], T0) == [both.id]
    assert silenced_by(ORDERS, [both, other, later], T0 + H) == [both.id, later.id]
    assert silenced_by(ORDERS, [both, other, later], T0 + 2 * H) == [later.id]  # the end is exclusive
    assert silenced_by(ITEMS, [both, other, later], T0 + H) == [later.id]


def test_a_silence_without_matchers_silences_nothing() -> None:
    bare = Silence(
        id="x", matchers=[], starts_at=T0, ends_at=T0 + H, created_by="a", comment="c", created_at=T0
    )
    assert silenced_by(ORDERS, [bare], T0) == []


def test_extend_and_expire() -> None:
    s = _silence()
    longer = extend(s, T0 + 5 * H)
    assert (longer.id, longer.starts_at, longer.ends_at) == (s.id, s.starts_at, T0 + 5 * H)
    with pytest.raises(ValueError, match="would not extend it"):
        extend(s, T0 + H)
    ended = expire(s, T0 + H)
    assert ended.ends_at == T0 + H and not ended.active(T0 + H)
    assert expire(s, T0 + 9 * H).ends_at == s.ends_at  # already over: unchanged
    future = _silence(start_offset=3 * H)
    never = expire(future, T0)
    assert never.ends_at == never.starts_at and not any(never.active(T0 + i * H) for i in range(6))
