"""One formatter for numbers, durations, percentages and ranges, in the CLI and notifications."""

from __future__ import annotations

from datetime import timedelta

import pytest

from driftguard.formatting import (
    format_count,
    format_duration,
    format_expected,
    format_number,
    format_percent,
    format_range,
    format_schema_changes,
    format_value,
)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (12, "12s"),
        (250, "4m 10s"),
        (3600, "1h"),
        (22860, "6h 21m"),
        (4320, "1h 12m"),
        (187200, "2d 4h"),
    ],
)
def test_durations_read_the_same_everywhere(seconds: int, text: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == text
    assert format_duration(seconds) == text
    assert format_value(float(seconds), seconds=True) == text


def test_numbers_keep_significant_digits_and_whole_numbers_stay_whole() -> None:
    assert format_number(204_118) == "204,118"
    assert format_number(66.497712) == "66.4977"
    assert format_number(66.497712, digits=4) == "66.5"
    assert format_number(float("nan")) == "nan"


def test_rates_read_as_percentages() -> None:
    assert format_percent(0.0105) == "1.05%"
    assert format_percent(0.00123) == "0.123%"
    assert format_value(0.5, rate=True) == "50%"
    assert format_value(3.0, rate=True) == "3"  # not a share: as a number


def test_ranges_and_expectations_use_one_notation() -> None:
    assert format_range(28.2656, 154.676) == "28.27 to 154.7"
    assert format_range(None, 4320, seconds=True) == "at most 1h 12m"
    assert format_range(5, None) == "at least 5"
    assert format_range(None, None) == ""
    assert format_expected(66.4977, 28.2656, 154.676) == "66.5 (normal range 28.27 to 154.7)"
    assert format_expected(None, None, None) == ""


def test_counts_agree_with_their_noun() -> None:
    assert format_count(1, "value") == "1 value"
    assert format_count(3, "value") == "3 values"
    assert format_count(1200, "row") == "1,200 rows"


def test_schema_changes_say_what_changed() -> None:
    details = {
        "changes": [
            {"change": "removed", "column": "lifetime_value", "before": None, "after": None},
            {"change": "added", "column": "ltv_cents", "before": None, "after": "INTEGER"},
            {"change": "type_changed", "column": "amount", "before": "INTEGER", "after": "TEXT"},
        ]
    }
    assert format_schema_changes(details) == (
        "removed lifetime_value; added ltv_cents (INTEGER); type of amount: INTEGER → TEXT"
    )
    assert format_schema_changes({}) == ""
