"""The backtest scaling benchmark, quick (next to tests/unit/test_bench_smoke.py, which holds the others)."""

from __future__ import annotations

import itertools
import json

import pytest
from bench.perf import backtest_scaling


def test_the_benchmark_series_is_hourly_and_has_what_it_promises() -> None:
    rows = backtest_scaling.hourly_series(24 * 20)
    assert len(rows) == 24 * 20
    assert all((b[0] - a[0]).total_seconds() == 3600 for a, b in itertools.pairwise(rows))
    assert sum(v == 0 for _, v in rows) >= 6  # the outage
    assert rows[0][0].weekday() == 0


@pytest.mark.slow
def test_backtest_scaling_quick() -> None:
    report = backtest_scaling.run(quick=True)
    figures = json.loads(json.dumps(report.to_json()))
    assert not figures["problems"]
    (table,) = figures["tables"]
    assert [row[0] for row in table["rows"]] == list(backtest_scaling.QUICK_SIZES)
    assert all(row[6] == 0 for row in table["rows"])  # the kept fit alerted where a full refit did
    assert all(row[1] > 0 and row[2] > 0 for row in table["rows"])
    assert table["rows"][-1][5] != "0%"  # past the first day of a window, kept fits judge most points
    assert [b["verdict"] for b in figures["budgets"]] == ["NOT MEASURED"]  # the year is the full run's
    text = report.render()
    assert table["title"] in text and "alerts that differ" in text
