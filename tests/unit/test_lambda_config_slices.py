"""The check function's config as the stack ships it: the config without sources plus one slice per
source. An invocation reads only its source's slice, validated as the whole compiled config is (same
model, same errors), and another source's slice, even a broken one, is never read."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import cast

import pytest

from driftguard.config import Config, compile_config, compile_source, load_config, parse_config
from driftguard.errors import ConfigError
from driftguard.lambda_runtime import SLICE_CACHE_SIZE, ConfigSlices, Runtime
from driftguard.secrets import SecretResolver
from driftguard.store.base import Store

CONFIG = """\
sources:
  - {name: a, kind: postgres, connection: {host: h, database: d, user: u}, tables: [{name: t1}, {name: t2}]}
  - {name: b, kind: mysql, connection: {host: h2, database: d, user: u}, tags: [critical]}
  - name: lite
    kind: sqlite
    connection: {path: data/x.db}
    schedule: {cron: '0 6 * * 1-5'}
    detection: {training_window: 30d}
    tables: [{name: t, checks: {volume: {column: ts, period: 1h}}}]
channels:
  - {name: console, type: console}
  - {name: audit, type: file, path: out/audit.jsonl}
route: {receivers: [console, audit]}
state: {retention: 60d}
"""


def ship(directory: Path, config: Config) -> Path:
    """The files infra writes into the check function's asset (infra/constructs/common.py,
    ShippedConfig.sliced_files): driftguard.json without sources, driftguard-sources/NAME.json."""
    (directory / "driftguard.json").write_text(compile_config(config.model_copy(update={"sources": []})))
    slices = directory / "driftguard-sources"
    slices.mkdir()
    for source in config.sources:
        (slices / f"{source.name}.json").write_text(compile_source(source))
    return slices


def sliced_runtime(directory: Path) -> Runtime:
    shared = load_config(directory / "driftguard.json")
    slices = ConfigSlices(directory / "driftguard-sources", directory.resolve())
    return Runtime(config=shared, store=cast("Store", None), secrets=SecretResolver(), slices=slices)


@pytest.fixture
def shipped(tmp_path: Path) -> tuple[Runtime, Config, Path]:
    """A runtime over the sliced layout, the whole config compiled and loaded the old way (one file,
    same folder: relative paths resolve alike), and the slices' folder."""
    config = parse_config(CONFIG)
    whole = tmp_path / "whole"
    whole.mkdir()
    (whole / "driftguard.json").write_text(compile_config(config))
    sliced = tmp_path / "sliced"
    sliced.mkdir()
    folder = ship(sliced, config)
    # the same folder for both, so relative paths resolve to the same place
    (sliced / "whole.json").write_text((whole / "driftguard.json").read_text())
    return sliced_runtime(sliced), load_config(sliced / "whole.json"), folder


def test_each_source_loads_to_the_model_the_whole_compiled_config_gives(
    shipped: tuple[Runtime, Config, Path],
) -> None:
    rt, whole, _ = shipped
    assert rt.config.sources == []
    for source in whole.sources:
        one = rt.source_config(source.name)
        assert one == whole.model_copy(update={"sources": [source]})
        assert one.model_dump_json() == whole.model_copy(update={"sources": [source]}).model_dump_json()
    lite = rt.source_config("lite").sources[0]
    assert lite.connection.path == str(rt.slices.base / "data" / "x.db")  # type: ignore[union-attr]
    assert rt.whole_config() == whole


