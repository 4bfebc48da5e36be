"""DriftGuard against Soda Core: the same row count, freshness and schema checks on the same tables.

.venv/bin/python -m bench.perf.soda [--quick] [--json PATH]

120 PostgreSQL tables, then 500 (quick: 10 only) of 10,080 rows each, in a schema of their own per
size, with no index on the timestamp columns. Soda Core (soda-core and soda-postgres pinned to
SODA_VERSION, installed by this benchmark into .bench/soda-venv, a virtualenv of its own, telemetry
off) verifies one data contract per table (`schema` with the four columns and their types,
`row_count`, `freshness` of updated_at under 24 hours), three ways:
- its documented Python path, `verify_contract_locally(data_source_file_path=..., contract_file_path=...)`
  once per contract in one process (each call opens its own connection): the budgets compare with this;
- the fastest way we found, every contract through ONE open data source in one process;
- what users script: one `soda contract verify` process per contract (the smaller size only: it is slow).
DriftGuard runs `driftguard run` on one source of the same tables: `volume: {exact: true}` (a
count(*), as Soda's row_count; DriftGuard's default reads planner statistics instead), `freshness:
{column: updated_at, max_age: 24h}`, `schema: {expected: [...]}`. DriftGuard's first run also
backfills each table's history (once per table), so both its first and its steady runs are shown;
every tool starts a fresh interpreter each time, and reads compiled bytecode as a pip install leaves
it (`cli_runs.installed_env`: this checkout's editable install would otherwise compile DriftGuard
from source in every process). Medians of repeats, interleaved. With two sizes, a last table gives
each tool's cost per further table (the difference of its median walls over the difference in
tables): start-up cancels out, so its ratio is the one a large estate tends to.
The raw SQL floor is what the checks must ask at least: a fresh interpreter with pg8000 alone, one
connection, one catalog read and one count-and-latest aggregate per table; the steady run is budgeted
against it at the larger size.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

from bench.perf import pg
from bench.perf.cli_runs import driftguard_run, installed_env, tables_checked, write_config
from bench.perf.report import REPO, Budget, Measured, Report, Unavailable, main, run_measured, spread

SODA_VENV = REPO / ".bench" / "soda-venv"
SODA_VERSION = "4.28.0"  # pinned: figures are comparable across runs only on one version
SODA_PACKAGES = (f"soda-core=={SODA_VERSION}", f"soda-postgres=={SODA_VERSION}")
DATA_SOURCE = "bench_pg"
HOURS = 840  # 10,080 rows a table
BUDGET_SPEEDUP = 3.0  # steady run against Soda's documented path, at the smaller size
BUDGET_PER_TABLE = 5.0  # cost per further table against Soda's documented path
BUDGET_FIRST_RUN = 1.0  # the first run (with its backfill) no slower than Soda's documented path
BUDGET_FLOOR = 1.5  # the steady run against the raw SQL floor, at the larger size
COLUMNS = (
    ("id", "bigint"),
    ("created_at", "timestamptz"),
    ("updated_at", "timestamptz"),
    ("amount", "numeric"),
)
SODA_TYPES = {"timestamptz": "timestamp with time zone"}  # how Soda names PostgreSQL's types

# Runs in Soda's virtualenv, outcomes counted. argv: mode ("documented" | "shared"), data source, contracts.
# documented: verify_contract_locally with the data source file, as Soda's docs show (a connection a
# contract); shared: every contract through one data source opened once.
SODA_DRIVER = r"""
import collections, json, sys
from soda_core.common.data_source_impl import DataSourceImpl
from soda_core.common.yaml import DataSourceYamlSource
from soda_core.contracts.api.verify_api import verify_contract_locally

mode, data_source_path, *contracts = sys.argv[1:]
outcomes = collections.Counter()
shared = None
if mode == "shared":
    shared = DataSourceImpl.from_yaml_source(DataSourceYamlSource.from_file_path(data_source_path))
    shared.open_connection()
