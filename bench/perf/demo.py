"""The local demo's wall time: `driftguard demo` from a fresh process, as `make demo` runs it.

.venv/bin/python -m bench.perf.demo [--quick] [--json PATH]

Each repeat builds the demo's SQLite shop in a new directory, checks it, breaks it, checks again
(the command's own work, nothing skipped); the figure is the whole process, interpreter start
included. README promises "a few seconds".
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.perf.report import VENV_BIN, Report, main, noise, run_measured, spread


def run(quick: bool = False) -> Report:
    report = Report("Local demo: driftguard demo", quick)
    repeats = 1 if quick else 5
    walls: list[float] = []
    inner: list[float] = []
    memory: list[float] = []
    firing = 0
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            command = [str(VENV_BIN / "driftguard"), "demo", "--dir", str(Path(tmp) / "demo"), "--json"]
            done = run_measured(command).check("driftguard demo")
            walls.append(done.wall_s)
            memory.append(done.peak_rss_mb)
            document = json.loads(done.stdout)
            inner.append(float(document["seconds"]))
            firing = sum(s.get("state") == "FIRING" for s in document["states"])
    table = report.table(
        "driftguard demo --json, fresh directory each time (median (min-max, n))",
        "process wall s",
        "noise",
        "demo's own seconds",
        "peak RSS MB",
        "alerts firing at the end",
    )
    table.add(spread(walls), f"{noise(walls):.0%}", spread(inner), spread(memory), firing)
    report.notes.append("'demo's own seconds' is the `seconds` the command reports (after its imports)")
    return report


def entry(argv: Sequence[str] | None = None) -> int:
    return main(run, __doc__, argv)


if __name__ == "__main__":
    raise SystemExit(entry())
