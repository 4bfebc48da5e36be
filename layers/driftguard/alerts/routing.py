"""The routing tree, as in Alertmanager: which channels hear about an alert, how often.

Depth first from the root, the default route (give it no conditions, so every alert reaches
some channel). A node matches when all
of its `match` (exact; `tags`: the source has any of them) and `match_re` (fully anchored;
`tag`: any tag matches) conditions hold. Among a node's children the first that matches wins,
unless it says `continue: true`, in which case the following siblings are tried as well. A
node none of whose children match delivers to its own receivers. `repeat_interval` is
inherited from the nearest ancestor that sets one, else the global one; so are the lifecycle
options `end_silences_on_resolve` and `inhibit_when_source_down` (default false), which hold for
an alert when they hold on any node that delivers it.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal

from driftguard.alerts.labels import Labels
from driftguard.config import Alerting, Route

DEFAULT_REPEAT_INTERVAL: timedelta = Alerting().repeat_interval


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


def _matching_nodes(node: Route, labels: Labels, inherited: timedelta) -> list[tuple[Route, timedelta]]:
    if not _node_matches(node, labels):
        return []
    interval = node.repeat_interval or inherited
    found: list[tuple[Route, timedelta]] = []
    for child in node.routes:
        child_found = _matching_nodes(child, labels, interval)
        found.extend(child_found)
        if child_found and not child.continue_:
            break
    return found or [(node, interval)]


def route(
    root: Route, labels: Labels, *, default_repeat_interval: timedelta = DEFAULT_REPEAT_INTERVAL
) -> list[tuple[str, timedelta]]:
    """(channel name, repeat interval) pairs for an alert, in tree order, each channel once."""
    out: dict[str, timedelta] = {}
    for node, interval in _matching_nodes(root, labels, default_repeat_interval):
        for receiver in node.receivers:
            out.setdefault(receiver, interval)
    return list(out.items())


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
