"""Reading custom SQL results under the status contract."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from driftguard.collect.sql_checks import CONTEXT_ROWS, interpret_result
from driftguard.errors import CheckDefinitionError

WHERE = "source s, sql check late"


def test_any_alert_row_makes_the_check_alert_and_measures_come_from_it() -> None:
    rows = [("eu", "ok", 1, 10), ("us", "Alert ", Decimal("12.5"), 10), ("ap", "ALERT", 99, 10)]
    result = interpret_result("late", ["region", "Status", "ACTUAL", "threshold"], rows, where=WHERE)
    assert (result.status, result.actual, result.threshold, result.rows) == ("ALERT", 12.5, 10.0, 3)
    assert result.context == [{"region": "eu"}, {"region": "us"}, {"region": "ap"}]


def test_all_ok_takes_measures_from_the_first_row_and_no_rows_is_ok() -> None:
    result = interpret_result("late", ["status", "actual"], [("OK", "n/a"), ("OK", 3)], where=WHERE)
    assert (result.status, result.actual, result.threshold) == ("OK", "n/a", None)
    empty = interpret_result("late", ["status"], [], where=WHERE)
    assert (empty.status, empty.rows, empty.context) == ("OK", 0, [])


def test_context_keeps_the_first_rows_as_json_safe_values() -> None:
    at = datetime(2026, 1, 1, 12, tzinfo=UTC)
    rows = [("OK", i, at, date(2026, 1, 2), b"\x01\xff", Decimal("1.5")) for i in range(CONTEXT_ROWS + 5)]
    result = interpret_result("late", ["status", "n", "at", "day", "raw", "amount"], rows, where=WHERE)
    assert result.rows == CONTEXT_ROWS + 5 and len(result.context) == CONTEXT_ROWS
    assert result.context[0] == {
        "n": 0,
        "at": "2026-01-01T12:00:00+00:00",
        "day": "2026-01-02",
        "raw": "01ff",
        "amount": 1.5,
    }


def test_a_result_without_status_names_the_check_and_its_columns() -> None:
    with pytest.raises(
        CheckDefinitionError,
        match=r"^source s, sql check late: the result has no status column \(it has: a, b\)",
    ):
        interpret_result("late", ["a", "b"], [(1, 2)], where=WHERE)


@pytest.mark.parametrize("status", ["maybe", None, 1])
def test_a_status_other_than_alert_or_ok_is_a_definition_error(status: object) -> None:
    with pytest.raises(CheckDefinitionError, match="row 2 has status"):
        interpret_result("late", ["status"], [("OK",), (status,)], where=WHERE)
