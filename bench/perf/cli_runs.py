"""`driftguard run` as an operator runs it: a config file, a fresh SQLite state, a child process whose
wall time and peak memory are measured."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from bench.perf.report import VENV_BIN, Measured, run_measured


def write_config(directory: Path, sources: list[dict[str, Any]]) -> Path:
    """A config of `sources` whose state and notifications stay in `directory`."""
    config = {
        "version": 1,
        "sources": sources,
        "channels": [{"name": "file", "type": "file", "path": str(directory / "notifications.jsonl")}],
        "route": {"receivers": ["file"]},
        "state": {"path": str(directory / "state.db")},
    }
    path = directory / "driftguard.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def driftguard_run(config: Path, at: datetime) -> tuple[Measured, dict[str, Any]]:
    """`driftguard -c CONFIG run --at AT --json` in a child process; its JSON document."""
    command = [str(VENV_BIN / "driftguard"), "-c", str(config), "run", "--at", at.isoformat(), "--json"]
    done = run_measured(command, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    done.check("driftguard run")
    return done, json.loads(done.stdout)


def tables_checked(document: dict[str, Any]) -> int:
    """How many tables the runs of a `run --json` document collected."""
    return sum(
        len({f["key"]["table"] for f in run["findings"] if f["key"]["table"]}) for run in document["runs"]
    )
