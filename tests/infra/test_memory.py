"""The functions' memory follows the config's size (infra/constructs/memory.py): a config whose largest
source is large gets a larger check function, a small one keeps the defaults, a setting overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from aws_cdk.assertions import Annotations, Match
from infra.constructs import memory
from stack_helpers import Synthesized, synthesize

from driftguard.config import Config, compile_config, compile_source, load_config
from driftguard.errors import ConfigError


def write_config(path: Path, *, tables: int, sources: int = 3, aws: dict[str, Any] | None = None) -> Path:
    """`sources` PostgreSQL sources; the first has `tables` tables with timestamp checks, the others two."""
    specs = [
        {
            "name": f"src-{i}",
            "kind": "postgres",
            "connection": {"host": "db.internal", "database": f"d{i}", "user": "driftguard"},
            "tables": [
                {"name": f"t{t:04d}", "checks": {"volume": {"column": "ts", "period": "1h"}, "schema": True}}
                for t in range(tables if i == 0 else 2)
            ],
        }
        for i in range(sources)
    ]
    config = {
        "sources": specs,
        "channels": [{"name": "ops", "type": "sns"}],
        "route": {"receivers": ["ops"]},
        "aws": {"stack_name": f"DriftGuardMemory{tables}", **(aws or {})},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def memory_of(synth: Synthesized, prefix: str) -> int:
    (props,) = [
        r["Properties"] for k, r in synth.resources("AWS::Lambda::Function").items() if k.startswith(prefix)
    ]
    return int(props["MemorySize"])


def infos(synth: Synthesized, pattern: str) -> list[Any]:
    return Annotations.from_stack(synth.stack).find_info("*", Match.string_like_regexp(pattern))


@pytest.fixture(scope="module")
def small(pinned_layer: None, tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    directory = tmp_path_factory.mktemp("memory-small")
    return synthesize(write_config(directory / "driftguard.yaml", tables=20), directory / "out")


@pytest.fixture(scope="module")
def large(pinned_layer: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[Synthesized, Path]:
    directory = tmp_path_factory.mktemp("memory-large")
    path = write_config(directory / "driftguard.yaml", tables=3_000)
    return synthesize(path, directory / "out"), path


@pytest.mark.slow
def test_a_small_config_keeps_the_default_memory_sizes_and_synth_says_so(small: Synthesized) -> None:
    assert memory_of(small, "ChecksCheckFunction") == memory.CHECK_DEFAULT_MB == 512
    assert memory_of(small, "NotificationsNotifyFunction") == memory.NOTIFY_DEFAULT_MB == 256
    assert infos(small, r"check function memory: 512 MB, sized from the config .*aws\.check_memory_mb")
    assert infos(small, r"notify function memory: 256 MB, sized from the config .*aws\.notify_memory_mb")


@pytest.mark.slow
def test_a_config_with_a_large_source_gets_a_larger_check_function(large: tuple[Synthesized, Path]) -> None:
    """3,000 tables in one source: above the default, by the module's formula for what it ships."""
    synth, path = large
    config = load_config(path)
    (check_id,) = [k for k in synth.resources("AWS::Lambda::Function") if k.startswith("ChecksCheckFunction")]
    asset = synth.asset_dir(check_id)
    shipped = {p.stem: p.read_text() for p in (asset / "driftguard-sources").iterdir()}
    expected = memory.check_memory(
        config,
        shared=(asset / "driftguard.json").read_text(),
        plan=(asset / "driftguard-plan.json").read_text(),
        slices=shipped,
    )
    mb = memory_of(synth, "ChecksCheckFunction")
    assert mb > memory.CHECK_DEFAULT_MB
    assert mb % memory.STEP_MB == 0
    assert mb == expected.mb
    assert mb >= memory.CHECK_MB_PER_TABLE * 3_000 * memory.HEADROOM  # the tables alone
    assert infos(synth, rf"check function memory: {mb} MB, sized from the config")
    # a delivery reads no source: the notify function stays at its default
    assert memory_of(synth, "NotificationsNotifyFunction") == memory.NOTIFY_DEFAULT_MB


