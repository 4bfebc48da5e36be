"""`driftguard schema` is the loader's schema: every config the project ships or prints validates
against it with `jsonschema`, and configs the loader refuses, it refuses too."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from driftguard.cli import main
from driftguard.config import load_config
from driftguard.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def readme_configs() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)
    return [b for b in blocks if "sources:" in b]


def init_configs(tmp_path: Path) -> list[Path]:
    out = []
    for kind in ("postgres", "mysql", "sqlite"):
        path = tmp_path / f"{kind}.yaml"
        assert CliRunner().invoke(main, ["init", str(path), "--kind", kind]).exit_code == 0
        out.append(path)
    return out


def loads(path: Path) -> bool:
    try:
        load_config(path)
    except ConfigError:
        return False
    return True


def test_examples_init_output_and_readme_validate_against_the_schema(
    validator: jsonschema.protocols.Validator, tmp_path: Path
) -> None:
    files = sorted((REPO / "examples").glob("*.yaml")) + init_configs(tmp_path)
    for i, block in enumerate(readme_configs()):
        files.append(tmp_path / f"readme-{i}.yaml")
        files[-1].write_text(block, encoding="utf-8")
    assert len(files) >= 8
    for path in files:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        errors = [e.message for e in validator.iter_errors(doc)]
        assert errors == [], (path.name, errors)
        assert loads(path), path.name


def _example() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((REPO / "examples" / "sqlite.yaml").read_text(encoding="utf-8"))
    return doc


def _break(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(_example())
    where: Any = doc
    for step in path[:-1]:
        where = where[step]
    where[path[-1]] = value
    return doc


INVALID = {
    "unknown top-level key": _break(("colour",), "red"),
    "unknown source key": _break(("sources", 0, "hostname"), "db"),
    "duration in words": _break(("defaults",), {"schedule": {"rate": "soon"}}),
    "duration as a boolean": _break(("defaults",), {"statement_timeout": True}),
    "unknown source kind": _break(("sources", 0, "kind"), "oracle"),
    "schema as text": _break(("sources", 0, "tables", 0, "checks", "schema"), "yes"),
    "sources not a list": _break(("sources",), {"name": "x"}),
}


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_configs_fail_both_the_schema_and_the_loader(
    validator: jsonschema.protocols.Validator, tmp_path: Path, name: str
) -> None:
    doc = INVALID[name]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    assert not validator.is_valid(doc), name
    assert not loads(path), name


def test_durations_read_as_users_write_them(validator: jsonschema.protocols.Validator) -> None:
    for written in ("4h", "15 minutes", "90s", "1w", "PT4H", 3600):
        assert validator.is_valid(_break(("defaults",), {"schedule": {"rate": written}})), written
    schema_text = CliRunner().invoke(main, ["schema"]).stdout
    assert '"format": "duration"' not in schema_text  # no ISO-only duration format
