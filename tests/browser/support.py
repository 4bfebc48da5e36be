"""What the browser tests share: where chromium is, where screenshots go, what a page recorded."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
