"""The routing tree: defaults, first match wins, continue, regex, tags, inherited repeat interval."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from test_alerts_fixtures import ITEMS_NULLS, ORDERS_ROWS, SOURCE_KEY, make_config

from driftguard.alerts import Labels, route
from driftguard.config import Route
from driftguard.model import CheckKey, Severity

H4 = timedelta(hours=4)


def labels(key: CheckKey = ORDERS_ROWS, severity: Severity = Severity.WARNING, **source: Any) -> Labels:
    return Labels.of(key, severity, make_config(**source).sources[0])


def tree(**root: Any) -> Route:
    return Route.model_validate(root)


def names(root: Route, lab: Labels) -> list[str]:
    return [c for c, _ in route(root, lab)]


def test_the_root_is_the_default() -> None:
    root = tree(receivers=["default"], routes=[{"match": {"table": "items"}, "receivers": ["items"]}])
    assert route(root, labels()) == [("default", H4)]
    assert names(root, labels(ITEMS_NULLS)) == ["items"]


def test_first_matching_child_wins() -> None:
    root = tree(
        receivers=["default"],
        routes=[
            {"match": {"source": "orders_db"}, "receivers": ["first"]},
            {"match": {"table": "orders"}, "receivers": ["second"]},
        ],
    )
    assert names(root, labels()) == ["first"]


def test_continue_tries_the_following_siblings() -> None:
    root = tree(
        receivers=["default"],
        routes=[
            {"match": {"source": "orders_db"}, "receivers": ["first"], "continue": True},
            {"match": {"table": "nope"}, "receivers": ["skipped"]},
            {"match": {"table": "orders"}, "receivers": ["second"]},
            {"match": {"table": "orders"}, "receivers": ["never"]},
        ],
    )
    assert names(root, labels()) == ["first", "second"]


def test_a_continuing_match_alone_still_stops_the_parent_from_delivering() -> None:
    root = tree(
        receivers=["default"], routes=[{"match": {"table": "orders"}, "receivers": ["a"], "continue": True}]
    )
    assert names(root, labels()) == ["a"]
    assert names(root, labels(ITEMS_NULLS)) == ["default"]


def test_all_conditions_of_a_node_must_hold() -> None:
    root = tree(
        receivers=["default"],
        routes=[
            {"match": {"table": "orders", "severity": "critical", "check": "volume"}, "receivers": ["pager"]},
        ],
    )
    assert names(root, labels(severity=Severity.CRITICAL)) == ["pager"]
    assert names(root, labels(severity=Severity.WARNING)) == ["default"]
    assert names(root, labels(SOURCE_KEY, Severity.CRITICAL)) == ["default"]


def test_nested_routes_fall_back_to_the_nearest_matching_node() -> None:
    root = tree(
        receivers=["default"],
        routes=[
            {
                "match": {"owner": "data-team"},
                "receivers": ["team"],
                "routes": [{"match": {"severity": "critical"}, "receivers": ["team-pager"]}],
            }
        ],
    )
    assert names(root, labels()) == ["team"]
    assert names(root, labels(severity=Severity.CRITICAL)) == ["team-pager"]
    assert names(root, labels(owner="someone-else")) == ["default"]
    assert names(root, labels(owner=None)) == ["default"]


def test_tags_match_when_the_source_has_any_of_them() -> None:
    root = tree(
        receivers=["default"], routes=[{"match": {"tags": ["gold", "tier1"]}, "receivers": ["tier1"]}]
    )
    assert names(root, labels(tags=["sales", "tier1"])) == ["tier1"]
    assert names(root, labels(tags=["sales"])) == ["default"]
    assert names(root, labels(tags=[])) == ["default"]


@pytest.mark.parametrize(
    ("match_re", "hit"),
    [
        ({"table": "ord.*"}, True),
        ({"table": "ord"}, False),  # anchored: no partial match
        ({"table": ".*ders"}, True),
        ({"source": "orders_db|billing"}, True),
        ({"owner": "data-.*", "table": "items"}, False),
        ({"tag": "tier[0-9]"}, True),
        ({"tag": "tier"}, False),
    ],
)
def test_regex_conditions_are_fully_anchored(match_re: dict[str, str], hit: bool) -> None:
    root = tree(receivers=["default"], routes=[{"match_re": match_re, "receivers": ["re"]}])
    assert names(root, labels()) == (["re"] if hit else ["default"])


def test_repeat_interval_is_inherited_from_the_nearest_node_that_sets_one() -> None:
    root = tree(
        receivers=["default"],
        repeat_interval="2h",
        routes=[
            {
                "match": {"table": "orders"},
                "receivers": ["a"],
                "continue": True,
                "routes": [{"match": {"severity": "warning"}, "receivers": ["b"], "repeat_interval": "10m"}],
            },
            {"match": {"source": "orders_db"}, "receivers": ["c"]},
        ],
    )
    assert route(root, labels()) == [("b", timedelta(minutes=10)), ("c", timedelta(hours=2))]
    assert route(tree(receivers=["x"]), labels(), default_repeat_interval=timedelta(hours=1)) == [
        ("x", timedelta(hours=1))
    ]


def test_a_channel_reached_twice_is_listed_once_with_its_first_interval() -> None:
    root = tree(
        receivers=["default"],
        routes=[
            {"match": {"table": "orders"}, "receivers": ["chat"], "continue": True, "repeat_interval": "1h"},
            {"match": {"source": "orders_db"}, "receivers": ["chat", "mail"]},
        ],
    )
    assert route(root, labels()) == [("chat", timedelta(hours=1)), ("mail", H4)]


def test_a_root_with_conditions_that_do_not_hold_routes_nowhere() -> None:
    assert route(tree(receivers=["x"], match={"table": "items"}), labels()) == []