for contract in contracts:
    if shared is None:
        session = verify_contract_locally(data_source_file_path=data_source_path, contract_file_path=contract)
    else:
        session = verify_contract_locally(data_sources=[shared], contract_file_path=contract)
    for result in session.contract_verification_results:
        outcomes.update(r.outcome.name for r in result.check_results)
if shared is not None:
    shared.close_connection()
print(json.dumps(outcomes))
"""


def soda_python(install: bool) -> tuple[Path, str]:
    """Soda's interpreter and the versions installed in it; installs them first if asked and missing."""
    python = SODA_VENV / "bin" / "python"
    probe = [
        str(python),
        "-c",
        "import importlib.metadata as m; print(m.version('soda-core'), m.version('soda-postgres'))",
    ]
    if not python.exists() or subprocess.run(probe, capture_output=True).returncode != 0:
        if not install:
            raise Unavailable(f"Soda Core is not installed in {SODA_VENV} (installation not requested)")
        steps = (
            [os.environ.get("PYTHON_FOR_SODA", "python3"), "-m", "venv", "--clear", str(SODA_VENV)],
            [str(python), "-m", "pip", "install", "--quiet", "--upgrade", *SODA_PACKAGES],
        )
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True)
            if done.returncode != 0:
                tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-8:])
                raise Unavailable(f"installing Soda Core failed ({' '.join(step)}):\n{tail}")
    done = subprocess.run(probe, capture_output=True, text=True, check=True)
    core, postgres = done.stdout.split()
    return python, f"soda-core {core}, soda-postgres {postgres}"


def soda_files(directory: Path, schema: str, names: list[str]) -> list[Path]:
    """Soda's data source file and one contract per table; returns [data source, *contracts]."""
    data_source = directory / "soda-data-source.yml"
    connection = {"host": pg.HOST, "port": pg.PORT, "user": pg.USER, "database": pg.DATABASE}
    connection["password"] = "unused-trust-auth"  # soda-postgres requires one; the server trusts loopback
    data_source.write_text(
        yaml.safe_dump({"type": "postgres", "name": DATA_SOURCE, "connection": connection})
    )
    contracts = []
    for name in names:
        contract = {
            "dataset": f"{DATA_SOURCE}/{pg.DATABASE}/{schema}/{name}",
            "columns": [{"name": c, "data_type": SODA_TYPES.get(t, t)} for c, t in COLUMNS],
            "checks": [
                {"schema": None},
                {"row_count": None},
                {
                    "freshness": {
                        "column": "updated_at",
                        "threshold": {"unit": "hour", "must_be_less_than": 24},
                    }
                },
            ],
        }
        path = directory / f"contract-{name}.yml"
        path.write_text(yaml.safe_dump(contract, sort_keys=False))
        contracts.append(path)
    return [data_source, *contracts]


def driftguard_tables(names: list[str]) -> list[dict[str, Any]]:
    expected = [{"name": c, "type": t} for c, t in COLUMNS]
    checks = {
        "volume": {"exact": True},
        "freshness": {"column": "updated_at", "max_age": "24h"},
        "schema": {"expected": expected},
    }
    return [{"name": n, "checks": checks} for n in names]


def startup(python: Path, imports: str, env: dict[str, str] | None = None) -> float:
    """Wall seconds of a fresh interpreter importing what the tool imports before it checks anything."""
    return run_measured([str(python), "-c", imports], env=env).check(imports).wall_s


