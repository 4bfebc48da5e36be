"""What the report tests share: the demo's story on any store, the data a report embeds, where
chromium is, where screenshots go, what a page recorded."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from driftguard.config import Config, load_config
from driftguard.demo import break_things, build_database, demo_clock, demo_paths, write_config
from driftguard.engine import Engine
from driftguard.store import open_store

CHROMIUM = os.environ.get("DRIFTGUARD_TEST_CHROMIUM", "/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# what a CI run keeps as artifacts (the repository's .driftguard/, as `make demo` uses)
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".driftguard" / "report-screenshots"


@dataclass
class DemoReport:
    path: Path
    config: Path
    size: int


@dataclass
class Page:
    """A page of the report with what it said on the console and every request it tried."""

    page: Any
    url: str
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


@dataclass
class Demo:
    config: Config
    config_path: Path
    state: Path
    now: datetime


def run_demo(directory: Path, store_url: str | None = None) -> Demo:
    """The demo's story (two runs around a broken load), on SQLite or on the store given."""
    paths = demo_paths(directory)
    now = demo_clock(datetime(2026, 12, 2, 9, tzinfo=UTC))
    build_database(paths, now)
    write_config(paths)
    config = load_config(paths.config)
    config = config.model_copy(update={"channels": [c for c in config.channels if c.type == "file"]})
    store = open_store(store_url or str(paths.state))
    try:
        engine = Engine(config, store)
        engine.check("shop", now - timedelta(hours=1))
        break_things(paths, now)
        engine.check("shop", now)
    finally:
        store.close()
    return Demo(config, paths.config, paths.state, now)


def embedded(html: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S)
    assert match is not None
    data: dict[str, Any] = json.loads(match.group(1))
    return data
