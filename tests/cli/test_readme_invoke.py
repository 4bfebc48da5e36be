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