def _config(tables: int, **aws: Any) -> Config:
    specs = [
        {
            "name": "big",
            "kind": "postgres",
            "connection": {"host": "h", "database": "d", "user": "u"},
            "tables": [{"name": f"t{t}"} for t in range(tables)],
        }
    ]
    return Config.model_validate({"sources": specs, "aws": aws})


def _check(config: Config) -> memory.MemorySize:
    return memory.check_memory(
        config,
        shared=compile_config(config.model_copy(update={"sources": []})),
        plan="{}",
        slices={s.name: compile_source(s) for s in config.sources},
    )


def test_the_check_functions_memory_grows_with_the_largest_source_not_the_fleet() -> None:
    one_large = _check(_config(4_000))
    assert one_large.mb > memory.CHECK_DEFAULT_MB and not one_large.explicit
    assert one_large.mb >= one_large.estimate_mb
    many_small = Config.model_validate(
        {
            "sources": [
                {
                    "name": f"s{i:05d}",
                    "kind": "postgres",
                    "connection": {"host": "h", "database": f"d{i}", "user": "u"},
                    "tables": [{"name": f"t{t}"} for t in range(20)],
                }
                for i in range(2_000)
            ]
        }
    )
    assert _check(many_small).mb == memory.CHECK_DEFAULT_MB  # 40,000 tables, 20 per source


def test_a_memory_setting_overrides_the_estimate_and_one_too_small_is_warned_about() -> None:
    raised = _check(_config(20, check_memory_mb=1024))
    assert (raised.mb, raised.explicit, raised.too_small) == (1024, True, False)
    assert "set by aws.check_memory_mb" in raised.note()
    low = _check(_config(4_000, check_memory_mb=256))
    assert low.mb == 256 and low.too_small
    assert (
        "below the estimate" in low.note() and f"at least {memory._rounded(low.estimate_mb)} MB" in low.note()
    )
    notify = memory.notify_memory(_config(20, notify_memory_mb=384), shared="{}")
    assert (notify.mb, notify.explicit) == (384, True)


def test_the_notify_functions_memory_follows_the_config_it_ships() -> None:
    config = _config(20)
    assert memory.notify_memory(config, shared="x" * 1_000).mb == memory.NOTIFY_DEFAULT_MB
    big = memory.notify_memory(config, shared="x" * 20_000_000)  # 20 MB of channels and routes
    assert big.mb > memory.NOTIFY_DEFAULT_MB
    assert big.estimate_mb == pytest.approx(
        (memory.NOTIFY_BASE_MB + memory.EXPANSION * 20) * memory.HEADROOM, abs=1
    )


def test_the_watchdogs_memory_follows_the_whole_config_it_loads() -> None:
    """The watchdog reads every source's schedule from the whole config: 10,000 sources x 20 tables
    compile to about 126 MB of JSON, which took 1.6 GB to load (bench/README.md, Function memory)."""
    config = _config(20)
    assert memory.watchdog_memory(config, whole="x" * 1_000).mb == memory.CHECK_DEFAULT_MB
    fleet = memory.watchdog_memory(config, whole="x" * 126_000_000)
    assert fleet.estimate_mb == pytest.approx(
        (memory.NOTIFY_BASE_MB + memory.EXPANSION * 126) * memory.HEADROOM, abs=1
    )
    assert fleet.mb >= 1_604 and fleet.mb % memory.STEP_MB == 0 and not fleet.too_small
    pinned = memory.watchdog_memory(_config(20, check_memory_mb=1024), whole="x" * 126_000_000)
    assert pinned.mb == 1024 and pinned.too_small and "below the estimate" in pinned.note()
    with pytest.raises(ConfigError, match=r"watchdog function .* split the config into several deployments"):
        memory.watchdog_memory(config, whole="x" * 600_000_000)


def test_a_source_beyond_lambdas_largest_memory_is_a_clear_config_error() -> None:
    with pytest.raises(ConfigError, match=r"more than Lambda's 10240 MB: split the largest source"):
        memory.check_memory(_config(20), shared="{}", plan="{}", slices={"big": "x" * 200_000_000})
