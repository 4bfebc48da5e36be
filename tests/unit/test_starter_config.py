"""`driftguard init` writes a valid starter for every source kind, and its commented learned-metric
examples are valid once uncommented."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import pytest
from click.testing import CliRunner

from driftguard.cli.monitor import init
from driftguard.config import SourceKind, parse_config


@pytest.mark.parametrize("kind", ["postgres", "mysql", "sqlite", "duckdb", "clickhouse"])
def test_the_starter_of_every_kind_is_valid_with_its_sql_metrics_uncommented(
    kind: str, tmp_path: Path
) -> None:
    path = tmp_path / "driftguard.yaml"
    result = CliRunner().invoke(init, [str(path), "--kind", kind])
    assert result.exit_code == 0, result.output
    text = path.read_text()
    assert parse_config(text).sources[0].kind == kind
    uncommented = re.sub(r"^    # (sql_metrics:)", r"    \1", text, flags=re.MULTILINE)
    uncommented = re.sub(r"^    #   ", "      ", uncommented, flags=re.MULTILINE)
    uncommented = re.sub(r"^  # (\w+: true)", r"  \1", uncommented, flags=re.MULTILINE)
    config = parse_config(uncommented)
    assert [m.name for m in config.sources[0].sql_metrics] == ["orders_per_status", "paid_per_hour"]
    assert config.route.end_silences_on_resolve and config.route.inhibit_when_source_down


def test_init_offers_every_source_kind() -> None:
    choices = next(p for p in init.params if p.name == "kind").type.choices  # type: ignore[attr-defined]
    assert sorted(choices) == sorted(get_args(SourceKind))
