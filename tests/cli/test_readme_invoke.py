"""The README's local `invoke` works on a fresh clone: nothing but the demo's files and moto."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DRIFTGUARD = str(Path(sys.executable).with_name("driftguard"))


def test_the_readme_invoke_example_runs_as_written(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"\*\*Try a handler locally\*\*.*?```sh\n(.*?)```", readme, flags=re.DOTALL)
    assert block is not None
    commands = [line.split("#")[0].split() for line in block.group(1).splitlines() if line.strip()]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DRIFTGUARD_"))}
    (tmp_path / "events").symlink_to(REPO / "events")  # a fresh clone's events/, run from its root
    for argv in commands:
        argv = [DRIFTGUARD if a.endswith("driftguard") else a for a in argv]
        result = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
        assert result.returncode == 0, (argv, result.stderr[-2000:])
    output = json.loads(result.stdout)
    assert output["source"] == "shop" and output["status"] == "ok" and output["findings"] > 0


def test_invoke_exit_codes(tmp_path: Path) -> None:
    """0 is the example above; 2 a wrong argument; 3 a function error, printed as Lambda does."""
    config = tmp_path / "dg.yaml"
    config.write_text(
        "sources:\n  - name: shop\n    kind: sqlite\n    connection: {path: missing.db}\n"
        "    tables: [{name: orders}]\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DRIFTGUARD_"))}
    event = REPO / "events" / "check-demo.json"

    def invoke(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [DRIFTGUARD, "-c", str(config), "invoke", *args]
        return subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)

    wrong = invoke("check", str(event), "--secret", "a=b")  # --secret needs --mock-aws
    assert wrong.returncode == 2 and "--mock-aws" in wrong.stderr
    failed = invoke("check", str(event), "--mock-aws")
    assert failed.returncode == 3, failed.stderr[-2000:]
    assert json.loads(failed.stdout)["errorType"] in (
        "SourceUnavailable",
        "ConfigError",
        "CheckDefinitionError",
    )
    assert "Traceback" not in failed.stdout + failed.stderr
