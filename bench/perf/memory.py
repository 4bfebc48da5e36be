"""Peak memory of the check and notify functions' paths with a large config: 10,000 sources x 20
tables (quick: 1,000 x 20), the config written as the stack ships it to each function.

.venv/bin/python -m bench.perf.memory [--quick] [--json PATH]

Each path runs in a fresh interpreter with a Lambda's environment and reports its own peak RSS
(VmHWM: wait4's figure would include the image of the benchmark process it was forked from). No AWS
call is made (clients are built, never used).

(a) The functions' config paths:
- floor: the runtime over a config without sources;
- check, as shipped: the config without sources, the plan and one slice per source
  (`driftguard-sources/NAME.json`): a `plan` from the shipped plan, one source's slice, then the
  modules a check imports (engine, collector, SQLAlchemy, pg8000);
- check, as shipped, 200 different sources' slices read in turn (the container keeps the last
  lambda_runtime.SLICE_CACHE_SIZE): memory must not grow with the sources a container has checked;
- notify: the config without sources (as shipped) and a channel adapter;
- before: the whole config in one file, as the check function loaded it until slices (the
  10,000-source figure takes about 75 s and 1.5 GB).
(b) A check's working memory per table (what infra/constructs/memory.py calls CHECK_MB_PER_TABLE):
the engine checking one SQLite source of 20 and of 100 tables (one week of hourly rows each; volume,
freshness and schema checks) on a local SQLite state, twice an hour apart (backfill, then steady).
The difference of the two peaks over the 80 extra tables is the per-table cost.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.perf.cli_runs import write_config
from bench.perf.fleet import generated_config
from bench.perf.report import Report, main, run_measured
from driftguard.config import Config, compile_config, compile_source
from driftguard.contracts import CheckEnvironment
from driftguard.schedules import plan_fleet, plan_index

# The names infra/constructs/assets.py gives the shipped files (not imported: it starts the CDK's
# Node.js runtime, seconds and warnings for three strings).
CONFIG_FILE_NAME = "driftguard.json"
PLAN_FILE_NAME = "driftguard-plan.json"
SLICES_DIR_NAME = "driftguard-sources"

_PLAN = (
    "group = next(iter(json.loads(Path(os.environ['DRIFTGUARD_PLAN']).read_text())))\n"
    "cadence, shard = group.rsplit('-', 1)\n"
    "event = {'cadence': cadence, 'shard': int(shard), 'scheduled_time': '2026-12-07T12:00:00Z'}\n"
    "first = lambda_runtime.plan(rt, event)['servers'][0]['sources'][0]['source']\n"
)
_CHECK_MODULES = (
    "import driftguard.engine, driftguard.collect.collector, sqlalchemy, pg8000\n"
    "driftguard.engine.Engine(rt.source_config(first), rt.store, secrets=rt.secrets)\n"
)

PATHS = {
    "floor: the runtime over a config without sources": ("empty", ""),
    "check, as shipped: plan, one source's slice, a check's modules": (
        "sliced",
        _PLAN + "loaded = rt.source_config(first)\n" + _CHECK_MODULES,
    ),
    "check, as shipped: 200 sources' slices in turn": (
        "sliced",
        _PLAN
        + "for name in rt.slices.names()[:200]:\n    loaded = rt.source_config(name)\n"
        + _CHECK_MODULES,
    ),
    "notify: the config without sources (as shipped), then a channel adapter": (
        "empty",
        "from driftguard import notify as channels\n"
        "topic = 'arn:aws:sns:eu-west-1:1:t'\n"
        "channels.build_channel(rt.config.channels[0], secrets=rt.secrets, default_topic_arn=topic)\n",
    ),
    "before slices: the whole config in one file, then a plan": (
        "whole",
        _PLAN + "loaded = rt.config\nrt.config.source(first)\n",
    ),
}

PROBE = """
import json, os, sys
from pathlib import Path
from driftguard import lambda_runtime
rt = lambda_runtime.runtime()
loaded = rt.config
{body}
# VmHWM: this process's own peak (wait4's ru_maxrss would count the forked parent's image too)
peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(len(loaded.sources), peak_kb)
"""


def _write(directory: Path, config: Config, *, sliced: bool) -> dict[str, str]:
    """The files the stack ships (infra/constructs/common.py, ShippedConfig) and the check
    function's environment as the stack sets it (driftguard.contracts)."""
    directory.mkdir()
    shipped = config.model_copy(update={"sources": []}) if sliced else config
    (directory / CONFIG_FILE_NAME).write_text(compile_config(shipped))
    (directory / PLAN_FILE_NAME).write_text(plan_index(plan_fleet(config).groups))
    if sliced:
        (directory / SLICES_DIR_NAME).mkdir()
        for source in config.sources:
            (directory / SLICES_DIR_NAME / f"{source.name}.json").write_text(compile_source(source))
    environment = CheckEnvironment.model_validate(
        {
            "config_file": str(directory / CONFIG_FILE_NAME),
            "plan_file": str(directory / PLAN_FILE_NAME),
            "config_slices": str(directory / SLICES_DIR_NAME) if sliced else None,
            "state_table": "driftguard-state",
            "idempotency_table": "driftguard-idempotency",
            "service": "driftguard-bench",
        }
    )
    return {
        **os.environ,
        **environment.variables(),
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }


