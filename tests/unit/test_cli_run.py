"""`driftguard run`'s fan-out: outcomes come back in plan order, with or without the progress bar
(shown only on a terminal, for more than three sources, and never with --json)."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from rich.console import Console

from driftguard.cli.common import CliContext
from driftguard.cli.monitor import _run_plan

AT = datetime(2026, 3, 10, 12, tzinfo=UTC)


class SlowFirstEngine:
    """Finishes the plan's sources in reverse order, so completion order is not plan order: each
    check waits for the next one in the plan to finish (so it needs a worker per source)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.lock = threading.Lock()
        self.checked: list[str] = []
        self.done = [threading.Event() for _ in range(count)]

    def check(self, name: str, when: datetime, *, dry_run: bool) -> Any:
        i = int(name[1:])
        if i + 1 < self.count:
            assert self.done[i + 1].wait(timeout=60)
        with self.lock:
            self.checked.append(name)
        self.done[i].set()
        return (name, when, dry_run)


@pytest.mark.parametrize("terminal", [True, False])
@pytest.mark.parametrize("quiet", [True, False])
def test_outcomes_come_back_in_plan_order(terminal: bool, quiet: bool) -> None:
    stderr = io.StringIO()
    cli = CliContext(config_path="unused.yaml", _err_console=Console(file=stderr, force_terminal=terminal))
    plan = [(f"s{i}", AT) for i in range(5)]
    engine = SlowFirstEngine(len(plan))
    outcomes = _run_plan(cli, engine, plan, workers=5, dry_run=True, quiet=quiet)  # type: ignore[arg-type]
    assert outcomes == [(name, AT, True) for name, _ in plan]
    assert engine.checked == [name for name, _ in reversed(plan)]
    assert ("checking" in stderr.getvalue()) == (terminal and not quiet)


def test_the_cli_imports_no_rich_until_it_prints_for_people() -> None:
    probe = "import sys, driftguard.cli; print(sorted(m for m in sys.modules if m.split('.')[0] == 'rich'))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
