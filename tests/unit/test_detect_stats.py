"""Robust statistics and Poisson tails used by the detectors."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from statistics import median

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftguard.detect.stats import (
    mad,
    negbin_bounds,
    negbin_cdf,
    normal_sf,
    poisson_bounds,
    poisson_cdf,
    robust_sigma,
    typical_gap,
    z_of_tail,
)


def test_mad_and_robust_sigma_ignore_a_minority_of_outliers() -> None:
    values = [10.0, 11.0, 9.0, 10.0, 12.0, 8.0, 10.0, 1000.0]
    assert mad(values) == 1.0
    assert robust_sigma(values) == pytest.approx(1.4826)


def test_robust_sigma_falls_back_when_most_values_are_equal() -> None:
    assert robust_sigma([5.0] * 8 + [6.0, 7.0]) > 0
    assert robust_sigma([5.0] * 10) == 0


def test_poisson_cdf_matches_the_closed_form() -> None:
    assert poisson_cdf(0, 3.0) == pytest.approx(math.exp(-3))
    assert poisson_cdf(2, 3.0) == pytest.approx(math.exp(-3) * (1 + 3 + 4.5))
    assert poisson_cdf(-1, 3.0) == 0


@settings(max_examples=40, deadline=None)
@given(st.floats(min_value=0.1, max_value=200), st.floats(min_value=1e-9, max_value=0.1))
def test_poisson_bounds_hold_their_tail_chance(mean: float, tail: float) -> None:
    low, high = poisson_bounds(mean, tail)
    assert low <= high and low <= mean
    assert poisson_cdf(int(low) - 1, mean) <= tail  # below `low`: at most `tail`
    assert 1 - poisson_cdf(int(high), mean) <= tail + 1e-12  # above `high`: at most `tail`
    assert 1 - poisson_cdf(int(high) - 1, mean) > tail  # and `high` is the smallest such bound


@settings(max_examples=40, deadline=None)
@given(st.floats(min_value=1e-12, max_value=0.49))
def test_z_of_tail_inverts_the_normal_tail(p: float) -> None:
    assert normal_sf(z_of_tail(p)) == pytest.approx(p, rel=1e-6)


def test_typical_gap_is_the_median_spacing() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    times = [t0 + timedelta(hours=h) for h in (0, 1, 2, 3, 10)]
    assert typical_gap(times) == timedelta(hours=1)
    assert typical_gap(times[:1]) is None


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(st.integers(-5, 5).map(float), st.floats(-1e12, 1e12, allow_nan=False)),
        min_size=1,
        max_size=60,
    )
)
def test_mad_equals_the_textbook_definition(values: list[float]) -> None:
    """The sort-once MAD gives exactly median(|v - median(v)|), ties and signed zeros included."""
    center = median(values)
    assert mad(values) == float(median([abs(v - center) for v in values]))


def test_negative_binomial_tails_sum_to_one_and_tend_to_poisson() -> None:
    mean, variance = 40.0, 400.0  # ten times a Poisson count's variance
    assert negbin_cdf(-1, mean, variance) == 0.0
    assert negbin_cdf(5000, mean, variance) == pytest.approx(1.0, abs=1e-9)
    # with hardly any extra variance it is a Poisson count
    assert negbin_cdf(35, mean, mean * 1.0001) == pytest.approx(poisson_cdf(35, mean), abs=1e-3)
    # overdispersion fattens both tails
    assert negbin_cdf(20, mean, variance) > poisson_cdf(20, mean)
    assert 1 - negbin_cdf(70, mean, variance) > 1 - poisson_cdf(70, mean)


def test_negative_binomial_bounds_hold_the_tail_chance() -> None:
    mean, variance, tail = 40.0, 400.0, 1e-4
    lower, upper = negbin_bounds(mean, variance, tail)
    assert negbin_cdf(int(lower) - 1, mean, variance) <= tail < negbin_cdf(int(lower), mean, variance)
    assert 1 - negbin_cdf(int(upper), mean, variance) <= tail < 1 - negbin_cdf(int(upper) - 1, mean, variance)
