"""Schema drift: the diff against the accepted or configured schema."""

from __future__ import annotations

from datetime import UTC, datetime

from driftguard.config import ExpectedColumn, SchemaChangeSeverity
from driftguard.detect.schema import SchemaColumn, diff_columns, expected_schema
from driftguard.model import ColumnInfo, SchemaBaseline, Severity

AT = datetime(2026, 3, 2, tzinfo=UTC)
SEVERITY = SchemaChangeSeverity()


def col(
    name: str, position: int, type_: str = "integer", raw: str = "INTEGER", nullable: bool = True
) -> ColumnInfo:
    return ColumnInfo(name=name, type=type_, raw_type=raw, nullable=nullable, position=position)


BASE = [
    col("id", 1, nullable=False),
    col("email", 2, "text", "VARCHAR(200)"),
    col("created", 3, "timestamp", "TIMESTAMP"),
]


def accepted(columns: list[ColumnInfo]) -> list[SchemaColumn]:
    baseline = SchemaBaseline(source="s", table="t", columns=columns, accepted_at=AT, accepted_by="learned")
    found = expected_schema(None, baseline)
    assert found is not None
    return found


def changes(current: list[ColumnInfo], base: list[ColumnInfo] = BASE) -> list[tuple[str, str, Severity]]:
    return [(c.change, c.column, c.severity) for c in diff_columns(current, accepted(base), SEVERITY)]


def test_same_schema_has_no_changes() -> None:
    assert changes(list(reversed(BASE))) == []  # list order is irrelevant: positions count


def test_added_column() -> None:
    assert changes([*BASE, col("note", 4, "text", "TEXT")]) == [("added", "note", Severity.WARNING)]


def test_removed_column_is_critical_by_default() -> None:
    assert changes([BASE[0], BASE[2].model_copy(update={"position": 2})]) == [
        ("removed", "email", Severity.CRITICAL)
    ]


def test_type_change_reports_before_and_after() -> None:
    current = [BASE[0], col("email", 2, "integer", "BIGINT"), BASE[2]]
    found = diff_columns(current, accepted(BASE), SEVERITY)
    assert [(c.change, c.before, c.after) for c in found] == [("type_changed", "text", "BIGINT")]
    assert found[0].describe() == "column email type changed text → BIGINT"


def test_nullability_change() -> None:
    current = [col("id", 1, nullable=True), BASE[1], BASE[2]]
    found = diff_columns(current, accepted(BASE), SEVERITY)
    assert [(c.change, c.before, c.after) for c in found] == [("nullability_changed", "NOT NULL", "NULL")]


def test_order_change_is_info() -> None:
    current = [
        BASE[0].model_copy(update={"position": 2}),
        BASE[1].model_copy(update={"position": 1}),
        BASE[2],
    ]
    assert changes(current) == [
        ("order_changed", "id", Severity.INFO),
        ("order_changed", "email", Severity.INFO),
    ]


def test_adding_a_column_in_the_middle_is_not_an_order_change() -> None:
    current = [
        BASE[0],
        col("note", 2, "text", "TEXT"),
        *(c.model_copy(update={"position": c.position + 1}) for c in BASE[1:]),
    ]
    assert changes(current) == [("added", "note", Severity.WARNING)]


def test_configured_schema_matches_families_or_raw_types_and_ignores_unset_fields() -> None:
    expected = expected_schema(
        [
            ExpectedColumn(name="id", type="integer", nullable=False),
            ExpectedColumn(name="email", type="varchar(200)"),
        ],
        None,
    )
    assert expected is not None
    found = diff_columns(BASE, expected, SEVERITY)
    assert [(c.change, c.column) for c in found] == [("added", "created")]


def test_configured_schema_wins_over_the_accepted_one() -> None:
    baseline = SchemaBaseline(source="s", table="t", columns=BASE, accepted_at=AT, accepted_by="ana")
    configured = expected_schema([ExpectedColumn(name="id")], baseline)
    assert configured is not None and [e.name for e in configured] == ["id"]


def test_severities_come_from_the_config() -> None:
    severity = SchemaChangeSeverity(added=Severity.CRITICAL, removed=Severity.INFO)
    found = diff_columns([BASE[0], BASE[1], col("x", 3)], accepted(BASE), severity)
    assert {(c.change, c.severity) for c in found} == {
        ("removed", Severity.INFO),
        ("added", Severity.CRITICAL),
    }
