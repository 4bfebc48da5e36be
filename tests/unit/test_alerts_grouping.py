"""Grouping across sources and runs (driftguard.alerts.grouping, its routing and its config): which
group a notice joins, when a group is due, the merged message, and that no grouping config changes
nothing."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from test_alerts_fixtures import (
    ITEMS_NULLS,
    ORDERS_LAG,
    ORDERS_ROWS,
    T0,
    Runner,
    finding,
    make_config,
)

from driftguard.alerts import Labels, decide, group_due, merge, sealable
from driftguard.alerts.grouping import Grouping, due_at, group_labels, group_of
from driftguard.alerts.routing import RoutedChannel, routes_of
from driftguard.config import LABEL_NAMES, Config, Route, load_config
from driftguard.errors import ConfigError
from driftguard.model import (
    CheckKey,
    CheckKind,
    FindingStatus,
    GroupedNotice,
    NoticeKind,
    Notification,
    Severity,
    stable_hash,
)

F = FindingStatus
SECOND, S30, M1, M5 = timedelta(seconds=1), timedelta(seconds=30), timedelta(minutes=1), timedelta(minutes=5)
H4 = timedelta(hours=4)
TWO_CHANNELS = ({"name": "slack", "type": "console"}, {"name": "mail", "type": "console"})


def labels(key: CheckKey = ORDERS_ROWS, **source: Any) -> Labels:
    return Labels.of(key, Severity.WARNING, make_config(**source).sources[0])


def tree(**root: Any) -> Route:
    return Route.model_validate(root)


def grouping(group_by: tuple[str, ...] | None = ("table",), wait: timedelta = S30) -> Grouping:
    return Grouping(route="route", group_by=group_by, wait=wait, interval=M5)


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("route", "message"),
    [
        ({"group_by": ["tabel"]}, "'tabel' is not a label to group by; labels are source, table"),
        ({"group_by": ["...", "table"]}, "'...' already groups by every label"),
        ({"group_by": ["table", "table"]}, "label(s) table named more than once"),
        ({"group_wait": "soon"}, "'soon' is not a duration"),
        ({"group_wait": -5}, "a duration must be positive"),
        ({"group_interval": "0s"}, "a duration must be positive"),
        ({"group_interval": 0}, "a duration must be positive"),
        ({"routes": [{"group_by": ["owner", "nope"]}]}, "'nope' is not a label"),
    ],
)
def test_grouping_config_is_refused_with_a_clear_reason(route: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as raised:
        make_config(route={"receivers": ["console"], **route})
    assert message in str(raised.value)


def test_a_grouping_mistake_in_a_file_names_its_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "driftguard.yaml"
    path.write_text(
        "channels:\n  - {name: c, type: console}\nroute:\n  receivers: [c]\n  routes:\n"
        "    - receivers: [c]\n      group_by: [tabel]\n      group_wait: soon\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    message = str(raised.value)
    assert f"{path}:7: route.routes[0].group_by: 'tabel' is not a label to group by" in message
    assert f"{path}:8: route.routes[0].group_wait: 'soon' is not a duration" in message


@pytest.mark.parametrize(("written", "seconds"), [("0s", 0), (0, 0), ("0", None), ("45s", 45), ("2m", 120)])
def test_group_wait_may_be_zero(written: Any, seconds: int | None) -> None:
    if seconds is None:  # a bare "0" string is not a duration, as everywhere else
        with pytest.raises(ValidationError):
            tree(group_wait=written)
        return
    assert tree(group_wait=written).group_wait == timedelta(seconds=seconds)


@pytest.mark.parametrize("wait", ["1m", "0s"])
def test_every_label_name_can_be_grouped_by_and_the_compiled_config_reads_back(wait: str) -> None:
    config = make_config(route={"receivers": ["console"], "group_by": list(LABEL_NAMES), "group_wait": wait})
    compiled = config.model_dump(mode="json", by_alias=True)  # what the Lambda loads ('PT0S' for 0s)
    again = Config.model_validate(compiled)
    assert again.route.group_by == list(LABEL_NAMES) and again.route.group_wait == config.route.group_wait


def test_the_json_schema_takes_what_the_loader_takes_for_group_wait() -> None:
    import jsonschema

    from driftguard.config import json_schema

    schema = json_schema()
    for wait in ("0s", 0, "PT0S", "30s", 45):
        doc = {"route": {"receivers": ["console"], "group_wait": wait}}
        jsonschema.validate(doc, schema)
        assert Config.model_validate(doc).route.group_wait is not None
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"route": {"receivers": ["console"], "group_wait": -1}}, schema)


# --------------------------------------------------------------------------- routing


def test_a_tree_without_grouping_routes_every_channel_ungrouped() -> None:
    root = tree(
        receivers=["a"], routes=[{"match": {"table": "orders"}, "receivers": ["b"], "continue": True}]
    )
    assert routes_of(root, labels()) == [RoutedChannel("b", H4, None)]
    assert routes_of(root, labels(ITEMS_NULLS)) == [RoutedChannel("a", H4, None)]


def test_grouping_is_inherited_and_each_setting_defaults_on_its_own() -> None:
    root = tree(
        receivers=["a"],
        group_wait="10s",
        routes=[
            {"match": {"table": "orders"}, "receivers": ["b"], "group_by": ["table", "check"]},
            {"match": {"table": "items"}, "receivers": ["c"], "group_interval": "1h", "group_by": []},
        ],
    )
    ten = timedelta(seconds=10)
    assert routes_of(root, labels()) == [
        RoutedChannel("b", H4, Grouping("route.routes[0]", ("table", "check"), ten, M5))
    ]
    assert routes_of(root, labels(ITEMS_NULLS)) == [
        RoutedChannel("c", H4, Grouping("route.routes[1]", (), ten, timedelta(hours=1)))
    ]
    assert routes_of(root, labels(ORDERS_LAG.model_copy(update={"table": "other"}))) == [
        RoutedChannel("a", H4, Grouping("route", ("source",), ten, M5))
    ]


def test_all_labels_and_the_alertmanager_defaults() -> None:
    root = tree(receivers=["a"], group_by=["..."])
    assert routes_of(root, labels()) == [RoutedChannel("a", H4, Grouping("route", None, S30, M5))]


def test_a_channel_reached_twice_groups_as_the_first_node_that_delivers_it() -> None:
    root = tree(
        receivers=["x"],
        routes=[
            {"match": {"table": "orders"}, "receivers": ["a"], "group_by": ["table"], "continue": True},
            {"match": {"source": "orders_db"}, "receivers": ["a", "b"]},
        ],
    )
    routed = routes_of(root, labels())
    assert [(r.channel, r.grouping and r.grouping.route) for r in routed] == [
        ("a", "route.routes[0]"),
        ("b", None),
    ]


# --------------------------------------------------------------------------- which group


def test_group_labels_take_the_values_in_order_and_join_the_tags() -> None:
    lab = labels(tags=("b", "a"))
    assert group_labels(lab, ("tag", "table")) == {"tag": "b,a", "table": "orders"}
    assert group_labels(lab, ()) == {}
    assert list(group_labels(lab, None)) == list(LABEL_NAMES)


def test_alerts_with_the_same_group_labels_share_a_group_and_others_do_not() -> None:
    by_table = grouping(("table",))
    rows, lag, nulls = (
        group_of(by_table, "slack", labels(k)) for k in (ORDERS_ROWS, ORDERS_LAG, ITEMS_NULLS)
    )
    assert rows == lag and rows.key != nulls.key
    assert rows.labels == {"table": "orders"} and (rows.wait, rows.interval) == (S30, M5)
    other_source = ORDERS_ROWS.model_copy(update={"source": "billing_db"})
    assert group_of(by_table, "slack", labels(other_source)).key == rows.key  # across sources


def test_the_group_key_tells_routes_channels_and_values_apart() -> None:
    base = group_of(grouping(), "slack", labels())
    assert group_of(grouping(), "mail", labels()).key != base.key
    assert group_of(Grouping("route.routes[0]", ("table",), S30, M5), "slack", labels()).key != base.key
    assert group_of(grouping(("source",)), "slack", labels()).key != base.key
    assert group_of(grouping(wait=M1), "slack", labels()).key == base.key  # timing is not identity


# --------------------------------------------------------------------------- when a group is due

times = st.integers(min_value=0, max_value=10**7).map(lambda s: T0 + timedelta(seconds=s))
spans = st.integers(min_value=0, max_value=10**5).map(lambda s: timedelta(seconds=s))
positive_spans = st.integers(min_value=1, max_value=10**5).map(lambda s: timedelta(seconds=s))


def test_a_new_group_waits_group_wait_after_its_oldest_notice() -> None:
    assert due_at(T0, None, S30, M5) == T0 + S30


def test_a_notified_group_waits_group_interval_after_its_last_message() -> None:
    assert due_at(T0 + M1, T0, S30, M5) == T0 + M5
    assert due_at(T0 - M1, T0, S30, M5) == T0 + M5  # a notice older than the last message


def test_a_group_quiet_for_a_whole_interval_starts_over_with_group_wait() -> None:
    assert due_at(T0 + M5, T0, S30, M5) == T0 + M5 + S30
    assert due_at(T0 + timedelta(hours=3), T0, S30, M5) == T0 + timedelta(hours=3) + S30


@given(oldest=times, last=st.none() | times, wait=spans, interval=positive_spans)
def test_no_message_before_its_oldest_notice_nor_within_an_interval_of_the_last(
    oldest: datetime, last: datetime | None, wait: timedelta, interval: timedelta
) -> None:
    due = due_at(oldest, last, wait, interval)
    assert due >= oldest
    if last is not None:
        assert due >= last + interval
    # and never later than needed: the wait of a new group, or the interval of a notified one
    assert due <= max(oldest + wait, (last or oldest) + interval)


@given(oldest=times, later=spans, last=st.none() | times, wait=spans, interval=positive_spans)
def test_a_group_is_never_due_later_for_an_older_notice(
    oldest: datetime, later: timedelta, last: datetime | None, wait: timedelta, interval: timedelta
) -> None:
    """Monotonic: a notice that joined earlier never pushes the message further out, except where
    the earlier notice belongs to the previous interval and the later one starts a new group."""
    first, second = due_at(oldest, last, wait, interval), due_at(oldest + later, last, wait, interval)
    fresh = last is None or oldest >= last + interval
    if fresh:
        assert first <= second


@given(oldest=times, wait=spans, interval=positive_spans, gap=spans)
def test_after_a_message_the_next_is_at_least_an_interval_later(
    oldest: datetime, wait: timedelta, interval: timedelta, gap: timedelta
) -> None:
    window = due_at(oldest, None, wait, interval)
    assert due_at(window + gap, window, wait, interval) >= window + interval


@given(
    arrivals=st.lists(st.integers(min_value=0, max_value=4 * 3600), min_size=1, max_size=25),
    wait_s=st.integers(min_value=0, max_value=600),
    interval_s=st.integers(min_value=1, max_value=3600),
)
def test_a_simulated_group_tells_every_notice_once_in_time_and_never_too_often(
    arrivals: list[int], wait_s: int, interval_s: int
) -> None:
    """Notices join one group at the given seconds; a flusher sends whenever the group is due."""
    wait, interval = timedelta(seconds=wait_s), timedelta(seconds=interval_s)
    coming = sorted(T0 + timedelta(seconds=a) for a in arrivals)
    waiting: list[datetime] = []
    last: datetime | None = None
    messages: list[tuple[datetime, list[datetime]]] = []
    while coming or waiting:
        due = due_at(min(waiting), last, wait, interval) if waiting else None
        if coming and (due is None or coming[0] < due):
            waiting.append(coming.pop(0))
        else:
            assert due is not None
            messages.append((due, waiting))
            last, waiting = due, []

    told = sorted(t for _, notices in messages for t in notices)
    assert told == sorted(T0 + timedelta(seconds=a) for a in arrivals)  # each notice once
    assert all(t <= window for window, notices in messages for t in notices)  # never before it came
    assert all(b - a >= interval for (a, _), (b, _) in itertools.pairwise(messages))
    assert messages[0][0] == min(told) + wait  # a new group waits group_wait for more
    longest = max(wait, interval)
    assert all(window - t <= longest for window, notices in messages for t in notices)


def test_without_wait_or_notified_history_a_notice_is_due_at_once() -> None:
    assert due_at(T0, None, timedelta(0), M5) == T0


def test_group_due_reads_the_oldest_notice_and_the_newest_timing() -> None:
    old = part(T0, wait=S30)
    new = part(T0 + timedelta(seconds=10), wait=M1)
    assert group_due([new, old], None) == T0 + M1
    assert group_due([old], T0 - M1) == T0 + 4 * M1
    with pytest.raises(ValueError, match="never due"):
        group_due([], None)


# --------------------------------------------------------------------------- the merged message


def part(
    at: datetime,
    *,
    source: str = "orders_db",
    keys: tuple[CheckKey, ...] = (ORDERS_ROWS,),
    kind: F = F.ANOMALY,
    wait: timedelta = S30,
    channel: str = "slack",
    group_by: tuple[str, ...] = ("table",),
) -> GroupedNotice:
    """One run's notices of one source, through decide() on a route that groups."""
    config = make_config(
        channels=({"name": channel, "type": "console"},),
        route={
            "receivers": [channel],
            "group_by": list(group_by),
            "group_wait": f"{int(wait.total_seconds())}s",
        },
    )
    src = config.sources[0].model_copy(update={"name": source})
    findings = [finding(kind, key=k.model_copy(update={"source": source}), at=at) for k in keys]
    decision = decide(config=config, source=src, findings=findings, states={}, silences=[], now=at)
    (one,) = decision.grouped
    return one


