"""Peak memory of the check and notify functions' paths with a large config: 10,000 sources x 20
tables (quick: 1,000 x 20), the config compiled as the stack ships it (`driftguard.json`, plus the
schedule plan `driftguard-plan.json`).

.venv/bin/python -m bench.perf.memory [--quick] [--json PATH]

Each path runs in a fresh interpreter with a Lambda's environment and reports its own peak RSS
(VmHWM: wait4's figure would include the image of the benchmark process it was forked from):
the check path builds the runtime over the whole config (config, DynamoDB store) and answers a
`plan` from the shipped plan; the notify path builds the runtime over the config as the stack ships
it to the notify function (without sources) and a channel adapter. A floor process builds a runtime
over a config without sources. No AWS call is made (clients are built, never used).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from bench.perf.fleet import generated_config
from bench.perf.report import Report, main, run_measured
from driftguard.config import Config, compile_config
from driftguard.contracts import CheckEnvironment
from driftguard.schedules import plan_fleet, plan_index

PATHS = {
    "floor: the runtime over a config without sources": "",
    "check: the whole config, then a plan from the shipped plan": (
        "first = rt.config.sources[0].name\n"
        "group = next(iter(json.loads(Path(os.environ['DRIFTGUARD_PLAN']).read_text())))\n"
        "cadence, shard = group.rsplit('-', 1)\n"
        "event = {'cadence': cadence, 'shard': int(shard), 'scheduled_time': '2026-12-07T12:00:00Z'}\n"
        "lambda_runtime.plan(rt, event)\n"
        "rt.config.source(first)\n"
    ),
    "notify: the config without sources (as shipped), then a channel adapter": (
        "from driftguard import notify as channels\n"
        "topic = 'arn:aws:sns:eu-west-1:1:t'\n"
        "channels.build_channel(rt.config.channels[0], secrets=rt.secrets, default_topic_arn=topic)\n"
    ),
}

PROBE = """
import json, os, sys
from pathlib import Path
from driftguard import lambda_runtime
rt = lambda_runtime.runtime()
{body}
# VmHWM: this process's own peak (wait4's ru_maxrss would count the forked parent's image too)
peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(len(rt.config.sources), peak_kb)
"""


def _write(directory: Path, config: Config) -> dict[str, str]:
    (directory / "driftguard.json").write_text(compile_config(config))
    (directory / "driftguard-plan.json").write_text(plan_index(plan_fleet(config).groups))
    # the check function's environment as the stack sets it (driftguard.contracts)
    environment = CheckEnvironment.model_validate(
        {
            "config_file": str(directory / "driftguard.json"),
            "plan_file": str(directory / "driftguard-plan.json"),
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


def run(quick: bool = False) -> Report:
    sources = 1_000 if quick else 10_000
    report = Report(f"Function memory with {sources:,} sources x 20 tables", quick)
    config = generated_config(sources, None)
    with tempfile.TemporaryDirectory() as tmp:
        full = Path(tmp) / "full"
        empty = Path(tmp) / "empty"
        full.mkdir()
        empty.mkdir()
        env_full = _write(full, config)
        env_empty = _write(empty, config.model_copy(update={"sources": []}))
        size_mb = (full / "driftguard.json").stat().st_size / 1e6
        plan_mb = (full / "driftguard-plan.json").stat().st_size / 1e6
        table = report.table(
            f"peak RSS of one fresh interpreter per path (config {size_mb:.1f} MB, plan {plan_mb:.2f} MB)",
            "path",
            "peak RSS MB",
            "sources loaded",
            "seconds",
        )
        for name, body in PATHS.items():
            env = env_full if name.startswith("check") else env_empty
            done = run_measured([sys.executable, "-c", PROBE.format(body=body)], env=env).check(name)
            loaded, peak_kb = done.stdout.split()[-2:]
            table.add(name, round(int(peak_kb) / 1024, 1), int(loaded), round(done.wall_s, 2))
    report.notes.append(
        "the notify function ships the config without its sources (all a delivery reads); the check "
        "function still loads the whole config (docs/scaling.md, Memory) and reads its firing from the plan"
    )
    return report


def entry(argv: list[str] | None = None) -> int:
    return main(run, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(entry())