def test_a_check_of_one_source_never_reads_another_sources_slice(
    shipped: tuple[Runtime, Config, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    rt, whole, folder = shipped
    (folder / "b.json").write_text('{"name": "b", "kind": "mysql", "connec')  # cut short: corrupt
    read: list[str] = []
    real_read = Path.read_text

    def recording_read(path: Path, *args: object, **kwargs: object) -> str:
        read.append(path.name)
        return real_read(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", recording_read)
    assert rt.source_config("a") == whole.model_copy(update={"sources": [whole.source("a")]})
    assert read == ["a.json"]
    with pytest.raises(ConfigError) as raised:
        rt.source_config("b")
    message = str(raised.value)
    assert message.startswith(f"{folder / 'b.json'}: invalid compiled config:")
    assert "Invalid JSON" in message
    assert rt.source_config("lite").sources[0].name == "lite"  # the others still load


def test_a_slice_that_breaks_a_rule_fails_with_the_problem_the_whole_config_reports(tmp_path: Path) -> None:
    """A source's own rule (a table's volume period) and a cross-check of the config over the source
    (state.retention must cover its training window) give the problem text a whole compiled config
    gives, with the slice's file named instead."""
    config = parse_config(CONFIG)
    folder = ship(tmp_path, config)
    rt = sliced_runtime(tmp_path)
    broken = json.loads(compile_source(config.source("lite")))
    broken["tables"][0]["checks"]["volume"]["period"] = "P-1D"
    longer = json.loads(compile_source(config.source("a")))
    longer["detection"]["training_window"] = "P90D"  # retention is 60 days
    for name, data in (("lite", broken), ("a", longer)):
        (folder / f"{name}.json").write_text(json.dumps(data))
        whole = json.loads(compile_config(config))
        whole["sources"] = [data]
        (tmp_path / "whole.json").write_text(json.dumps(whole))
        with pytest.raises(ConfigError) as expected:
            load_config(tmp_path / "whole.json")
        with pytest.raises(ConfigError) as raised:
            rt.source_config(name)
        assert raised.value.problems, "the problems are listed"
        strip = str(tmp_path) + "/"
        assert [p.split(": ", 1)[1].removeprefix("sources[0].") for p in expected.value.problems] == [
            p.removeprefix(f"{strip}driftguard-sources/{name}.json: ") for p in raised.value.problems
        ]


def test_an_unknown_source_is_the_error_the_whole_config_gives(shipped: tuple[Runtime, Config, Path]) -> None:
    rt, whole, _ = shipped
    for name in ("nope", "../sliced/whole", "A"):
        with pytest.raises(ConfigError) as expected:
            whole.source(name)
        with pytest.raises(ConfigError) as raised:
            rt.source_config(name)
        assert str(raised.value) == str(expected.value)


def test_a_slice_holding_another_source_is_refused(shipped: tuple[Runtime, Config, Path]) -> None:
    rt, _, folder = shipped
    (folder / "b.json").write_text((folder / "a.json").read_text())
    with pytest.raises(ConfigError, match=r"b\.json: holds source 'a', not 'b'.*deploy the stack again"):
        rt.source_config("b")


def test_a_warm_container_keeps_only_the_last_few_slices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    many = "sources:\n" + "".join(
        f"  - {{name: s{i:02d}, kind: postgres, connection: {{host: h, database: d{i}, user: u}}}}\n"
        for i in range(SLICE_CACHE_SIZE + 4)
    )
    config = parse_config(many)
    ship(tmp_path, config)
    rt = sliced_runtime(tmp_path)
    reads: list[str] = []
    real_read = Path.read_text

    def recording_read(path: Path, *args: object, **kwargs: object) -> str:
        reads.append(path.stem)
        return real_read(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", recording_read)
    names = [s.name for s in config.sources]
    for name in names:
        assert rt.source_config(name).sources == [config.source(name)]
    assert rt.slices is not None and list(rt.slices.loaded) == names[-SLICE_CACHE_SIZE:]
    rt.source_config(names[-1])  # kept: not read again
    rt.source_config(names[0])  # dropped: read again
    assert reads == [*names, names[0]]


def test_building_the_runtime_over_slices_imports_nothing_more_and_reads_no_slice(tmp_path: Path) -> None:
    """Cold start: the sliced layout imports no module at init that the whole config did not, and
    init reads no source."""
    config = parse_config(CONFIG)
    sliced = tmp_path / "sliced"
    sliced.mkdir()
    ship(sliced, config)
    whole = tmp_path / "whole"
    whole.mkdir()
    (whole / "driftguard.json").write_text(compile_config(config))
    probe = (
        "import sys\n"
        "from driftguard import lambda_runtime\n"
        "rt = lambda_runtime.runtime()\n"
        "print(len(rt.config.sources), rt.slices is not None and len(rt.slices.loaded))\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    base = {
        "DRIFTGUARD_STATE_TABLE": "t",
        "POWERTOOLS_SERVICE_NAME": "s",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": ":".join(sys.path),
    }
    runs = {}
    for layout, extra in {
        "sliced": {
            "DRIFTGUARD_CONFIG": str(sliced / "driftguard.json"),
            "DRIFTGUARD_CONFIG_SLICES": str(sliced / "driftguard-sources"),
        },
        "whole": {"DRIFTGUARD_CONFIG": str(whole / "driftguard.json")},
    }.items():
        done = subprocess.run(
            [sys.executable, "-c", probe], env={**base, **extra}, capture_output=True, text=True, check=True
        )
        runs[layout] = done.stdout.splitlines()
    assert runs["sliced"][0] == "0 0"  # no source in the config, no slice read
    assert runs["whole"][0] == "3 False"
    sliced_modules, whole_modules = set(runs["sliced"][1].split()), set(runs["whole"][1].split())
    assert sliced_modules <= whole_modules, sorted(sliced_modules - whole_modules)
    # what validates sources (cron schedules, read-only SQL) waits for the first slice
    assert "croniter" in whole_modules - sliced_modules
