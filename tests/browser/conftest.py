"""The report as a person sees it: the demo's state, written as HTML, opened in Debian's chromium.

Playwright drives /usr/bin/chromium (installed by .ci/run); it never downloads a browser. Outside
CI a missing chromium or Playwright skips these tests with a loud reason; under CI=true it fails.
Every request the page makes is recorded (and refused): the report must need no network.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from tests.browser.support import CHROMIUM, IN_CI, DemoReport, Page

from driftguard.cli import main

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # CI runs as root, where chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _missing(what: str) -> None:
    msg = f"{what}; the browser tests need it (.ci/run installs chromium: apt-get install chromium)"
    if IN_CI:
        pytest.fail(f"CI=true but {msg}", pytrace=False)
    pytest.skip(f"!!! SKIPPED: {msg}")


@pytest.fixture(scope="session")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> DemoReport:
    """`make demo`'s two steps: the demo's state, then its report."""
    directory = tmp_path_factory.mktemp("demo")
    runner = CliRunner()
    built = runner.invoke(main, ["demo", "--dir", str(directory)])
    assert built.exit_code == 0, built.output
    config = directory / "driftguard-demo.yaml"
    out = directory / "report.html"
    written = runner.invoke(main, ["-c", str(config), "report", "--output", str(out)])
    assert written.exit_code == 0, written.output
    return DemoReport(out, config, out.stat().st_size)


@pytest.fixture(scope="session")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not shutil.which(CHROMIUM):
        _missing(f"{CHROMIUM} is not installed")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed (pip install -e '.[dev]')")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),  # a fresh profile every session
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900},
            service_workers="block",
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def report_page(browser_context: Any, demo_report: DemoReport) -> Iterator[Page]:
    url = demo_report.path.as_uri()
    page = browser_context.new_page()
    page.add_init_script("try { localStorage.removeItem('driftguard-theme'); } catch (e) {}")  # light first
    opened = Page(page, url)

    def on_request(route: Any) -> None:
        if route.request.url != url:
            opened.requests.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    page.route("**/*", on_request)
    page.on("console", lambda m: opened.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: opened.errors.append(str(e)))
    page.on("requestfailed", lambda r: opened.requests.append(r.url) if r.url != url else None)
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']")
    try:
        yield opened
    finally:
        page.close()
