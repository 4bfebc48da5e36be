"""One self-contained HTML file from a Report: uPlot, the page's script and styles and the data are
inlined, the fonts are the system's, and a Content-Security-Policy forbids every network request, so
the file opens the same from a mail attachment, a laptop without network or an S3 link.

Charts: uPlot (MIT, github.com/leeoniya/uPlot), vendored in report/static with its licence: 51 kB
minified against 4.8 MB for the plotly wheel's plotly.min.js, so a report of 100 checks still fits
in a mail, and it draws 8 weeks of hourly points on a canvas in milliseconds (docs/report.md).
"""

from __future__ import annotations

import html
import json
from functools import cache
from importlib.resources import files
from pathlib import Path

from driftguard.report.model import Report

UPLOT_VERSION = "1.6.32"  # report/static/uPlot.iife.min.js; see static/README.md to update it

_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data:; font-src data:; connect-src 'none'; form-action 'none'; base-uri 'none'"
)

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="generator" content="DriftGuard (charts: uPlot {uplot_version})">
<title>{title}</title>
<style>{uplot_css}</style>
<style>{css}</style>
</head>
<body>
<main>
<header class="top">
  <h1 id="title">{title}</h1>
  <button id="theme" type="button" aria-label="Switch between light and dark theme">Light / dark</button>
  <div id="meta" class="meta"></div>
</header>
<div id="notes"></div>
<noscript><p>This report draws its tables and charts with JavaScript: allow scripts to see them.</p>
</noscript>
<section aria-labelledby="h-overview">
  <h2 id="h-overview">Overview <span id="shown" class="muted"></span></h2>
  <div id="sources"></div>
  <div class="filters">
    <label>State <select id="f-state"><option value="">all</option></select></label>
    <label>Source <select id="f-source"><option value="">all</option></select></label>
    <label>Owner <select id="f-owner"><option value="">all</option></select></label>
    <label>Tag <select id="f-tag"><option value="">all</option></select></label>
    <label class="search">Search
      <input id="search" type="search" placeholder="table, metric, reason ..."></label>
  </div>
  <div class="table-wrap"><table>
    <thead><tr><th class="wide">Source</th><th>Table</th><th>Check</th><th>State</th>
      <th class="wide">Since</th><th class="wide">Owner</th><th class="wide">Tags</th></tr></thead>
    <tbody id="overview-rows"></tbody>
  </table></div>
</section>
<section aria-labelledby="h-checks"><h2 id="h-checks">Checks</h2>
  <div id="cards" class="cards"></div></section>
<section aria-labelledby="h-schema"><h2 id="h-schema">Schema changes</h2><div id="schema"></div></section>
<section aria-labelledby="h-notices"><h2 id="h-notices">Recent alerts raised and resolved</h2>
  <div id="notices"></div></section>
<section aria-labelledby="h-pending"><h2 id="h-pending">Waiting in the outbox</h2>
  <div id="pending"></div></section>
<section aria-labelledby="h-parked"><h2 id="h-parked">Parked deliveries</h2><div id="parked"></div></section>
</main>
<script type="application/json" id="report-data">{data}</script>
<script>{uplot_js}</script>
<script>{js}</script>
</body>
</html>
"""


@cache
def _asset(name: str) -> str:
    return (files("driftguard.report") / "static" / name).read_text(encoding="utf-8")


def _script_safe_json(value: object) -> str:
    """JSON that cannot end the <script> element it sits in, whatever a table or reason contains."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def render_html(report: Report) -> str:
    return _PAGE.format(
        csp=_CSP,
        uplot_version=UPLOT_VERSION,
        title=html.escape(report.title),
        uplot_css=_asset("uPlot.min.css"),
        css=_asset("report.css"),
        data=_script_safe_json(report.to_json()),
        uplot_js=_asset("uPlot.iife.min.js"),
        js=_asset("report.js"),
    )


def write_report(report: Report, path: Path) -> int:
    """Write the HTML file (replacing it whole, never half-written); returns its size in bytes."""
    text = render_html(report).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(text)
    partial.replace(path)
    return len(text)
