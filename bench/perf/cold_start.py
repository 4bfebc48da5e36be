"""Cold start of the check Lambda: import and initialise functions/check/handler.py in fresh interpreters.

.venv/bin/python -m bench.perf.cold_start [--quick] [--json PATH]

Each repeat starts four fresh interpreters, interleaved so load on the machine hits all alike:
the framework floor (the budget's reference: a minimal handler importing Powertools Logger, Metrics
and Tracer, pydantic and pg8000 and creating one boto3 DynamoDB client, what any Lambda built on this
stack pays; its Tracer patches botocore only, as the handler's does: a bare Tracer() patches every
library X-Ray knows, SQLAlchemy's ORM included, which would flatter the ratio), the bare floor
(boto3 and pg8000 only, for reference), the handler
module (Powertools Logger/Metrics/Tracer, the idempotency layer, driftguard.lambda_runtime), and the
handler plus `handler.container()` (config, DynamoDB store, X-Ray on the config's database drivers:
what the first invocation adds before it checks anything), then what the first check adds before it
runs (the engine and collect imports, the state store's DynamoDB client). The environment is a
Lambda's (DRIFTGUARD_*, AWS_*, POWERTOOLS_*), the config is examples/aws-basic.yaml compiled to JSON
as the CDK stack ships it (`driftguard.json`), and every socket connect during init is refused and
counted: init must not touch the network. DRIFTGUARD_BENCH_PYTHON names another interpreter to
probe with (one whose environment has DriftGuard's `aws` extra), e.g. a Python 3.13 like Lambda's.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.perf.cli_runs import BYTECODE_CACHE
from bench.perf.report import REPO, Budget, Report, main, noise, run_measured, spread

BUDGET_RATIO = 1.3  # against the framework floor
FLOOR_IMPORTS = "import boto3, pg8000"
FRAMEWORK_FLOOR = (
    "Logger(), Metrics(), Tracer(patch_modules=('botocore',)) from aws_lambda_powertools; "
    "import pydantic, pg8000; boto3.client('dynamodb')"
)
PYTHON = os.environ.get("DRIFTGUARD_BENCH_PYTHON", sys.executable)
HANDLER_DIR = REPO / "functions" / "check"
EXAMPLE_CONFIG = REPO / "examples" / "aws-basic.yaml"
TOP_IMPORTS = 12

# Runs in the child. Refuses (and records) network connects, then times the step asked for.
PROBE = r"""
import json, socket, sys, time
connects = []
def refuse(self, address, *args):
    connects.append(repr(address))
    raise OSError("bench.perf.cold_start: no network during init")
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
step = sys.argv[1]
t0 = time.perf_counter()
if step == "floor":
    import boto3, pg8000
elif step == "framework":
    import boto3, pg8000, pydantic
    from aws_lambda_powertools import Logger, Metrics, Tracer
    logger, metrics, tracer = Logger(), Metrics(), Tracer(patch_modules=("botocore",))
    client = boto3.client("dynamodb")
else:
    sys.path.insert(0, {handler_dir!r})
    import handler
t1 = time.perf_counter()
if step == "runtime":
    rt = handler.container()
t2 = time.perf_counter()
if "--check-imports" in sys.argv:
    import driftguard.engine, driftguard.collect  # what the first check imports lazily
    rt.store.client  # and the state store's DynamoDB client, which its first request creates
    import os
    rt.source_config(os.environ["DRIFTGUARD_BENCH_SOURCE"])  # and its source's slice
t3 = time.perf_counter()
print(json.dumps({{"import_s": t1 - t0, "runtime_s": t2 - t1, "check_imports_s": t3 - t2,
                   "connects": connects, "modules": sorted(sys.modules)}}))
"""


def compiled_config(directory: Path) -> Path:
    """EXAMPLE_CONFIG shipped as the CDK stack ships it to the check function: the config without
    sources (`driftguard.json`), the plan and one slice per source (infra ShippedConfig.sliced_files).
    Returns the config file; the plan and slices sit beside it (`lambda_env` points at them)."""
    from infra.constructs.assets import CONFIG_FILE_NAME
    from infra.constructs.common import ShippedConfig

    from driftguard.config import load_config

    for name, text in ShippedConfig.of(load_config(EXAMPLE_CONFIG), EXAMPLE_CONFIG).sliced_files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(text, encoding="utf-8")
    return directory / CONFIG_FILE_NAME


def first_source() -> str:
    """The source the probe's first check sets up (its slice is read then, as in Lambda)."""
    from driftguard.config import load_config

    return load_config(EXAMPLE_CONFIG).sources[0].name


