"""Rendering: what every channel says, its limits (Block Kit, SNS subject) and that it never crashes."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftguard.model import (
    AlertNotice,
    AlertStateName,
    CheckKey,
    CheckKind,
    Explanation,
    Finding,
    FindingStatus,
    NoticeKind,
    Notification,
    Severity,
)
from driftguard.notify import render
from driftguard.notify.sample import sample_notification

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _notice(i: int, *, kind: NoticeKind = NoticeKind.FIRING, reason: str = "dropped") -> AlertNotice:
    key = CheckKey(source="orders-db", table=f"t{i}", check=CheckKind.VOLUME, metric="row_count")
    finding = Finding(
        key=key,
        ts=NOW,
        status=FindingStatus.ANOMALY,
        explanation=Explanation(observed=float(i), expected=100.0, lower=80.0, upper=120.0, reason=reason),
    )
    return AlertNotice(
        key=key,
        kind=kind,
        state=AlertStateName.FIRING,
        severity=Severity.WARNING,
        since=NOW - timedelta(hours=1),
        finding=finding,
        transition_id=None,
    )


def _with_alerts(alerts: list[AlertNotice]) -> Notification:
    return sample_notification("test", now=NOW).model_copy(update={"alerts": alerts})


class _WellFormed(HTMLParser):
    """Fails on any closing tag that does not match the innermost open one."""

    VOID = frozenset({"meta", "br", "hr", "img", "link", "input"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse_html(document: str) -> _WellFormed:
    parser = _WellFormed()
    parser.feed(document)
    parser.close()
    return parser


def test_estimates_are_shown_to_four_significant_digits_and_observations_in_full() -> None:
    notice = _notice(1)
    assert notice.finding is not None
    explanation = Explanation(observed=36.07712, expected=66.4977, lower=28.2656, upper=154.676, reason="r")
    finding = notice.finding.model_copy(update={"explanation": explanation})
    text = render.plain_text(_with_alerts([notice.model_copy(update={"finding": finding})]))
    assert "Observed  36.0771\n" in text
    assert "Expected  66.5 (normal range 28.27 to 154.7)" in text


def test_plain_text_says_what_where_since_observed_expected_why_and_how_to_silence() -> None:
    n = sample_notification("test", now=NOW)
    text = render.plain_text(n)
    assert text.startswith("[CRITICAL] orders-db: 1 alert(s) firing, 1 resolved\n")
    assert "FIRING · critical · orders-db.public.orders volume/row_count" in text
    assert "Since     2026-03-02 08:15 UTC (45m ago)" in text
    assert "Observed  112 (-89% against expected)" in text
    assert "Expected  1,040 (normal range 820 to 1,260)" in text
    assert "Why       This is a test from DriftGuard: 112 new rows" in text
    assert "Changed   new alert" in text
    assert "Owner data-platform" in text and "Tags tier-1, sample" in text
    assert f"To silence: {n.silence_hint}" in text
    assert "Firing for  3h 15m (2026-03-02 05:45 UTC to 2026-03-02 09:00 UTC)" in text  # the resolved alert


def test_open_alerts_count_from_the_start_of_the_incident_and_old_resolved_notices_say_when() -> None:
    pending_first = _notice(1).model_copy(update={"active_since": NOW - timedelta(hours=2)})
    resolved_without_start = _notice(2, kind=NoticeKind.RESOLVED).model_copy(update={"since": NOW})
    fields = [
        dict(v.fields) for v in render.alert_views(_with_alerts([pending_first, resolved_without_start]))[0]
    ]
    assert fields[0]["Since"] == "2026-03-02 07:00 UTC (2h ago)"
    assert fields[1]["Resolved"] == "2026-03-02 09:00 UTC" and "Firing for" not in fields[1]


def test_open_alerts_come_before_resolved_and_worst_first() -> None:
    resolved = _notice(1, kind=NoticeKind.RESOLVED)
    warning = _notice(2)
    critical = _notice(3).model_copy(update={"severity": Severity.CRITICAL})
    views, hidden = render.alert_views(_with_alerts([resolved, warning, critical]))
    assert [v.where.split()[0] for v in views] == ["orders-db.t3", "orders-db.t2", "orders-db.t1"]
    assert hidden == 0


def test_recent_values_become_a_sparkline_with_their_span() -> None:
    text = render.plain_text(sample_notification("test", now=NOW))
    assert "Recent    " in text and "(9 values, 112 to 1,080, oldest first)" in text
    assert render.sparkline([1.0, 2.0, 3.0]) == "▁▄█"
    assert render.sparkline([5.0, 5.0]) == "▄▄"
    assert render.sparkline([math.nan]) == ""


def test_format_value_and_duration() -> None:
    assert render.format_value(1234567.0) == "1,234,567"
    assert render.format_value(0.012345678) == "0.0123457"
    assert render.format_value(None) == "n/a"
    assert render.format_value(math.inf) == "inf"
    assert render.format_duration(timedelta(days=2, hours=3, minutes=5)) == "2d 3h"
    assert render.format_duration(timedelta(minutes=90)) == "1h 30m"
    assert render.format_duration(timedelta(seconds=-5)) == "0s"


def test_html_is_well_formed_phone_sized_and_escapes_content() -> None:
    hostile = _notice(1, reason="<script>alert('x')</script> & more")
    n = _with_alerts([hostile, *sample_notification("test", now=NOW).alerts])
    document = render.html(n)
    parsed = _parse_html(document)
    assert parsed.errors == []
    assert parsed.stack == []
    assert "<script>" not in document
    assert "max-width:600px" in document
    visible = "".join(parsed.text)
    assert "<script>alert('x')</script> & more" in visible  # shown as text, not markup
    assert "1,040 (normal range 820 to 1,260)" in visible
    assert n.silence_hint in visible
    assert "1,080" in visible  # a recent value in the table


def test_slack_blocks_have_header_sections_and_context() -> None:
    n = sample_notification("test", now=NOW)
    blocks = render.slack_blocks(n)
    assert [b["type"] for b in blocks] == ["header", "section", "section", "context"]
    assert blocks[0]["text"] == {"type": "plain_text", "text": n.title}
    assert "*Why:* This is a test" in blocks[1]["text"]["text"]
    context = " ".join(e["text"] for e in blocks[-1]["elements"])
    assert "data-platform" in context and "tier-1" in context and "driftguard silence --source" in context


def test_slack_blocks_stay_within_block_kit_limits_and_say_how_many_more() -> None:
    alerts = [_notice(i, reason="x" * 5000) for i in range(70)]
    n = _with_alerts(alerts).model_copy(update={"source": "s" * 400})
    blocks = render.slack_blocks(n)
    assert len(blocks) <= render.SLACK_MAX_BLOCKS
    assert len(blocks[0]["text"]["text"]) <= render.SLACK_MAX_HEADER
    texts = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    texts += [e["text"] for b in blocks if b["type"] == "context" for e in b["elements"]]
    assert max(len(t) for t in texts) <= render.SLACK_MAX_TEXT
    assert len(blocks[-1]["elements"]) <= 10
    assert texts[render.MAX_LISTED_ALERTS] == f"… and {70 - render.MAX_LISTED_ALERTS} more alert(s)"
    assert f"and {70 - render.MAX_LISTED_ALERTS} more" in render.plain_text(n)


def test_slack_text_escapes_control_characters() -> None:
    n = _with_alerts([_notice(1, reason="<!channel> a & b")])
    section = render.slack_blocks(n)[1]["text"]["text"]
    assert "&lt;!channel&gt; a &amp; b" in section


def test_subject_is_one_ascii_line_under_100_characters() -> None:
    n = sample_notification("test", now=NOW).model_copy(update={"source": "zürich\nline" + "é" * 200})
    subject = render.subject(n)
    assert subject.isascii() and "\n" not in subject
    assert len(subject) < 100 and subject.endswith("...")
    assert subject.startswith("[CRITICAL] zurich line")


def test_sns_attributes_name_worst_severity_source_and_state() -> None:
    n = sample_notification("test", now=NOW)
    assert render.sns_attributes(n) == {"severity": "critical", "source": "orders-db", "state": "FIRING"}
    only_resolved = _with_alerts([_notice(1, kind=NoticeKind.RESOLVED)])
    assert render.sns_attributes(only_resolved)["state"] == "RESOLVED"
    only_errors = _with_alerts([_notice(1, kind=NoticeKind.ERROR), _notice(2, kind=NoticeKind.RESOLVED)])
    assert render.sns_attributes(only_errors)["state"] == "ERROR"


def test_json_payload_round_trips_to_the_notification() -> None:
    n = sample_notification("test", now=NOW)
    assert Notification.model_validate(render.json_payload(n)) == n


# --------------------------------------------------------------------------- never crashes

_text = st.text(max_size=80)
_number = st.floats(allow_nan=True, allow_infinity=True)
_naive_times = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1))
_times = _naive_times | _naive_times.map(lambda t: t.replace(tzinfo=UTC))
_explanations = st.builds(
    Explanation,
    observed=st.none() | _number | _text,
    expected=st.none() | _number | _text,
    lower=st.none() | _number,
    upper=st.none() | _number,
    reason=_text,
)
_keys = st.builds(
    CheckKey,
    source=_text,
    table=_text,
    check=st.sampled_from(CheckKind),
    metric=_text,
    column=st.none() | _text,
)


@st.composite
def _notices(draw: st.DrawFn) -> AlertNotice:
    key = draw(_keys)
    finding = draw(
        st.none()
        | st.builds(
            Finding,
            key=st.just(key),
            ts=_times,
            status=st.sampled_from(FindingStatus),
            explanation=_explanations,
        )
    )
    return AlertNotice(
        key=key,
        kind=draw(st.sampled_from(NoticeKind)),
        state=draw(st.sampled_from(AlertStateName)),
        severity=draw(st.sampled_from(Severity)),
        since=draw(_times),
        finding=finding,
        transition_id=draw(st.none() | _text),
        changed=draw(_text),
        recent=draw(st.lists(st.tuples(_times, _number), max_size=15)),
        active_since=draw(st.none() | _times),
    )


_notifications = st.builds(
    Notification,
    id=_text,
    source=_text,
    channel=_text,
    run_time=_times,
    created_at=_times,
    owner=st.none() | _text,
    tags=st.lists(_text, max_size=5),
    alerts=st.lists(_notices(), max_size=25),
    silence_hint=_text,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_notifications)
def test_rendering_never_crashes_and_keeps_its_limits(n: Notification) -> None:
    text = render.plain_text(n)
    assert text.endswith("\n")
    parsed = _parse_html(render.html(n))
    assert parsed.errors == []
    blocks = render.slack_blocks(n)
    assert len(blocks) <= render.SLACK_MAX_BLOCKS
    assert all(len(b["text"]["text"]) <= render.SLACK_MAX_TEXT for b in blocks if b["type"] == "section")
    subject = render.subject(n)
    assert subject and subject.isascii() and len(subject) < 100
    assert set(render.sns_attributes(n)) == {"severity", "source", "state"}
    assert json.loads(json.dumps(render.json_payload(n), allow_nan=False))["id"] == n.id


def test_schema_alerts_say_what_changed_not_column_counts() -> None:
    key = CheckKey(source="shop", table="customers", check=CheckKind.SCHEMA, metric="schema")
    changes = [
        {
            "change": "removed",
            "column": "lifetime_value",
            "severity": "critical",
            "before": None,
            "after": None,
        },
        {"change": "added", "column": "ltv_cents", "severity": "warning", "before": None, "after": "INTEGER"},
    ]
    finding = Finding(
        key=key,
        ts=NOW,
        status=FindingStatus.ANOMALY,
        explanation=Explanation(
            observed=5, expected=5, reason="schema changed", details={"changes": changes}
        ),
    )
    notice = _notice(0).model_copy(update={"key": key, "finding": finding})
    fields = dict(render.alert_view(notice, NOW).fields)
    assert (
        fields["Schema"] == "removed lifetime_value; added ltv_cents (INTEGER) (against the accepted schema)"
    )
    assert "Observed" not in fields and "Expected" not in fields