def test_one_message_holds_every_waiting_notice_of_the_group_across_sources() -> None:
    a, b = part(T0, source="orders_db"), part(T0 + timedelta(seconds=5), source="billing_db")
    window = T0 + S30

    merged = merge([b, a], window)

    assert [n.key.source for n in merged.alerts] == ["billing_db", "orders_db"]
    assert (merged.source, merged.channel, merged.run_time, merged.created_at) == (
        "billing_db, orders_db",
        "slack",
        window,
        window,
    )
    assert merged.group == a.group and merged.title == "[WARNING] billing_db, orders_db: 2 alert(s) firing"
    tail = "--table orders --check volume --duration 2h --comment '<why>'"
    assert merged.silence_hint.splitlines() == [
        f"driftguard silence --source billing_db {tail}",
        f"driftguard silence --source orders_db {tail}",
    ]
    assert (merged.owner, merged.tags) == ("data-team", ["sales", "tier1"])


def test_the_message_id_depends_on_the_group_and_window_only() -> None:
    a, b = part(T0), part(T0 + timedelta(seconds=5), source="billing_db")
    window = T0 + S30
    assert (
        merge([a, b], window).id
        == merge([b], window).id
        == stable_hash("grouped", a.group.key, window.isoformat())
    )
    assert merge([a, b], window + M5).id != merge([a, b], window).id


