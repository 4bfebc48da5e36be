"""Fewer points for a chart, never for a judgement: Largest-Triangle-Three-Buckets (Steinarsson 2013).

LTTB keeps the points that shape a line (peaks, drops) while thinning flat stretches, so a drop that
alerted stays visible on a 300-point chart of 8 weeks of hourly values. Points a person must see
(anomalies, transitions, the latest value) are kept on top of what LTTB picks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def lttb_indices(xs: Sequence[float], ys: Sequence[float], target: int) -> list[int]:
    """Indices of at most `target` points (and at least the first and last) that keep the shape."""
    n = len(xs)
    if target >= n or n <= 2:
        return list(range(n))
    target = max(target, 3)
    bucket = (n - 2) / (target - 2)
    chosen = [0]
    previous = 0
    for b in range(target - 2):
        start = int(b * bucket) + 1
        end = min(int((b + 1) * bucket) + 1, n - 1)
        # the next bucket's average is the third corner of the triangle
        nxt_start, nxt_end = end, min(int((b + 2) * bucket) + 1, n)
        span = max(nxt_end - nxt_start, 1)
        avg_x = sum(xs[nxt_start:nxt_end]) / span if nxt_end > nxt_start else xs[n - 1]
        avg_y = sum(ys[nxt_start:nxt_end]) / span if nxt_end > nxt_start else ys[n - 1]
        ax, ay = xs[previous], ys[previous]
        best, best_area = start, -1.0
        for i in range(start, end):
            area = abs((ax - avg_x) * (ys[i] - ay) - (ax - xs[i]) * (avg_y - ay))
            if area > best_area:
                best, best_area = i, area
        chosen.append(best)
        previous = best
    chosen.append(n - 1)
    return chosen


def display_indices(
    xs: Sequence[float], ys: Sequence[float], target: int, keep: Iterable[int] = ()
) -> list[int]:
    """LTTB's choice plus every index in `keep`, sorted and without repeats."""
    return sorted(set(lttb_indices(xs, ys, target)).union(i for i in keep if 0 <= i < len(xs)))
