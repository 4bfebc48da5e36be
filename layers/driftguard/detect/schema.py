"""Schema drift: the table's columns against the accepted (or configured) schema."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from driftguard.config import ExpectedColumn, SchemaChangeSeverity
from driftguard.model import ColumnInfo, SchemaBaseline, Severity


@dataclass(frozen=True)
class SchemaChange:
    change: str  # added | removed | type_changed | nullability_changed | order_changed
    column: str
    severity: Severity
    before: str | None = None
    after: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "change": self.change,
            "column": self.column,
            "severity": self.severity.value,
            "before": self.before,
            "after": self.after,
        }

    def describe(self) -> str:
        what = {
            "added": "added",
            "removed": "removed",
            "type_changed": f"type changed {self.before} → {self.after}",
            "nullability_changed": f"nullability changed {self.before} → {self.after}",
            "order_changed": f"moved from position {self.before} to {self.after}",
        }[self.change]
        return f"column {self.column} {what}"


@dataclass(frozen=True)
class SchemaColumn:
    """One column as the comparison expects it (None: any)."""

    name: str
    type: str | None  # a type family or a raw type; None: any
    nullable: bool | None


def _expected_from_baseline(baseline: SchemaBaseline) -> list[SchemaColumn]:
    ordered = sorted(baseline.columns, key=lambda c: c.position)
    return [SchemaColumn(c.name, c.type, c.nullable) for c in ordered]


def _expected_from_config(columns: list[ExpectedColumn]) -> list[SchemaColumn]:
    return [SchemaColumn(c.name, c.type, c.nullable) for c in columns]


def _type_matches(expected: str, column: ColumnInfo) -> bool:
    return expected.lower() in (column.type.lower(), column.raw_type.lower())


def diff_columns(
    current: list[ColumnInfo], expected: list[SchemaColumn], severity: SchemaChangeSeverity
) -> list[SchemaChange]:
    now = {c.name: c for c in current}
    then = {e.name: e for e in expected}
    changes = [SchemaChange("removed", e.name, severity.removed) for e in expected if e.name not in now]
    changes += [
        SchemaChange("added", c.name, severity.added, after=c.raw_type)
        for c in sorted(current, key=lambda c: c.position)
        if c.name not in then
    ]
    for e in expected:
        c = now.get(e.name)
        if c is None:
            continue
        if e.type is not None and not _type_matches(e.type, c):
            changes.append(SchemaChange("type_changed", c.name, severity.type_changed, e.type, c.raw_type))
        if e.nullable is not None and e.nullable != c.nullable:
            changes.append(
                SchemaChange(
                    "nullability_changed",
                    c.name,
                    severity.nullability_changed,
                    "NULL" if e.nullable else "NOT NULL",
                    "NULL" if c.nullable else "NOT NULL",
                )
            )
    kept_then = [e.name for e in expected if e.name in now]
    kept_now = [c.name for c in sorted(current, key=lambda c: c.position) if c.name in then]
    if kept_then != kept_now:
        for old_index, name in enumerate(kept_then):
            new_index = kept_now.index(name)
            if new_index != old_index:
                changes.append(
                    SchemaChange(
                        "order_changed", name, severity.order_changed, str(old_index + 1), str(new_index + 1)
                    )
                )
    return changes


def expected_schema(
    configured: list[ExpectedColumn] | None, baseline: SchemaBaseline | None
) -> list[SchemaColumn] | None:
    """The schema to compare against: the configured one wins over the accepted one."""
    if configured is not None:
        return _expected_from_config(configured)
    if baseline is not None:
        return _expected_from_baseline(baseline)
    return None