SODA_IMPORTS = "import soda_core.contracts.api.verify_api, soda_core.common.data_source_impl"
# The raw SQL floor: what the three checks must ask of the server at least, from a fresh interpreter
# with the driver alone, on one connection: one catalog read for every table's columns, then one
# aggregate (count and latest update) per table. argv: host, port, user, database, schema, tables.
SQL_FLOOR_DRIVER = r"""
import json, sys
import pg8000.dbapi
host, port, user, database, schema, *tables = sys.argv[1:]
connection = pg8000.dbapi.connect(host=host, port=int(port), user=user, database=database)
cursor = connection.cursor()
cursor.execute(
    "select table_name, column_name, data_type from information_schema.columns where table_schema = %s",
    (schema,),
)
columns = len(cursor.fetchall())
counted = 0
for table in tables:
    cursor.execute(f'select count(*), max(updated_at) from "{schema}"."{table}"')
    count, latest = cursor.fetchone()
    counted += count > 0 and latest is not None
connection.close()
print(json.dumps({"tables with rows": counted, "columns": columns}))
"""


def run_sql_floor(schema: str, names: list[str]) -> tuple[Measured, dict[str, int]]:
    command = [sys.executable, "-c", SQL_FLOOR_DRIVER, pg.HOST, str(pg.PORT), pg.USER, pg.DATABASE, schema]
    done = run_measured([*command, *names]).check("SQL floor")
    return done, json.loads(done.stdout.strip().splitlines()[-1])


DRIFTGUARD_IMPORTS = "import driftguard.cli, driftguard.engine, driftguard.collect, driftguard.store.sqlite"


SODA_ENV = {"SODA_CORE_TELEMETRY_ENABLED": "false", "PYTHONDONTWRITEBYTECODE": "1"}


def run_soda(python: Path, mode: str, files: list[Path]) -> tuple[Measured, dict[str, int]]:
    env = {**os.environ, **SODA_ENV}
    command = [str(python), "-c", SODA_DRIVER, mode, *map(str, files)]
    done = run_measured(command, env=env).check(f"Soda Core ({mode})")
    return done, json.loads(done.stdout.strip().splitlines()[-1])


def run_soda_cli(python: Path, files: list[Path]) -> tuple[float, float, dict[str, int]]:
    """One `soda contract verify` process per contract, as a shell loop would: total wall seconds,
    the largest peak RSS and how many contracts passed or failed (the CLI's exit code)."""
    soda = python.parent / "soda"
    env = {**os.environ, **SODA_ENV}
    data_source, *contracts = files
    wall, peak, outcomes = 0.0, 0.0, {"passed": 0, "failed": 0}
    for contract in contracts:
        done = run_measured(
            [str(soda), "contract", "verify", "--data-source", str(data_source), "--contract", str(contract)],
            env=env,
        )
        if done.returncode not in (0, 1):  # 1: checks failed; anything else: the CLI did not run
            done.check("soda contract verify")
        wall += done.wall_s
        peak = max(peak, done.peak_rss_mb)
        outcomes["passed" if done.returncode == 0 else "failed"] += 1
    return wall, peak, outcomes


SIZES = (120, 500)  # full mode; the larger one shows how the ratio moves as start-up amortises
QUICK_SIZES = (10,)
SODA_MODES = ("documented", "shared")
ROWS = (
    ("Soda Core, documented Python path (a connection a contract)", "documented"),
    ("Soda Core, one process, one shared connection", "shared"),
    ("Soda Core CLI, one process a contract", "cli"),
    ("DriftGuard, first run (backfills history)", "first"),
    ("DriftGuard, steady run", "steady"),
    ("raw SQL floor (pg8000 alone, one connection, the same reads)", "floor"),
)