def _megabytes(path: Path) -> float:
    return sum(p.stat().st_size for p in ([path] if path.is_file() else path.rglob("*.json"))) / 1e6


def config_paths(report: Report, sources: int) -> None:
    config = generated_config(sources, None)
    with tempfile.TemporaryDirectory() as tmp:
        envs = {
            "empty": _write(Path(tmp) / "empty", config.model_copy(update={"sources": []}), sliced=False),
            "sliced": _write(Path(tmp) / "sliced", config, sliced=True),
            "whole": _write(Path(tmp) / "whole", config, sliced=False),
        }
        sliced = Path(tmp) / "sliced"
        slice_kb = max(p.stat().st_size for p in (sliced / SLICES_DIR_NAME).iterdir()) / 1e3
        table = report.table(
            f"(a) peak RSS of one fresh interpreter per path (whole config "
            f"{_megabytes(Path(tmp) / 'whole' / CONFIG_FILE_NAME):.1f} MB; as shipped to the check function: "
            f"{_megabytes(sliced / CONFIG_FILE_NAME) * 1e3:.1f} kB without sources, largest slice "
            f"{slice_kb:.1f} kB, plan {_megabytes(sliced / PLAN_FILE_NAME):.2f} MB)",
            "path",
            "peak RSS MB",
            "sources in the config used",
            "seconds",
        )
        for name, (layout, body) in PATHS.items():
            done = run_measured([sys.executable, "-c", PROBE.format(body=body)], env=envs[layout]).check(name)
            loaded, peak_kb = done.stdout.split()[-2:]
            table.add(name, round(int(peak_kb) / 1024, 1), int(loaded), round(done.wall_s, 2))


WORKING_SET_PROBE = """
import sys
from datetime import datetime, timedelta
from driftguard.config import load_config
from driftguard.engine import Engine
from driftguard.store.sqlite import SqliteStore
config = load_config(sys.argv[1])
store = SqliteStore(config.state.path)
at = datetime.fromisoformat(sys.argv[2])
engine = Engine(config, store)
for hours in (0, 1):
    run = engine.check("wide", at + timedelta(hours=hours)).run
    assert run.status.value != "failed", run.error
peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(peak_kb)
"""


def _wide_source(directory: Path, tables: int, at: datetime) -> Path:
    """A config of one SQLite source of `tables` tables, a week of hourly rows each."""
    database = directory / "wide.db"
    with sqlite3.connect(database) as conn:
        rows = [((at - timedelta(hours=h)).isoformat(sep=" "), h % 7) for h in range(24 * 7)]
        for t in range(tables):
            conn.execute(f"create table t{t:03d} (created_at timestamp, amount integer)")
            conn.executemany(f"insert into t{t:03d} values (?, ?)", rows)  # noqa: S608 (names made here)
    checks = {"volume": {"column": "created_at", "period": "1h"}, "freshness": {"column": "created_at"}}
    source = {
        "name": "wide",
        "kind": "sqlite",
        "connection": {"path": str(database)},
        "tables": [{"name": f"t{t:03d}", "checks": {**checks, "schema": True}} for t in range(tables)],
    }
    return write_config(directory, [source])


def working_set(report: Report) -> None:
    at = datetime(2026, 12, 7, 12, tzinfo=UTC)
    peaks: dict[int, float] = {}
    table = report.table(
        "(b) a check's peak RSS by tables in its source (SQLite source, local state, backfill then steady)",
        "tables",
        "peak RSS MB",
        "seconds",
    )
    for tables in (20, 100):
        with tempfile.TemporaryDirectory() as tmp:
            config = _wide_source(Path(tmp), tables, at)
            command = [sys.executable, "-c", WORKING_SET_PROBE, str(config), at.isoformat()]
            done = run_measured(command).check(f"a check of {tables} tables")
            peaks[tables] = int(done.stdout.split()[-1]) / 1024
            table.add(tables, round(peaks[tables], 1), round(done.wall_s, 2))
    report.notes.append(
        f"per table of a checked source: {(peaks[100] - peaks[20]) / 80:.2f} MB "
        "((peak at 100 tables - peak at 20) / 80)"
    )


def run(quick: bool = False) -> Report:
    sources = 1_000 if quick else 10_000
    report = Report(f"Function memory with {sources:,} sources x 20 tables", quick)
    config_paths(report, sources)
    working_set(report)
    report.notes.append(
        "the check function ships the config without sources, the plan and one slice per source, and "
        "reads only the slice of the source it checks; the notify function ships the config without "
        "sources (infra/constructs/memory.py sizes both from these figures)"
    )
    return report


def entry(argv: list[str] | None = None) -> int:
    return main(run, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(entry())
