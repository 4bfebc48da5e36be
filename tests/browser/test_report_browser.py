"""The demo's report opened in headless chromium, checked as a person would look at it."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from tests.browser.support import IN_CI, SCREENSHOTS, DemoReport, Page

pytestmark = pytest.mark.browser

REFERENCE = Path(__file__).parent / "reference"
# two screenshots shrunk to 128 px wide and cut into 8 x 8 px cells: the largest mean difference of a
# cell, 0..1. Another day's run (dates, axis labels, a longer path) moved a cell by 0.02; an empty
# overview table by 0.12, a blank page by 0.11, another check's chart by 0.17
GROSS_CHANGE = 0.08

# how many pixels of a chart's canvas differ from its top-left (background) pixel
_INKED_PIXELS = """(canvas) => {
  const ctx = canvas.getContext("2d");
  const { data } = ctx.getImageData(0, 0, canvas.width, canvas.height);
  let inked = 0;
  for (let i = 0; i < data.length; i += 4) {
    for (let k = 0; k < 4; k++) if (data[i + k] !== data[k]) { inked++; break; }
  }
  return inked;
}"""

_DIFFERENCE = """async ([a, b]) => {
  const load = (src) => new Promise((ok, fail) => {
    const i = new Image(); i.onload = () => ok(i); i.onerror = fail; i.src = src;
  });
  const W = 128, CELL = 8;
  const shrink = (img) => {
    const h = Math.max(CELL, Math.round(img.height * W / img.width));
    const c = document.createElement("canvas"); c.width = W; c.height = h;
    const ctx = c.getContext("2d"); ctx.drawImage(img, 0, 0, W, h);
    return { h, px: ctx.getImageData(0, 0, W, h).data };
  };
  const [x, y] = (await Promise.all([load(a), load(b)])).map(shrink);
  if (Math.abs(x.h - y.h) > Math.max(x.h, y.h) * 0.25) return 1;
  const h = Math.min(x.h, y.h);
  let worst = 0;
  for (let cy = 0; cy + CELL <= h; cy += CELL) for (let cx = 0; cx < W; cx += CELL) {
    let sum = 0;
    for (let py = cy; py < cy + CELL; py++) for (let px = cx; px < cx + CELL; px++) {
      const i = (py * W + px) * 4;
      for (let k = 0; k < 3; k++) sum += Math.abs(x.px[i + k] - y.px[i + k]);
    }
    worst = Math.max(worst, sum / (CELL * CELL * 3 * 255));
  }
  return worst;
}"""


def _report_data(page: Page) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(page.page.locator("#report-data").text_content())
    return data


def _draw_every_chart(page: Page) -> list[Any]:
    """Scroll each chart into view (they are drawn when near the viewport) and wait for it."""
    charts = page.page.locator(".chart").all()
    for chart in charts:
        chart.scroll_into_view_if_needed()
        chart.locator("canvas").wait_for()
    page.page.wait_for_function(
        "() => [...document.querySelectorAll('.chart')].every((c) => c.dataset.rendered === '1')"
    )
    return charts


def _show_chart(page: Page, check_id: str) -> Any:
    """Scroll one check's chart into view and wait until it is drawn."""
    chart = page.page.locator(f".chart[data-id='{check_id}']")
    chart.scroll_into_view_if_needed()
    page.page.wait_for_function(
        f"() => document.querySelector(\".chart[data-id='{check_id}']\").dataset.rendered === '1'"
    )
    return chart


def _visible_rows(page: Page) -> list[str]:
    rows = page.page.locator("#overview-rows tr.row:not(.hidden)").all()
    return [r.get_attribute("data-id") or "" for r in rows]


def _select(page: Page, control: str, value: str) -> None:
    page.page.select_option(control, value)