def run(quick: bool = False, install: bool = True) -> Report:
    report = Report("DriftGuard vs Soda Core: row count, freshness, schema", quick)
    sizes, repeats = (QUICK_SIZES, 1) if quick else (SIZES, 3)
    soda: tuple[Path, str] | None = None
    try:
        soda = soda_python(install)
        report.notes.append(f"Soda: {soda[1]} in {SODA_VENV.relative_to(REPO)}")
    except Unavailable as e:
        report.problems.append(f"SODA CORE COLUMN MISSING: {e}")
    try:
        engine = pg.admin_engine()
    except Unavailable as e:
        report.problems.append(f"DriftGuard vs Soda NOT MEASURED: {e}")
        return report
    walls_by_size: dict[int, dict[str, list[float]]] = {}
    for count in sizes:
        # The first (smallest) size keeps the budget names it always had; larger ones are labelled.
        walls_by_size[count] = _measure(
            report, engine, soda, count, repeats, labelled=count != sizes[0], largest=count == sizes[-1]
        )
    engine.dispose()
    if len(sizes) > 1:
        _per_table_cost(report, walls_by_size)
    report.notes.append(
        "start-up: a fresh interpreter importing the tool's modules (Soda: its contract API and data source "
        "base; DriftGuard: cli, engine, collect, SQLite store), measured separately"
    )
    return report


def _measure(
    report: Report,
    engine: sa.Engine,
    soda: tuple[Path, str] | None,
    count: int,
    repeats: int,
    *,
    labelled: bool,
    largest: bool,
) -> dict[str, list[float]]:
    """Both tools on `count` fresh tables: one table of figures and the budget verdicts; the walls."""
    keys = [key for _, key in ROWS]
    walls: dict[str, list[float]] = {k: [] for k in keys}
    starts: dict[str, list[float]] = {k: [] for k in keys}
    memory: dict[str, list[float]] = {k: [] for k in keys}
    outcomes: dict[str, Any] = {}
    # The CLI loop costs a process a contract (about half a second each): once, at the smaller size.
    run_cli = not labelled
    with pg.scratch_schema(engine, "bench_soda") as schema:
        names = [f"t{i:03d}" for i in range(count)]
        pg.create_event_tables(engine, schema, names, hours=HOURS)
        with engine.connect() as c:
            first = c.exec_driver_sql("select date_trunc('hour', now())").scalar_one().astimezone(UTC)
        with tempfile.TemporaryDirectory() as tmp:
            warm_up = write_config(Path(tmp), [pg.source("bench-soda", schema, driftguard_tables(names))])
            driftguard_env = installed_env(warm_up, first - timedelta(hours=1))
        for repeat in range(repeats):
            with tempfile.TemporaryDirectory() as tmp:
                directory = Path(tmp)
                if soda is not None:
                    files = soda_files(directory, schema, names)
                    soda_start = startup(soda[0], SODA_IMPORTS)
                    for mode in SODA_MODES:
                        done, outcomes[mode] = run_soda(soda[0], mode, files)
                        walls[mode].append(done.wall_s)
                        memory[mode].append(done.peak_rss_mb)
                        starts[mode].append(soda_start)
                    if run_cli and repeat == 0:
                        wall, peak, outcomes["cli"] = run_soda_cli(soda[0], files)
                        walls["cli"].append(wall)
                        memory["cli"].append(peak)
                        starts["cli"].append(soda_start * count)
                done, outcomes["floor"] = run_sql_floor(schema, names)
                walls["floor"].append(done.wall_s)
                memory["floor"].append(done.peak_rss_mb)
                starts["floor"].append(startup(Path(sys.executable), "import pg8000.dbapi"))
                starts["first"].append(startup(Path(sys.executable), DRIFTGUARD_IMPORTS, driftguard_env))
                starts["steady"] = starts["first"]
                config = write_config(directory, [pg.source("bench-soda", schema, driftguard_tables(names))])
                # Both times past: the CLI refuses to check a time still to come.
                for run_name, at in (("first", first - timedelta(hours=1)), ("steady", first)):
                    done, document = driftguard_run(config, at, driftguard_env)
                    walls[run_name].append(done.wall_s)
                    memory[run_name].append(done.peak_rss_mb)
                    if repeat == 0:
                        outcomes[run_name] = _driftguard_outcomes(document, count)

    table = report.table(
        f"{count} tables x 3 checks, each tool in a fresh process (wall s and peak RSS: median (min-max, n))",
        "tool",
        "wall s",
        "peak RSS MB",
        "checks/s",
        "of which start-up s",
        "Soda documented wall / this wall",
        "outcomes",
    )
    soda_wall = statistics.median(walls["documented"]) if walls["documented"] else None
    for label, key in ROWS:
        if not walls[key]:
            why = "the smaller size only" if key == "cli" and not run_cli else "see the problems above"
            table.add(label, "NOT RUN", None, None, None, None, why)
            continue
        wall = statistics.median(walls[key])
        ratio = f"{soda_wall / wall:.2f}" if soda_wall else "-"
        figures = (spread(walls[key]), spread(memory[key]), 3 * count / wall, spread(starts[key]))
        table.add(label, *figures, ratio, str(outcomes[key]))
    size = f", {count} tables" if labelled else ""
    for key, label, target in (
        ("steady", "steady run", BUDGET_SPEEDUP),
        ("first", "first run", BUDGET_FIRST_RUN),
    ):
        name = f"DriftGuard {label} vs Soda Core's documented path{size}"
        wanted = f">= {target}x faster" if target > 1 else "no slower"
        if soda_wall is None:
            report.budgets.append(Budget(name, wanted, "-", None))
            continue
        speedup = soda_wall / statistics.median(walls[key])
        report.budgets.append(Budget(name, wanted, f"{speedup:.2f}x", speedup >= target))
    if largest:
        over = statistics.median(walls["steady"]) / statistics.median(walls["floor"])
        report.budgets.append(
            Budget(
                f"DriftGuard steady run vs the raw SQL floor, {count} tables",
                f"<= {BUDGET_FLOOR}x the floor",
                f"{over:.2f}x",
                over <= BUDGET_FLOOR,
            )
        )
    return walls