def test_the_latest_notice_of_an_alert_wins_within_a_window() -> None:
    fired = part(T0)
    resolved = fired.model_copy(
        update={
            "notification": fired.notification.model_copy(
                update={
                    "id": "later",
                    "created_at": T0 + timedelta(seconds=20),
                    "alerts": [
                        a.model_copy(update={"kind": NoticeKind.RESOLVED}) for a in fired.notification.alerts
                    ],
                }
            )
        }
    )
    merged = merge([resolved, fired], T0 + S30)
    assert [a.kind for a in merged.alerts] == [NoticeKind.RESOLVED]
    assert merged.title.startswith("[RESOLVED]") and merged.silence_hint == ""


def test_one_message_takes_the_oldest_notices_within_the_stores_limits() -> None:
    parts = [part(T0 + i * SECOND, keys=(ORDERS_ROWS, ORDERS_LAG)) for i in (3, 1, 2, 0)]
    oldest_first = sorted(parts, key=lambda p: p.created_at)
    assert sealable(parts, max_parts=10) == oldest_first
    assert sealable(parts, max_parts=3) == oldest_first[:3]
    assert sealable(parts, max_parts=10, max_notices=5) == oldest_first[:2]  # 2 notices each
    assert sealable(parts, max_parts=10, max_notices=1) == oldest_first[:1]  # never none


