"""The schedule planner: cadence groups, stable shards, per-server concurrency, and the runtime lookup."""

from __future__ import annotations

import re
from typing import Any

import pytest

from driftguard.config import Config
from driftguard.errors import ConfigError
from driftguard.schedules import MAX_SHARD_SIZE, TARGET_SHARD_SIZE, cadence_id, plan_schedules, sources_for


def source(name: str, host: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "postgres",
        "connection": {"host": host or f"{name}.db.internal", "database": "app", "user": "u"},
        **extra,
    }


def config(sources: list[dict[str, Any]], **aws: Any) -> Config:
    return Config.model_validate({"sources": sources, "aws": aws})


def many(n: int, prefix: str = "src") -> list[dict[str, Any]]:
    return [source(f"{prefix}-{i:05d}") for i in range(n)]


def shard_of(groups: list[Any]) -> dict[str, tuple[str, int]]:
    return {name: (g.cadence_id, g.shard) for g in groups for name in g.sources}


def test_sources_with_the_same_cadence_share_a_schedule_and_others_do_not() -> None:
    cfg = config(
        [
            source("a"),
            source("b"),
            source("c", schedule={"rate": "1h"}),
            source("d", schedule={"rate": "15m", "timezone": "Europe/Berlin"}),
            source("e", schedule={"rate": "15m", "flexible_window": "5m"}),
        ]
    )
    groups = plan_schedules(cfg)
    by_sources = {g.sources: g for g in groups}
    assert set(by_sources) == {("a", "b"), ("c",), ("d",), ("e",)}
    assert by_sources[("a", "b")].expression == "rate(15 minutes)"
    assert by_sources[("c",)].expression == "rate(1 hour)"
    assert by_sources[("d",)].timezone == "Europe/Berlin"
    assert by_sources[("e",)].flexible_window is not None
    assert by_sources[("e",)].flexible_window.total_seconds() == 300
    assert len({g.cadence_id for g in groups}) == 4


def test_cadence_ids_are_readable_deterministic_and_valid_schedule_names() -> None:
    cfg = config([source("a", schedule={"cron": "*/30 6-18 * * 1-5", "timezone": "Europe/Berlin"})])
    again = config([source("a", schedule={"cron": "*/30 6-18 * * 1-5", "timezone": "Europe/Berlin"})])
    (group,) = plan_schedules(cfg)
    assert group.cadence_id == plan_schedules(again)[0].cadence_id
    assert group.cadence_id.startswith("cron-30-6-18-")
    assert re.fullmatch(r"[0-9a-zA-Z_.-]{1,64}", group.name)
    utc = config([source("a", schedule={"cron": "*/30 6-18 * * 1-5", "timezone": "UTC"})])
    assert cadence_id(cfg.schedule_of(cfg.sources[0])) != cadence_id(utc.schedule_of(utc.sources[0]))


def test_ten_thousand_sources_fit_in_tens_of_schedules_within_the_shard_limit() -> None:
    groups = plan_schedules(config(many(10_000)))
    assert len(groups) <= 64
    assert all(len(g.sources) <= MAX_SHARD_SIZE for g in groups)
    assert sum(len(g.sources) for g in groups) == 10_000
    (count,) = {g.shard_count for g in groups}
    assert count == 64  # ceil(10,000 / 250) = 40 -> next power of two
    assert count & (count - 1) == 0


def test_a_source_keeps_its_shard_when_others_are_added() -> None:
    before = shard_of(plan_schedules(config(many(600))))
    after = shard_of(plan_schedules(config(many(700))))  # still 4 shards (ceil(700 / 250) = 3 -> 4)
    assert all(after[name] == where for name, where in before.items())


def test_when_the_shard_count_doubles_a_source_moves_at_most_to_its_twin_shard() -> None:
    before = plan_schedules(config(many(1000)))
    after = plan_schedules(config(many(1001)))
    old_count, new_count = before[0].shard_count, after[0].shard_count
    assert (old_count, new_count) == (4, 8)
    old, new = shard_of(before), shard_of(after)
    moved = [n for n in old if new[n][1] != old[n][1]]
    assert all(new[n][1] == old[n][1] + old_count for n in moved)
    assert 0 < len(moved) < len(old)


def test_sources_on_one_server_share_a_shard() -> None:
    shared = [source(f"tenant-{i}", host="big.db.internal") for i in range(40)]
    groups = plan_schedules(config(shared + many(900)))
    holding = {g.shard for g in groups for name in g.sources if name.startswith("tenant-")}
    assert len(holding) == 1


def test_a_server_larger_than_a_shard_is_spread_by_source_name() -> None:
    huge = [source(f"tenant-{i:04d}", host="huge.db.internal") for i in range(TARGET_SHARD_SIZE + 1)]
    groups = plan_schedules(config(huge))
    assert len(groups) > 1
    assert all(len(g.sources) <= MAX_SHARD_SIZE for g in groups)


def test_shard_concurrency_is_lowered_to_a_crowded_servers_limit() -> None:
    crowded = [source(f"t{i}", host="shared.db.internal", max_concurrency=2) for i in range(3)]
    (group,) = plan_schedules(config([*crowded, source("alone", max_concurrency=1)], map_concurrency=30))
    assert group.max_concurrency == 2  # 3 sources on one server, limit 2; 'alone' has 1 source: not binding
    (free,) = plan_schedules(config([source("x", max_concurrency=1), source("y")], map_concurrency=30))
    assert free.max_concurrency == 30


def test_sources_for_returns_exactly_what_each_schedule_covers() -> None:
    cfg = config([*many(1200), source("hourly", schedule={"rate": "1h"})])
    groups = plan_schedules(cfg)
    for g in groups:
        assert sources_for(cfg, g.cadence_id, g.shard) == list(g.sources)
    assert sorted(n for g in groups for n in sources_for(cfg, g.cadence_id, g.shard)) == sorted(
        s.name for s in cfg.sources
    )
    assert sources_for(cfg, groups[0].cadence_id, 10_000) == []


def test_an_unknown_cadence_is_a_config_error_that_says_to_redeploy() -> None:
    cfg = config([source("a")])
    with pytest.raises(ConfigError, match="redeploy"):
        sources_for(cfg, "rate-1-day-000000", 0)


def test_no_sources_no_schedules() -> None:
    assert plan_schedules(config([])) == []