def lambda_env(
    config: Path, *, write_bytecode: bool = False, bytecode: Path = BYTECODE_CACHE
) -> dict[str, str]:
    """What the CDK stack sets on the check function, plus the variables Lambda itself sets.

    Bytecode: the layer ships `.pyc` files for every module (infra/constructs/layer.py), so a cold
    start reads bytecode and compiles nothing. The probes read theirs from the bytecode cache the CLI
    benchmarks use (PYTHONPYCACHEPREFIX=.bench/pycache; with a prefix Python reads no other
    bytecode), written by one unmeasured probe of each step (`write_bytecode`) and then only read,
    by the floor's probes as well."""
    from infra.constructs.assets import PLAN_FILE_NAME, SLICES_DIR_NAME

    return {
        "PATH": "/usr/bin:/bin",
        "LAMBDA_TASK_ROOT": str(HANDLER_DIR),
        "DRIFTGUARD_CONFIG": str(config),
        "DRIFTGUARD_CONFIG_SLICES": str(config.parent / SLICES_DIR_NAME),
        "DRIFTGUARD_PLAN": str(config.parent / PLAN_FILE_NAME),
        "DRIFTGUARD_BENCH_SOURCE": first_source(),
        "DRIFTGUARD_STATE_TABLE": "driftguard-state",
        "DRIFTGUARD_IDEMPOTENCY_TABLE": "driftguard-idempotency",
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_SESSION_TOKEN": "bench",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_LAMBDA_FUNCTION_NAME": "driftguard-check",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "POWERTOOLS_SERVICE_NAME": "driftguard",
        "POWERTOOLS_METRICS_NAMESPACE": "DriftGuard",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "PYDANTIC_DISABLE_PLUGINS": "__all__",  # as the stack sets it (infra/constructs/common.py)
        "PYTHONPYCACHEPREFIX": str(bytecode),
        **({} if write_bytecode else {"PYTHONDONTWRITEBYTECODE": "1"}),
    }


def probe(
    step: str,
    config: Path,
    *,
    check_imports: bool = False,
    importtime: bool = False,
    write_bytecode: bool = False,
    bytecode: Path = BYTECODE_CACHE,
) -> tuple[dict[str, Any], str]:
    flags = ["-X", "importtime"] if importtime else []
    script = PROBE.format(handler_dir=str(HANDLER_DIR))
    command = [PYTHON, *flags, "-c", script, step, *(["--check-imports"] if check_imports else [])]
    env = lambda_env(config, write_bytecode=write_bytecode, bytecode=bytecode)
    done = run_measured(command, env=env, cwd=HANDLER_DIR).check(f"cold start probe {step!r}")
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


@dataclass
class ImportCosts:
    by_package: dict[str, float]  # self ms per top-level package
    direct: dict[str, float]  # cumulative ms of each import made directly by the probe (depth 1)


def import_costs(importtime_log: str) -> ImportCosts:
    """From `-X importtime` lines `self [us] | cumulative [us] | name` (name indented by depth)."""
    by_package: dict[str, float] = defaultdict(float)
    direct: dict[str, float] = {}
    for line in importtime_log.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = line.removeprefix("import time:").split("|")
        module = name.strip()
        by_package[module.split(".")[0]] += int(self_us) / 1000
        if len(name) - len(name.lstrip()) == 3:  # depth 1: imported by the handler's own code
            direct[module] = int(cumulative_us) / 1000
    return ImportCosts(dict(by_package), direct)


def run(quick: bool = False) -> Report:
    with tempfile.TemporaryDirectory() as tmp:
        return measure(compiled_config(Path(tmp)), quick)


