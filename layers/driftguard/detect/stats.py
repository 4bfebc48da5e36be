"""Small robust statistics in pure Python (the base install carries no numpy)."""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from statistics import NormalDist, median

MAD_TO_SIGMA = 1.4826  # MAD of a normal sample times this estimates its standard deviation


def median_of_sorted(ordered: Sequence[float]) -> float:
    """`statistics.median` of values sorted already: the same arithmetic, without sorting again."""
    n = len(ordered)
    i = n // 2
    return ordered[i] if n % 2 else (ordered[i - 1] + ordered[i]) / 2


def mad(values: Sequence[float], center: float | None = None) -> float:
    """Median absolute deviation around `center` (default: the median)."""
    if not values:
        return 0.0
    if center is not None:
        return float(median([abs(v - center) for v in values]))
    ordered = sorted(values)
    c = median_of_sorted(ordered)
    split = bisect.bisect_right(ordered, c)
    # |v - c| as two ascending runs (the values below the median reversed, then those above), which
    # the sort inside median merges in one pass; c - v is exactly abs(v - c) for v <= c
    deviations = [c - v for v in reversed(ordered[:split])] + [v - c for v in ordered[split:]]
    return float(median(deviations))


def robust_sigma(values: Sequence[float]) -> float:
    """A standard deviation estimate that a minority of outliers cannot inflate.

    Falls back to the mean absolute deviation when more than half the values are equal
    (MAD = 0 there even though the series does vary)."""
    if len(values) < 2:
        return 0.0
    s = MAD_TO_SIGMA * mad(values)
    if s > 0:
        return s
    c = median(values)
    return math.sqrt(math.pi / 2) * sum(abs(v - c) for v in values) / len(values)


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2))


def benjamini_hochberg(p_values: Sequence[float], q: float) -> list[bool]:
    """Which hypotheses to reject so that the false discovery rate stays at most `q`."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    cutoff = -1
    for rank, i in enumerate(order, start=1):
        if p_values[i] <= rank * q / m:
            cutoff = rank
    rejected = [False] * m
    for rank, i in enumerate(order, start=1):
        rejected[i] = rank <= cutoff
    return rejected


def typical_gap(times: Sequence[datetime]) -> timedelta | None:
    """The median gap between consecutive distinct times (the series' period), None if < 2 times."""
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times) if b > a]
    if not gaps:
        return None
    return timedelta(seconds=float(median(gaps)))


POISSON_EXACT_MAX_MEAN = 200.0  # beyond this the normal approximation of a Poisson count is good


def poisson_cdf(k: int, mean: float) -> float:
    """P(X <= k) for X ~ Poisson(mean) (mean <= POISSON_EXACT_MAX_MEAN, so exp(-mean) is representable)."""
    if k < 0:
        return 0.0
    pmf = cdf = math.exp(-mean)
    for i in range(1, k + 1):
        pmf *= mean / i
        cdf += pmf
    return min(cdf, 1.0)


def z_of_tail(p: float) -> float:
    """The normal z-score with the same one-sided tail probability `p` (0 for p >= 0.5)."""
    if p >= 0.5:
        return 0.0
    return -NormalDist().inv_cdf(max(p, 1e-300))


def poisson_bounds(mean: float, tail: float) -> tuple[float, float]:
    """(lower, upper): a Poisson(mean) count below `lower` or above `upper` has a one-sided tail
    chance of at most `tail`, in one pass over the distribution."""
    pmf = cdf = math.exp(-mean)
    k = 0
    lower: int | None = None
    while True:
        if lower is None and cdf > tail:
            lower = k  # P(X < k) <= tail
        if 1.0 - cdf <= tail:
            return float(lower if lower is not None else k), float(k)  # P(X > k) <= tail
        k += 1
        pmf *= mean / k
        cdf += pmf


NEGBIN_MAX_TERMS = 100_000  # bounds the work of one tail sum; counts beyond it are far out in the tail


def _negbin_terms(mean: float, variance: float) -> tuple[float, float]:
    """(size r, success probability p) of the negative binomial with this mean and a variance
    above it: the gamma-Poisson count whose variance is variance / mean times a Poisson count's."""
    r = mean * mean / (variance - mean)
    return r, r / (r + mean)


def negbin_cdf(k: int, mean: float, variance: float) -> float:
    """P(X <= k) for the negative binomial with this mean and variance (variance > mean > 0)."""
    if k < 0:
        return 0.0
    r, p = _negbin_terms(mean, variance)
    pmf = cdf = p**r
    q = 1.0 - p
    for i in range(min(k, NEGBIN_MAX_TERMS)):
        pmf *= (i + r) / (i + 1) * q
        cdf += pmf
    return min(cdf, 1.0)


def negbin_bounds(mean: float, variance: float, tail: float) -> tuple[float, float]:
    """(lower, upper): a count below `lower` or above `upper` has a one-sided tail chance of at most
    `tail` under the negative binomial with this mean and variance, in one pass."""
    r, p = _negbin_terms(mean, variance)
    q = 1.0 - p
    pmf = cdf = p**r
    k = 0
    lower: int | None = None
    while k < NEGBIN_MAX_TERMS:
        if lower is None and cdf > tail:
            lower = k
        if 1.0 - cdf <= tail:
            break
        pmf *= (k + r) / (k + 1) * q
        cdf += pmf
        k += 1
    return float(lower if lower is not None else k), float(k)
