"""CDK entry point: `cdk synth -c config=examples/aws-basic.yaml` (cdk.json runs this file).

The config path comes from the context value `config` (default examples/aws-basic.yaml),
relative to the directory cdk runs in.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# `python infra/app.py` puts infra/ first on sys.path, where infra/constructs would shadow the
# `constructs` library that aws_cdk imports: replace it with the repository and the package root.
sys.path[:] = [
    str(REPO),
    str(REPO / "layers"),
    *(p for p in sys.path[1:] if Path(p or ".").resolve() != REPO / "infra"),
]

from aws_cdk import App  # noqa: E402

from driftguard.errors import ConfigError  # noqa: E402
from infra.stack import add_stack  # noqa: E402

DEFAULT_CONFIG = "examples/aws-basic.yaml"


def main() -> None:
    app = App()
    config_path = Path(app.node.try_get_context("config") or DEFAULT_CONFIG)
    try:
        add_stack(app, config_path)
    except ConfigError as e:
        sys.exit(f"driftguard: {e}")
    app.synth()


if __name__ == "__main__":
    main()