def test_notices_of_different_groups_or_none_are_not_merged() -> None:
    with pytest.raises(ValueError, match="different groups"):
        merge([part(T0), part(T0, group_by=("check",))], T0 + S30)
    with pytest.raises(ValueError, match="at least one"):
        merge([], T0)


# --------------------------------------------------------------------------- decide


def test_without_grouping_config_decide_sends_at_once_exactly_as_before() -> None:
    r = Runner(make_config(channels=TWO_CHANNELS))
    d = r.run([finding(F.ANOMALY, key=ORDERS_ROWS), finding(F.ANOMALY, key=ITEMS_NULLS)], T0)
    assert d.grouped == []
    assert [(n.channel, len(n.alerts), n.group) for n in d.notifications] == [
        ("mail", 2, None),
        ("slack", 2, None),
    ]
    # the id is the one a run always had: source, run, channel and the transitions it tells
    markers = sorted(t.id for t in d.transitions)
    assert d.notifications[0].id == stable_hash("orders_db", T0.isoformat(), "mail", *markers)


def test_a_route_that_groups_holds_its_notices_by_group_and_others_go_at_once() -> None:
    config = make_config(
        channels=TWO_CHANNELS,
        route={
            "receivers": ["mail"],
            "routes": [
                {
                    "match": {"table": "orders"},
                    "receivers": ["slack"],
                    "group_by": ["table"],
                    "continue": True,
                }
            ],
        },
    )
    d = Runner(config).run(
        [
            finding(F.ANOMALY, key=ORDERS_ROWS),
            finding(F.ANOMALY, key=ORDERS_LAG),
            finding(F.ANOMALY, key=ITEMS_NULLS),
        ],
        T0,
    )
    assert [(n.channel, [a.key for a in n.alerts]) for n in d.notifications] == [("mail", [ITEMS_NULLS])]
    (waiting,) = d.grouped
    assert waiting.group.labels == {"table": "orders"} and waiting.not_before == T0 + S30
    assert {a.key for a in waiting.notification.alerts} == {ORDERS_ROWS, ORDERS_LAG}
    assert waiting.notification.channel == "slack"