def _per_table_cost(report: Report, walls_by_size: dict[int, dict[str, list[float]]]) -> None:
    """What each further table costs: the difference of the median walls of two sizes, per table.
    Start-up and other fixed costs cancel out, so this is the ratio a large estate tends to."""
    small, large = min(walls_by_size), max(walls_by_size)
    table = report.table(
        f"Cost per further table, from {small} to {large} tables (difference of the median walls)",
        "tool",
        "ms per table",
        "Soda documented / this",
    )
    per_table: dict[str, float] = {}
    for _, key in ROWS:
        if walls_by_size[small][key] and walls_by_size[large][key]:
            grown = statistics.median(walls_by_size[large][key]) - statistics.median(
                walls_by_size[small][key]
            )
            per_table[key] = grown / (large - small) * 1000
    soda_ms = per_table.get("documented")
    for label, key in ROWS:
        if key not in per_table:
            table.add(label, "NOT RUN", None)
            continue
        ratio = f"{soda_ms / per_table[key]:.2f}" if soda_ms and per_table[key] > 0 else "-"
        table.add(label, per_table[key], ratio)
    if soda_ms and per_table.get("steady", 0) > 0:
        ratio = soda_ms / per_table["steady"]
        report.budgets.append(
            Budget(
                "DriftGuard steady run per further table vs Soda Core's documented path",
                f">= {BUDGET_PER_TABLE}x cheaper",
                f"{ratio:.2f}x",
                ratio >= BUDGET_PER_TABLE,
            )
        )


def _driftguard_outcomes(document: dict[str, Any], count: int) -> dict[str, int]:
    statuses: dict[str, int] = {}
    for run in document["runs"]:
        for finding in run["findings"]:
            if finding["key"]["table"]:
                statuses[finding["status"]] = statuses.get(finding["status"], 0) + 1
    if tables_checked(document) != count:
        raise RuntimeError(f"driftguard run checked {tables_checked(document)} of {count} tables")
    return statuses


def entry(argv: Sequence[str] | None = None) -> int:
    return main(run, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(entry())
