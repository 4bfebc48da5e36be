"""The labels of an alert: what silences and routes match on.

An alert is described by the names an operator uses: source, table, check (kind), metric,
column, segment (tables[].segment_by, e.g. `country=DE`), severity, owner and the source's
tags. Absent values are the empty string, as in Alertmanager, so `column=` matches alerts
without a column. `tag` is multi-valued: a matcher
on it holds when any of the source's tags matches.
"""

from __future__ import annotations

from dataclasses import dataclass

from driftguard.config import LABEL_NAMES, Source
from driftguard.model import CheckKey, Severity

__all__ = ["LABEL_NAMES", "Labels"]  # the names live with the config, which validates group_by against them


@dataclass(frozen=True)
class Labels:
    source: str
    table: str
    check: str
    metric: str
    column: str
    severity: str
    owner: str
    tags: tuple[str, ...]
    segment: str = ""

    @classmethod
    def of(cls, key: CheckKey, severity: Severity, source: Source) -> Labels:
        return cls(
            source=key.source,
            table=key.table,
            check=key.check.value,
            metric=key.metric,
            column=key.column or "",
            severity=severity.value,
            owner=source.owner or "",
            tags=tuple(source.tags),
            segment=key.segment or "",
        )

    def values(self, label: str) -> tuple[str, ...]:
        """The value(s) of `label`: one for single-valued labels, the tags for `tag`."""
        if label == "tag":
            return self.tags
        if label not in LABEL_NAMES:
            raise ValueError(f"unknown label {label!r}; labels are {', '.join(LABEL_NAMES)}")
        value: str = getattr(self, label)
        return (value,)
