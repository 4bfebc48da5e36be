"""Type normalisation and period arithmetic: the pure pieces of collection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from driftguard.collect.periods import (
    ceil_time,
    complete_period_starts,
    floor_time,
    latest_complete_period,
    period_seconds,
)
from driftguard.collect.types import FAMILIES, Dialect, normalise_type


@pytest.mark.parametrize(
    ("dialect", "raw", "family"),
    [
        ("postgresql", "integer", "integer"),
        ("postgresql", "bigint", "integer"),
        ("postgresql", "double precision", "float"),
        ("postgresql", "numeric(10,2)", "numeric"),
        ("postgresql", "character varying(20)", "text"),
        ("postgresql", "boolean", "boolean"),
        ("postgresql", "date", "date"),
        ("postgresql", "timestamp(3) without time zone", "timestamp"),
        ("postgresql", "timestamp with time zone", "timestamptz"),
        ("postgresql", "jsonb", "json"),
        ("postgresql", "bytea", "binary"),
        ("postgresql", "integer[]", "other"),
        ("postgresql", "uuid", "other"),
        ("mysql", "int(11)", "integer"),
        ("mysql", "bigint(20) unsigned", "integer"),
        ("mysql", "tinyint(1)", "boolean"),
        ("mysql", "tinyint(4)", "integer"),
        ("mysql", "double", "float"),
        ("mysql", "decimal(10,2)", "numeric"),
        ("mysql", "varchar(50)", "text"),
        ("mysql", "enum('a','b')", "text"),
        ("mysql", "datetime(6)", "timestamp"),
        ("mysql", "datetime(6) /* mariadb-5.3 */", "timestamp"),
        ("mysql", "timestamp", "timestamptz"),
        ("mysql", "json", "json"),
        ("mysql", "longblob", "binary"),
        ("mysql", "time", "other"),
        ("sqlite", "INTEGER", "integer"),
        ("sqlite", "BIGINT", "integer"),
        ("sqlite", "VARCHAR(50)", "text"),
        ("sqlite", "REAL", "float"),
        ("sqlite", "DECIMAL(10,2)", "numeric"),
        ("sqlite", "BOOLEAN", "boolean"),
        ("sqlite", "DATE", "date"),
        ("sqlite", "DATETIME", "timestamp"),
        ("sqlite", "timestamp", "timestamp"),
        ("sqlite", "TIMESTAMP WITH TIME ZONE", "timestamptz"),
        ("sqlite", "BLOB", "binary"),
        ("sqlite", "", "other"),
    ],
)
def test_types_normalise_to_their_family(dialect: Dialect, raw: str, family: str) -> None:
    assert normalise_type(dialect, raw) == family


@given(st.sampled_from(["postgresql", "mysql", "sqlite"]), st.text(max_size=40))
def test_any_reported_type_maps_to_a_known_family(dialect: Dialect, raw: str) -> None:
    assert normalise_type(dialect, raw) in FAMILIES


times = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))
periods = st.sampled_from(
    [timedelta(minutes=1), timedelta(minutes=15), timedelta(hours=1), timedelta(days=1)]
)


@given(times, periods)
def test_floor_is_the_aligned_start_of_the_bucket_holding_the_time(at: datetime, period: timedelta) -> None:
    start = floor_time(at, period)
    assert start <= at < start + period
    assert start.timestamp() % period.total_seconds() == 0
    assert ceil_time(at, period) == (start if start == at else start + period)


@given(times, periods)
def test_latest_complete_period_has_ended_by_the_scheduled_time(at: datetime, period: timedelta) -> None:
    start, end = latest_complete_period(at, period)
    assert end - start == period
    assert end <= at < end + period


def test_complete_periods_skip_the_partial_edges() -> None:
    midnight = datetime(2026, 3, 10, tzinfo=UTC)
    starts = complete_period_starts(
        midnight - timedelta(minutes=1), midnight + timedelta(hours=2, minutes=59), timedelta(hours=1)
    )
    assert starts == [midnight, midnight + timedelta(hours=1)]
    assert complete_period_starts(midnight, midnight + timedelta(minutes=59), timedelta(hours=1)) == []


def test_naive_times_are_taken_as_utc() -> None:
    assert floor_time(datetime(2026, 3, 10, 10, 40), timedelta(hours=1)) == datetime(
        2026, 3, 10, 10, tzinfo=UTC
    )


@pytest.mark.parametrize("period", [timedelta(seconds=0.5), timedelta(seconds=90.5)])
def test_a_period_must_be_whole_seconds(period: timedelta) -> None:
    with pytest.raises(ValueError, match="whole number of seconds"):
        period_seconds(period)