def _compare(page: Page, name: str, shot: bytes) -> None:
    """Keep the screenshot as an artifact and compare it with the committed reference, coarsely."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / name).write_bytes(shot)
    reference = REFERENCE / name
    if not reference.exists():
        if IN_CI:
            pytest.fail(f"no reference screenshot {reference}; look at {SCREENSHOTS / name} and commit it")
        reference.parent.mkdir(parents=True, exist_ok=True)
        reference.write_bytes(shot)
        pytest.skip(f"!!! SKIPPED: wrote the first reference {reference}: look at it and commit it")

    def uri(data: bytes) -> str:
        return "data:image/png;base64," + base64.b64encode(data).decode()

    change = page.page.evaluate(_DIFFERENCE, [uri(shot), uri(reference.read_bytes())])
    assert change < GROSS_CHANGE, (
        f"{name} differs from {reference} by {change:.3f} (a cell changed by more than {GROSS_CHANGE}); "
        f"look at {SCREENSHOTS / name} and, if the change is intended, copy it over the reference"
    )


def test_the_report_needs_no_network_and_says_no_error(report_page: Page, demo_report: DemoReport) -> None:
    _draw_every_chart(report_page)
    report_page.page.click("#theme")  # every chart drawn again in the other theme
    assert report_page.page.evaluate("() => document.documentElement.dataset.theme") == "dark"
    _draw_every_chart(report_page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / "dark.png").write_bytes(report_page.page.screenshot(full_page=True))
    assert report_page.requests == []
    assert report_page.errors == []
    assert demo_report.size < 400_000  # small enough to mail: the whole file, charting library included


def test_every_chart_is_drawn_with_its_band_and_alerts(report_page: Page) -> None:
    data = _report_data(report_page)
    expected = [c for c in data["checks"] if c["chart"]]
    charts = _draw_every_chart(report_page)
    assert len(charts) == len(expected) >= 5
    for chart in charts:
        canvas = chart.locator("canvas")
        box = canvas.bounding_box()
        assert box is not None and box["width"] > 150 and box["height"] > 100
        assert canvas.evaluate(_INKED_PIXELS) > 500, chart.get_attribute("data-id")
    firing = [c for c in expected if c["state"] == "FIRING" and c["chart"]["anomaly"][-1]]
    assert firing, "the demo's broken load must show as an alerted point"
    assert any(v is not None for c in firing for v in c["chart"]["upper"])


def test_hovering_a_point_explains_it(report_page: Page) -> None:
    data = _report_data(report_page)
    check = next(c for c in data["checks"] if c["metric"] == "rows_per_period" and c["table"] == "orders")
    chart = _show_chart(report_page, check["id"])
    over = chart.locator(".u-over")
    box = over.bounding_box()
    assert box is not None
    report_page.page.mouse.move(box["x"] + box["width"] - 1, box["y"] + box["height"] / 2)
    tip = chart.locator(".tooltip")
    tip.wait_for(state="visible")
    text = tip.inner_text()
    assert "value 5" in text and "expected" in text and "range" in text
    assert check["reason"] in text  # the latest point says what the alert said


def test_filters_and_search_narrow_the_overview_and_the_cards(report_page: Page) -> None:
    data = _report_data(report_page)
    everything = [c["id"] for c in data["checks"]]
    assert _visible_rows(report_page) == everything

    _select(report_page, "#f-state", "FIRING")
    firing = [c["id"] for c in data["checks"] if c["state"] == "FIRING"]
    assert _visible_rows(report_page) == firing and 0 < len(firing) < len(everything)
    cards = report_page.page.locator("#cards .card:not(.hidden)").all()
    assert [c.get_attribute("id") for c in cards] == [f"check-{i}" for i in firing]

    report_page.page.fill("#search", "customers")
    both = [c["id"] for c in data["checks"] if c["state"] == "FIRING" and c["table"] == "customers"]
    assert _visible_rows(report_page) == both and both
    assert report_page.page.locator("#shown").inner_text() == f"{len(both)} of {len(everything)} checks"

    _select(report_page, "#f-state", "")
    report_page.page.fill("#search", "")
    _select(report_page, "#f-tag", "tier-1")
    assert _visible_rows(report_page) == everything  # every demo check carries the source's tags
    _select(report_page, "#f-owner", "@shop-data")
    _select(report_page, "#f-source", "shop")
    assert _visible_rows(report_page) == everything


def test_readable_on_a_phone(report_page: Page) -> None:
    report_page.page.set_viewport_size({"width": 390, "height": 844})
    charts = _draw_every_chart(report_page)
    overflow = report_page.page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than a phone's screen"
    for chart in charts:
        box = chart.locator("canvas").bounding_box()
        assert box is not None and box["width"] <= 390
    report_page.page.set_viewport_size({"width": 1280, "height": 900})


def test_screenshots_of_the_overview_and_of_an_alert(report_page: Page) -> None:
    assert report_page.page.evaluate("() => document.documentElement.dataset.theme") == "light"
    _compare(report_page, "overview.png", report_page.page.screenshot())
    data = _report_data(report_page)
    alert = next(c for c in data["checks"] if c["state"] == "FIRING" and c["metric"] == "rows_per_period")
    _show_chart(report_page, alert["id"])
    card = report_page.page.locator(f"#check-{alert['id']}")
    report_page.page.mouse.move(0, 0)
    _compare(report_page, "alert.png", card.screenshot())