def test_resolved_notices_join_the_same_groups() -> None:
    r = Runner(make_config(route={"receivers": ["console"], "group_by": ["table"]}))
    fired = r.run([finding(F.ANOMALY, key=ORDERS_ROWS)], T0)
    resolved = r.run([finding(F.OK, key=ORDERS_ROWS, at=T0 + H4)], T0 + H4)
    assert resolved.notifications == []
    assert [a.kind for a in resolved.grouped[0].notification.alerts] == [NoticeKind.RESOLVED]
    assert resolved.grouped[0].group == fired.grouped[0].group


def test_a_resolved_notice_after_the_severity_fell_joins_the_group_the_channel_heard_in() -> None:
    config = make_config(
        channels=({"name": "chat", "type": "console"}, {"name": "pager", "type": "console"}),
        route={
            "receivers": ["chat"],
            "group_by": ["table"],
            "routes": [{"match": {"severity": "critical"}, "receivers": ["pager"], "continue": True}],
        },
    )
    r = Runner(config)
    fired = r.run([finding(F.ANOMALY, key=ORDERS_ROWS, severity=Severity.CRITICAL)], T0)
    r.run([finding(F.ANOMALY, key=ORDERS_ROWS, severity=Severity.WARNING, at=T0 + M5)], T0 + M5)
    resolved = r.run([finding(F.OK, key=ORDERS_ROWS, at=T0 + 2 * M5)], T0 + 2 * M5)
    paged = next(g.group for g in fired.grouped if g.group.channel == "pager")
    assert resolved.notifications == []  # pager no longer routed for a warning: still grouped
    assert {g.group.channel: g.group for g in resolved.grouped}["pager"] == paged


def test_a_grouped_notice_still_counts_as_told_for_repeats_and_resolves() -> None:
    r = Runner(make_config(route={"receivers": ["console"], "group_wait": "1m"}))
    r.run([finding(F.ANOMALY, key=ORDERS_ROWS)], T0)
    assert r.state().notified_at == {"console": T0}
    quiet = r.run([finding(F.ANOMALY, key=ORDERS_ROWS, at=T0 + M5)], T0 + M5)
    assert quiet.grouped == [] and quiet.notifications == []


def test_group_by_check_splits_one_sources_run_into_several_messages() -> None:
    config = make_config(route={"receivers": ["console"], "group_by": ["check"]})
    d = Runner(config).run([finding(F.ANOMALY, key=ORDERS_ROWS), finding(F.ANOMALY, key=ITEMS_NULLS)], T0)
    assert sorted(g.group.labels["check"] for g in d.grouped) == [
        CheckKind.COLUMN.value,
        CheckKind.VOLUME.value,
    ]
    assert len({g.id for g in d.grouped}) == 2


def test_merged_message_is_a_plain_notification_for_the_channels() -> None:
    from driftguard.notify.render import json_payload

    one = part(T0)
    merged = merge([one], T0 + S30)
    assert Notification.model_validate_json(merged.model_dump_json()) == merged
    assert json_payload(merged)["group"]["labels"] == {"table": "orders"}
    assert "group" not in json_payload(one.notification)  # without grouping, the payload as it was
