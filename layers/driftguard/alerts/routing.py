"""The routing tree, as in Alertmanager: which channels hear about an alert, how often.

Depth first from the root, the default route (give it no conditions, so every alert reaches
some channel). A node matches when all
of its `match` (exact; `tags`: the source has any of them) and `match_re` (fully anchored;
`tag`: any tag matches) conditions hold. Among a node's children the first that matches wins,
unless it says `continue: true`, in which case the following siblings are tried as well. A
node none of whose children match delivers to its own receivers. `repeat_interval` is
inherited from the nearest ancestor that sets one, else the global one; so are `group_by`,
`group_wait` and `group_interval` (driftguard.alerts.grouping: a notice to a channel groups as the
first node that delivers it there says), and the lifecycle options `end_silences_on_resolve` and
`inhibit_when_source_down` (default false), which hold for an alert when they hold on any node that
delivers it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from driftguard.alerts.grouping import Grouping
from driftguard.alerts.labels import Labels
from driftguard.config import ALL_LABELS, DEFAULT_GROUP_INTERVAL, DEFAULT_GROUP_WAIT, Alerting, Route

DEFAULT_REPEAT_INTERVAL: timedelta = Alerting().repeat_interval
# A route that sets group_wait or group_interval but not group_by groups by source, as without grouping.
DEFAULT_GROUP_BY: tuple[str, ...] = ("source",)


def _node_matches(node: Route, labels: Labels) -> bool:
    for name, wanted in node.match.model_dump(mode="json", exclude_none=True).items():
        if name == "tags":
            if not set(wanted) & set(labels.tags):
                return False
        elif labels.values(name) != (wanted,):
            return False
    for name, pattern in node.match_re.model_dump(exclude_none=True).items():
        regex = re.compile(pattern)
        if not any(regex.fullmatch(v) for v in labels.values(name)):
            return False
    return True


@dataclass(frozen=True)
class _Inherited:
    """What a node takes from its ancestors unless it sets it itself."""

    repeat_interval: timedelta
    group_by: list[str] | None = None
    group_wait: timedelta | None = None
    group_interval: timedelta | None = None

    def under(self, node: Route) -> _Inherited:
        return _Inherited(
            repeat_interval=node.repeat_interval or self.repeat_interval,
            group_by=self.group_by if node.group_by is None else node.group_by,
            group_wait=self.group_wait if node.group_wait is None else node.group_wait,
            group_interval=self.group_interval if node.group_interval is None else node.group_interval,
        )

    def grouping(self, path: str) -> Grouping | None:
        """None when neither the node nor an ancestor groups: one message per source and run."""
        if self.group_by is None and self.group_wait is None and self.group_interval is None:
            return None
        if self.group_by is None:
            group_by: tuple[str, ...] | None = DEFAULT_GROUP_BY
        else:
            group_by = None if ALL_LABELS in self.group_by else tuple(self.group_by)
        return Grouping(
            route=path,
            group_by=group_by,
            wait=DEFAULT_GROUP_WAIT if self.group_wait is None else self.group_wait,
            interval=self.group_interval or DEFAULT_GROUP_INTERVAL,
        )


@dataclass(frozen=True)
class RoutedChannel:
    """A channel that hears about an alert, how often it is reminded, and how its notices group."""

    channel: str
    repeat_interval: timedelta
    grouping: Grouping | None = None


def _delivering_nodes(
    node: Route, labels: Labels, path: str, inherited: _Inherited
) -> list[tuple[Route, str, _Inherited]]:
    if not _node_matches(node, labels):
        return []
    here = inherited.under(node)
    found: list[tuple[Route, str, _Inherited]] = []
    for i, child in enumerate(node.routes):
        child_found = _delivering_nodes(child, labels, f"{path}.routes[{i}]", here)
        found.extend(child_found)
        if child_found and not child.continue_:
            break
    return found or [(node, path, here)]


def routes_of(
    root: Route, labels: Labels, *, default_repeat_interval: timedelta = DEFAULT_REPEAT_INTERVAL
) -> list[RoutedChannel]:
    """The channels that hear about an alert, in tree order, each once (the first node that
    delivers to it decides its repeat interval and grouping)."""
    out: dict[str, RoutedChannel] = {}
    for node, path, settings in _delivering_nodes(root, labels, "route", _Inherited(default_repeat_interval)):
        for receiver in node.receivers:
            if receiver not in out:
                out[receiver] = RoutedChannel(receiver, settings.repeat_interval, settings.grouping(path))
    return list(out.values())


def route(
    root: Route, labels: Labels, *, default_repeat_interval: timedelta = DEFAULT_REPEAT_INTERVAL
) -> list[tuple[str, timedelta]]:
    """(channel name, repeat interval) pairs for an alert, in tree order, each channel once."""
    routed = routes_of(root, labels, default_repeat_interval=default_repeat_interval)
    return [(r.channel, r.repeat_interval) for r in routed]


RouteOption = Literal["end_silences_on_resolve", "inhibit_when_source_down"]


def route_option(root: Route, labels: Labels, option: RouteOption) -> bool:
    """Whether `option` holds on any node that delivers the alert (inherited from its ancestors)."""

    def walk(node: Route, inherited: bool) -> tuple[bool, bool]:  # (matched, option on a delivering node)
        if not _node_matches(node, labels):
            return False, False
        value = getattr(node, option)
        here = inherited if value is None else bool(value)
        matched_child, holds = False, False
        for child in node.routes:
            child_matched, child_holds = walk(child, here)
            holds = holds or child_holds
            matched_child = matched_child or child_matched
            if child_matched and not child.continue_:
                break
        return True, holds if matched_child else here

    return walk(root, False)[1]
