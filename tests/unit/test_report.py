"""The report's model (built from the Store port), its downsampling, its HTML and its commands."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from tests.browser.support import Demo, embedded, run_demo

from driftguard.alerts.silences import new_silence, parse_matcher
from driftguard.cli import main
from driftguard.model import CheckKind, PointLabel
from driftguard.report.downsample import display_indices, lttb_indices
from driftguard.report.model import DISPLAY_POINTS, STATE_ORDER, CheckView, build_report
from driftguard.report.render import render_html
from driftguard.store import Store, open_store


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    return run_demo(tmp_path_factory.mktemp("report-demo"))


@pytest.fixture
def store(demo: Demo) -> Any:
    opened = open_store(str(demo.state))
    yield opened
    opened.close()


def report_of(store: Store, demo: Demo, **kw: Any) -> Any:
    return build_report(store, now=demo.now + timedelta(minutes=5), since=demo.now - timedelta(days=28), **kw)


def check(report: Any, table: str, metric: str) -> CheckView:
    return next(c for c in report.checks if c.table == table and c.metric == metric)


# ---------------------------------------------------------------------------- downsampling


def test_lttb_keeps_the_ends_and_a_lone_spike_within_the_target() -> None:
    xs = [float(i) for i in range(5000)]
    ys = [math.sin(i / 50) for i in range(5000)]
    ys[3217] = 40.0
    chosen = lttb_indices(xs, ys, 200)
    assert len(chosen) == 200 and chosen[0] == 0 and chosen[-1] == 4999
    assert 3217 in chosen and chosen == sorted(set(chosen))


def test_points_that_must_show_are_added_and_short_series_are_untouched() -> None:
    xs = [float(i) for i in range(1000)]
    ys = [1.0] * 1000
    assert display_indices(xs, ys, 50, keep=[7, 8, 999, 5000]) == sorted(
        set(lttb_indices(xs, ys, 50)) | {7, 8, 999}
    )
    assert lttb_indices(xs[:10], ys[:10], 50) == list(range(10))


# ---------------------------------------------------------------------------- the model


def test_every_check_appears_once_with_what_needs_a_person_first(store: Store, demo: Demo) -> None:
    report = report_of(store, demo, config=demo.config)
    states = store.alert_states()
    assert sorted(c.id for c in report.checks) == sorted(s.fingerprint for s in states)
    order = [STATE_ORDER[type(states[0].state)(c.state)] for c in report.checks]
    assert order == sorted(order) and report.checks[0].state == "FIRING"
    assert {c.owner for c in report.checks} == {"@shop-data"} and report.checks[0].tags == ["tier-1", "demo"]


def test_the_broken_load_is_drawn_below_its_band_and_says_why(store: Store, demo: Demo) -> None:
    view = check(report_of(store, demo, config=demo.config), "orders", "rows_per_period")
    chart = view.chart
    assert chart is not None and view.state == "FIRING"
    assert chart.value[-1] == 5 and chart.anomaly[-1] == 1
    assert chart.lower[-1] is not None and chart.value[-1] < chart.lower[-1] < chart.expected[-1]  # type: ignore[operator]
    assert chart.notes[len(chart.t) - 1] == view.reason and "5 rows" in view.reason
    # a normal hour sits in its band: the band follows the daily rhythm
    inside = [
        lo <= v <= hi
        for v, lo, hi in zip(chart.value, chart.lower, chart.upper, strict=True)
        if lo is not None and hi is not None
    ]
    assert len(inside) > 200 and sum(inside) / len(inside) > 0.95
    assert any(m.to_state == "FIRING" for m in view.marks)
    assert any(s.kind == "training" for s in view.spans)
    # the channels its notice went out for (the console's is parked here: no such channel), and when
    assert view.notified == {"console": demo.now.timestamp(), "demo-file": demo.now.timestamp()}


def test_long_series_are_thinned_for_display_only(store: Store, demo: Demo) -> None:
    view = check(report_of(store, demo, config=demo.config), "events", "rows_per_period")
    assert view.chart is not None
    stored = [
        p
        for p in store.series(
            next(s.key for s in store.alert_states() if s.fingerprint == view.id),
            before=demo.now + timedelta(hours=1),
        )
        if p.ts >= demo.now - timedelta(days=28)
    ]
    assert view.chart.points_total == len(stored) > DISPLAY_POINTS
    assert DISPLAY_POINTS <= len(view.chart.t) <= DISPLAY_POINTS + 10
    assert sum(view.chart.anomaly) == sum(p.label == PointLabel.ANOMALY for p in stored)


def test_freshness_is_drawn_as_a_lag_under_its_allowed_lag(store: Store, demo: Demo) -> None:
    view = check(report_of(store, demo, config=demo.config), "events", "lag_seconds")
    assert view.chart is not None and view.chart.unit == "s"
    assert view.chart.value[-1] > 8 * 3600  # the feed stopped 9 hours before the run
    assert view.chart.upper[-1] is not None and view.chart.upper[-1] < view.chart.value[-1]
    assert view.chart.lower[-1] == 0.0


def test_schema_drift_is_on_the_timeline_and_notices_are_listed(store: Store, demo: Demo) -> None:
    report = report_of(store, demo, config=demo.config)
    drift = [e for e in report.schema_changes if e.table == "customers" and e.state == "FIRING"]
    assert drift and "lifetime_value" in drift[0].text and "ltv_cents" in drift[0].text
    assert any(e.state == "baseline" and "learned" in e.text for e in report.schema_changes)
    assert {e.state for e in report.notices} >= {"FIRING"}
    assert [e.t for e in report.notices] == sorted((e.t for e in report.notices), reverse=True)
    sql = check(report, "orders", "no_negative_amounts")
    assert sql.chart is not None and "own threshold" in sql.chart.band


def test_silences_and_operator_labels_are_shaded_on_the_checks_they_concern(
    tmp_path: Path, demo: Demo
) -> None:
    copy = tmp_path / "state.db"
    copy.write_bytes(demo.state.read_bytes())
    store = open_store(str(copy))
    try:
        silence = new_silence(
            [parse_matcher("table=orders")],
            created_by="ana",
            comment="reload",
            now=demo.now - timedelta(days=2),
            duration=timedelta(hours=6),
        )
        store.put_silence(silence)
        key = next(
            s.key for s in store.alert_states() if s.key.table == "orders" and s.key.check == CheckKind.VOLUME
        )
        start = demo.now - timedelta(days=3)
        labelled = store.label_points(key, start, start + timedelta(hours=4), PointLabel.MAINTENANCE)
        report = report_of(store, demo, config=demo.config)
    finally:
        store.close()
    volume = check(report, "orders", "rows_per_period")
    assert [s.text for s in volume.spans if s.kind == "silence"] == ["silenced: reload (ana)"]
    assert [(s.start, s.end) for s in volume.spans if s.kind == "maintenance"] == [
        (start.timestamp(), (start + timedelta(hours=labelled - 1)).timestamp())
    ]
    assert not [s for s in check(report, "events", "rows_per_period").spans if s.kind == "silence"]


def test_without_a_config_the_report_still_draws_and_says_what_it_lacks(store: Store, demo: Demo) -> None:
    report = report_of(store, demo)
    assert report.notes and "No config" in report.notes[0]
    view = check(report, "orders", "rows_per_period")
    assert view.owner == "" and view.chart is not None and "default detection settings" in view.chart.band


# ---------------------------------------------------------------------------- HTML and commands


def test_the_html_is_self_contained_and_names_cannot_break_out_of_it(store: Store, demo: Demo) -> None:
    report = report_of(store, demo, config=demo.config)
    report.checks[0].reason = "</script><script>alert(1)</script>\u2028"
    html = render_html(report)
    assert "<script>alert(1)" not in html
    assert embedded(html)["checks"][0]["reason"] == report.checks[0].reason
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # nothing to fetch
    assert "default-src 'none'" in html and "uPlot" in html


def test_report_command_writes_the_file_and_refuses_an_unknown_source(demo: Demo, tmp_path: Path) -> None:
    out = tmp_path / "r" / "report.html"
    runner = CliRunner()
    result = runner.invoke(main, ["-c", str(demo.config_path), "report", "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["bytes"] == out.stat().st_size and summary["checks"] == len(
        embedded(out.read_text())["checks"]
    )
    bad = runner.invoke(main, ["-c", str(demo.config_path), "report", "--source", "nope", "-o", str(out)])
    assert bad.exit_code == 1 and "no checks of source 'nope'" in bad.output and "shop" in bad.output
    future = runner.invoke(main, ["-c", str(demo.config_path), "report", "--since", "2999-01-01"])
    assert future.exit_code == 2 and "not in the past" in future.output


def test_backtest_report_draws_the_replay_with_its_verdicts(tmp_path: Path) -> None:
    start = datetime(2026, 1, 5, tzinfo=UTC)
    values = [100 + 40 * math.sin(2 * math.pi * i / 24) for i in range(24 * 15)]
    values[-3] = 2.0
    src = tmp_path / "series.csv"
    src.write_text(
        "timestamp,value\n"
        + "".join(f"{(start + timedelta(hours=i)).isoformat()},{v}\n" for i, v in enumerate(values)),
        encoding="utf-8",
    )
    out, csv_out = tmp_path / "bt.html", tmp_path / "bt.csv"
    args = [
        "backtest",
        "--check",
        "volume",
        "--input",
        str(src),
        "--output",
        str(csv_out),
        "--report",
        str(out),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    (view,) = embedded(out.read_text())["checks"]
    chart = view["chart"]
    rows = csv_out.read_text().splitlines()[1:]
    flagged = [r.split(",")[0] for r in rows if r.endswith(",1")]
    shown_flagged = [t for t, a in zip(chart["t"], chart["anomaly"], strict=True) if a]
    assert [datetime.fromtimestamp(t, UTC).isoformat() for t in shown_flagged] == flagged and flagged
    assert chart["points_total"] == len(values) and len(chart["t"]) < len(values)
    last = rows[-3].split(",")
    i = chart["t"].index((start + timedelta(hours=len(values) - 3)).timestamp())
    assert chart["value"][i] == 2.0 and chart["lower"][i] == pytest.approx(float(last[3]), rel=1e-3)


def test_the_report_benchmark_builds_what_it_measures(tmp_path: Path) -> None:
    from bench.report_html import build, make_state

    make_state(tmp_path / "state.db", 14)
    seconds, size, charts = build(tmp_path / "state.db", tmp_path / "report.html")
    data = embedded((tmp_path / "report.html").read_text())
    assert charts == 14 and size == (tmp_path / "report.html").stat().st_size and seconds > 0
    firing = [c for c in data["checks"] if c["state"] == "FIRING"]
    assert len(firing) == 2 and all(c["chart"]["anomaly"][-1] == 1 for c in firing)
    assert all(c["chart"]["points_total"] == 8 * 7 * 24 for c in data["checks"])
