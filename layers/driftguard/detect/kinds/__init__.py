"""The registry of check kinds: each kind is one module of this package, listed here once.

The evaluator judges every configured check through it, the engine asks it which kinds have a
series (recent values in notifications) and which backfill from a table's own rows, and the CLI
lists the kinds from it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from driftguard.config import TableConfig
from driftguard.detect.kinds.base import CheckKindBase, SourceCheckKind, TableCheckKind
from driftguard.detect.kinds.column import Column
from driftguard.detect.kinds.freshness import Freshness
from driftguard.detect.kinds.schema import Schema
from driftguard.detect.kinds.segment_missing import SegmentMissing
from driftguard.detect.kinds.sql import Sql
from driftguard.detect.kinds.sql_metric import SqlMetricKind
from driftguard.detect.kinds.volume import Volume
from driftguard.model import AlertState, CheckKind

TABLE_KINDS: tuple[TableCheckKind[Any], ...] = (Freshness(), Volume(), SegmentMissing(), Schema(), Column())
"""Per-table kinds, in the order a table's findings are produced."""

SOURCE_KINDS: tuple[SourceCheckKind[Any], ...] = (Sql(), SqlMetricKind())
"""Per-source kinds, judged after the tables."""

ALL_KINDS: tuple[CheckKindBase, ...] = (*TABLE_KINDS, *SOURCE_KINDS)


def has_series(kind: CheckKind) -> bool:
    """Whether findings of `kind` have a numeric series worth showing as recent values (the
    source's own availability finding is not a registered kind and has none)."""
    return any(k.kind == kind and k.has_series for k in ALL_KINDS)


def learned_kinds() -> list[str]:
    """The kinds whose series detection learns from (the ones whose points an operator labels)."""
    return [k.kind.value for k in ALL_KINDS if k.has_series]


def backfills(table: TableConfig) -> bool:
    """Whether any check of `table` learns from the table's own past rows on first sight (a
    segmented table's segments bring their own past when each is first seen: collect.segments)."""
    if table.segment_by is not None:
        return False
    return any(k.backfills(table.checks, c) for k in TABLE_KINDS for c in k.configured(table.checks))


def known_segments(states: Iterable[AlertState]) -> Callable[[str], list[str]]:
    """table name -> the segments it had before: those with a volume series' alert state (every
    segment judged once has one; segments are ranked by volume). Segments with an open
    segment_missing alert come first, so a cap on how many are asked about never drops one
    that still has to resolve; then by name."""
    by_table: dict[str, set[str]] = {}
    open_missing: set[tuple[str, str]] = set()
    for state in states:
        key = state.key
        if key.segment is None:
            continue
        if key.check == CheckKind.VOLUME:
            by_table.setdefault(key.table, set()).add(key.segment)
        elif key.check == CheckKind.SEGMENT_MISSING and state.active_since is not None:
            open_missing.add((key.table, key.segment))

    def known(table: str) -> list[str]:
        return sorted(by_table.get(table, ()), key=lambda s: ((table, s) not in open_missing, s))

    return known


__all__ = [
    "ALL_KINDS",
    "SOURCE_KINDS",
    "TABLE_KINDS",
    "SourceCheckKind",
    "TableCheckKind",
    "backfills",
    "has_series",
    "known_segments",
    "learned_kinds",
]