def measure(config: Path, quick: bool) -> Report:
    report = Report("Cold start: functions/check/handler.py", quick)
    repeats = 3 if quick else 9
    times: dict[str, list[float]] = {
        "framework": [],
        "floor": [],
        "handler": [],
        "runtime": [],
        "check_imports": [],
        "total": [],
    }
    connects: set[str] = set()
    modules: dict[str, int] = {}
    steps = ("framework", "floor", "handler", "runtime")
    for step in steps:  # unmeasured: writes the bytecode the probes read
        probe(step, config, check_imports=step == "runtime", write_bytecode=True)
    for _ in range(repeats):
        for step in steps:
            figures, _ = probe(step, config, check_imports=step == "runtime")
            times[step].append(figures["import_s"] + figures["runtime_s"])
            if step == "runtime":
                times["check_imports"].append(figures["check_imports_s"])
                times["total"].append(times["runtime"][-1] + figures["check_imports_s"])
            connects.update(figures["connects"])
            modules[step] = len(figures["modules"])

    floor = statistics.median(times["framework"])
    version = run_measured([PYTHON, "-c", "import sys; print(sys.version.split()[0])"]).check("python")
    report.notes.append(f"probes ran on Python {version.stdout.strip()} ({PYTHON})")
    table = report.table(
        "Import and initialise in a fresh interpreter (seconds: median (min-max, n))",
        "what",
        "seconds",
        "x framework floor",
        "noise (max-min)/median",
        "modules loaded",
    )
    rows = (
        ("framework floor: " + FRAMEWORK_FLOOR, "framework"),
        ("bare floor: " + FLOOR_IMPORTS, "floor"),
        ("import handler (module init)", "handler"),
        ("import handler + handler.container()", "runtime"),
        (
            "then the first check's imports (engine, collect), store client and its source's slice",
            "check_imports",
        ),
        ("cold total: handler + container() + the first check's set-up", "total"),
    )
    for label, step in rows:
        seconds = times[step]
        ratio = statistics.median(seconds) / floor
        table.add(label, spread(seconds), f"{ratio:.2f}", f"{noise(seconds):.0%}", modules.get(step))

    # What a layer without bytecode cost (as it shipped before infra/constructs/layer.py compiled it):
    # every module compiled from source, from an empty bytecode cache that is never written
    with tempfile.TemporaryDirectory() as empty:
        sources = [probe("handler", config, bytecode=Path(empty))[0] for _ in range(3 if quick else 5)]
    from_source = [f["import_s"] + f["runtime_s"] for f in sources]
    table.add(
        "import handler, every module compiled from source (a layer without bytecode)",
        spread(from_source),
        f"{statistics.median(from_source) / floor:.2f}",
        f"{noise(from_source):.0%}",
        modules.get("handler"),
    )

    floor_costs = import_costs(probe("floor", config, importtime=True)[1])
    costs = import_costs(probe("runtime", config, importtime=True)[1])
    direct = report.table(
        "What handler import + container() spends its time on (-X importtime, one run, ms)",
        "module (imported by handler.py's code, incl. what runs at its top level)",
        "cumulative ms",
    )
    for module, ms in sorted(costs.direct.items(), key=lambda kv: -kv[1])[:TOP_IMPORTS]:
        direct.add(module, round(ms))
    top = report.table(
        f"Top {TOP_IMPORTS} top-level packages by import self time (same run, ms)",
        "package",
        "self ms",
        "also loaded by the floor",
    )
    for package, ms in sorted(costs.by_package.items(), key=lambda kv: -kv[1])[:TOP_IMPORTS]:
        top.add(package, round(ms), "yes" if package in floor_costs.by_package else "no")

    ratio = statistics.median(times["runtime"]) / floor
    report.budgets.append(
        Budget(
            "handler import + container() vs the framework floor",
            f"<= {BUDGET_RATIO}x",
            f"{ratio:.2f}x ({statistics.median(times['runtime']):.2f}s vs {floor:.2f}s)",
            ratio <= BUDGET_RATIO,
        )
    )
    report.notes.append(
        f"cold total (init plus the first check's set-up): {statistics.median(times['total']) * 1000:.0f} ms"
    )
    report.budgets.append(Budget("network connects during init", "0", str(len(connects)), not connects))
    if connects:
        report.problems.append(f"init tried to connect to: {', '.join(sorted(connects))}")
    report.notes.append(
        "container() builds the one DynamoDB client of the container (botocore lists its services and "
        "loads DynamoDB's model and endpoint rules): the state store's, which Powertools idempotency "
        "shares; the first check's set-up then only touches it."
    )
    return report


def entry(argv: Sequence[str] | None = None) -> int:
    return main(run, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(entry())
