"""`driftguard run` as an operator runs it: a config file, a fresh SQLite state, a child process whose
wall time and peak memory are measured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from bench.perf.report import REPO, VENV_BIN, Measured, run_measured

BYTECODE_CACHE = REPO / ".bench" / "pycache"


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


def run_command(config: Path, at: datetime, *options: str) -> list[str]:
    """`driftguard -c CONFIG run --at AT --json --fail-on never [OPTIONS]`: a benchmark measures
    runs; what they find is no failure of the process (failures still exit 3)."""
    driftguard = str(VENV_BIN / "driftguard")
    return [
        driftguard,
        "-c",
        str(config),
        "run",
        "--at",
        at.isoformat(),
        "--json",
        "--fail-on",
        "never",
        *options,
    ]


def installed_env(config: Path, at: datetime) -> dict[str, str]:
    """The environment of DriftGuard's processes as `pip install driftguard` leaves it: compiled
    bytecode to read. This checkout is an editable install run with PYTHONDONTWRITEBYTECODE=1, so
    each process would compile DriftGuard's modules from source (about 0.1 s), which no installed
    CLI does: pip compiles a package's modules when it installs it, as it did Soda Core's. The
    bytecode goes to a cache of its own (PYTHONPYCACHEPREFIX=.bench/pycache; with a prefix Python
    reads no other bytecode, so it must hold the libraries' too), written here by compiling the
    package and by one dry run of `config` at `at` (it stores and sends nothing), then only read."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(BYTECODE_CACHE)
    package = str(REPO / "layers" / "driftguard")
    subprocess.run([sys.executable, "-m", "compileall", "-q", package], env=env, check=True)
    subprocess.run(run_command(config, at, "--dry-run"), env=env, check=True, capture_output=True)
    return {**env, "PYTHONDONTWRITEBYTECODE": "1"}


def driftguard_run(
    config: Path, at: datetime, env: dict[str, str] | None = None
) -> tuple[Measured, dict[str, Any]]:
    """`driftguard -c CONFIG run --at AT --json` in a child process; its JSON document. `env`: the
    child's environment (default: this one, compiling DriftGuard's modules from source)."""
    done = run_measured(run_command(config, at), env=env or {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    done.check("driftguard run")
    return done, json.loads(done.stdout)


def tables_checked(document: dict[str, Any]) -> int:
    """How many tables the runs of a `run --json` document collected."""
    return sum(
        len({f["key"]["table"] for f in run["findings"] if f["key"]["table"]}) for run in document["runs"]
    )
