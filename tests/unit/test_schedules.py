"""The schedule planner: cadence groups, shards within the firing's budget, per-server concurrency,
staggered slots, and the runtime lookup."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftguard.config import Config, Schedule
from driftguard.errors import ConfigError
from driftguard.schedules import (
    END_MARGIN,
    EXPRESS_LIMIT,
    MAX_SHARD_SIZE,
    SHARD_BUDGET,
    TIMING,
    CheckTiming,
    RetryPolicy,
    attempt_fits,
    cadence_id,
    capacity_notes,
    drain_seconds,
    firing_for,
    firing_in_index,
    offset_expression,
    plan_fleet,
    plan_index,
    plan_schedules,
    servers_for,
    servers_in_index,
    shard_latest_start,
    shard_worst_seconds,
    sources_for,
)


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
            source("f", schedule={"cron": "0 6 * * 1-5"}),
        ]
    )
    groups = plan_schedules(cfg)
    by_sources = {g.sources: g for g in groups}
    assert set(by_sources) == {("a", "b"), ("c",), ("d",), ("e",), ("f",)}
    assert (
        by_sources[("a", "b")].expression.startswith("cron(") and "/15 " in by_sources[("a", "b")].expression
    )
    assert by_sources[("d",)].timezone == "Europe/Berlin"
    # aligned rates are staggered by offsets, which need exact times: no flexible window
    assert by_sources[("e",)].flexible_window is None and by_sources[("e",)].offset is not None
    # a cron cannot be offset: it keeps its expression and window
    assert by_sources[("f",)].expression == "cron(0 6 ? * 2-6 *)" and by_sources[("f",)].offset is None
    assert len({g.cadence_id for g in groups}) == 5


def test_cadence_ids_are_readable_deterministic_and_valid_schedule_names() -> None:
    cfg = config([source("a", schedule={"cron": "*/30 6-18 * * 1-5", "timezone": "Europe/Berlin"})])
    again = config([source("a", schedule={"cron": "*/30 6-18 * * 1-5", "timezone": "Europe/Berlin"})])
    (group,) = plan_schedules(cfg)
    assert group.cadence_id == plan_schedules(again)[0].cadence_id
    assert group.cadence_id.startswith("cron-30-6-18-")
    assert re.fullmatch(r"[0-9a-zA-Z_.-]{1,64}", group.name)
    utc = config([source("a", schedule={"cron": "*/30 6-18 * * 1-5", "timezone": "UTC"})])
    assert cadence_id(cfg.schedule_of(cfg.sources[0])) != cadence_id(utc.schedule_of(utc.sources[0]))


@pytest.mark.parametrize(
    ("rate", "offset", "expression"),
    [
        (15, 0, "cron(0/15 * * * ? *)"),
        (15, 10, "cron(10/15 * * * ? *)"),
        (60, 25, "cron(25 * * * ? *)"),
        (120, 65, "cron(5 1/2 * * ? *)"),
        (1440, 125, "cron(5 2 * * ? *)"),
    ],
)
def test_an_aligned_rate_becomes_a_cron_at_its_offset(rate: int, offset: int, expression: str) -> None:
    schedule = Schedule(rate=timedelta(minutes=rate))
    assert offset_expression(schedule, timedelta(minutes=offset)) == expression


def test_ten_thousand_sources_fit_their_firings_with_a_budget_that_can_carry_them() -> None:
    fleet = plan_fleet(config(many(10_000), check_reserved_concurrency=60))
    assert not fleet.problems
    assert all(len(g.sources) <= MAX_SHARD_SIZE for g in fleet.groups)
    assert sorted(n for g in fleet.groups for n in g.sources) == [f"src-{i:05d}" for i in range(10_000)]
    assert all(g.worst_seconds <= SHARD_BUDGET.total_seconds() for g in fleet.groups)
    assert len({g.offset for g in fleet.groups}) == 3, "a 15-minute cadence uses its three slots"
    assert fleet.peak_checks_at_once <= 60


def test_a_budget_too_small_for_the_fleet_is_reported_with_what_to_raise() -> None:
    fleet = plan_fleet(config(many(10_000)))  # the default: 10 at once, nothing reserved
    assert fleet.concurrency_budget == 10 and fleet.problems
    notes = capacity_notes(fleet)
    assert "L-B99A9384" in notes[-1] and "aws.check_reserved_concurrency" in notes[-1]
    wanted = int(re.search(r"reserved_concurrency: (\d+)", notes[-1]).group(1))  # type: ignore[union-attr]
    assert not plan_fleet(config(many(10_000), check_reserved_concurrency=wanted)).problems


def test_the_server_limit_holds_per_server_and_a_busy_server_is_spread_over_shards() -> None:
    crowded = [source(f"t{i:02d}", host="shared.db.internal", max_concurrency=2) for i in range(40)]
    fleet = plan_fleet(config([*crowded, *many(900)], check_reserved_concurrency=40))
    batches = [b for g in fleet.groups for b in g.servers if b.server.startswith("postgres://shared")]
    assert {b.max_concurrency for b in batches} == {2}
    assert sum(len(b.sources) for b in batches) == 40
    for g in fleet.groups:
        assert g.checks_at_once <= g.max_concurrency * max(b.max_concurrency for b in g.servers)


def test_sources_for_and_the_shipped_index_return_exactly_what_each_schedule_covers() -> None:
    cfg = config([*many(1200), source("hourly", schedule={"rate": "1h"})])
    groups = plan_schedules(cfg)
    index = plan_index(groups)
    for g in groups:
        assert sources_for(cfg, g.cadence_id, g.shard) == list(g.sources)
        shipped = servers_in_index(index, g.cadence_id, g.shard)
        assert [(b.max_concurrency, b.sources) for b in shipped] == [
            (b.max_concurrency, b.sources) for b in servers_for(cfg, g.cadence_id, g.shard)
        ]
    assert sorted(n for g in groups for n in sources_for(cfg, g.cadence_id, g.shard)) == sorted(
        s.name for s in cfg.sources
    )
    assert sources_for(cfg, groups[0].cadence_id, 10_000) == []


def test_an_unknown_cadence_is_a_config_error_that_says_to_redeploy() -> None:
    cfg = config([source("a")])
    with pytest.raises(ConfigError, match="redeploy"):
        sources_for(cfg, "rate-1-day-000000", 0)
    with pytest.raises(ConfigError, match="redeploy"):
        servers_in_index(plan_index(plan_schedules(cfg)), "rate-1-day-000000", 0)


def test_no_sources_no_schedules() -> None:
    assert plan_schedules(config([])) == []


def test_the_worst_case_of_a_check_counts_every_attempt_its_backoff_and_the_recording() -> None:
    timing = CheckTiming(function_timeout=90, source_errors=RetryPolicy(3, 2, 2, 20), record_failure=5)
    cfg = config([source("a", statement_timeout="30s")])
    # each retried attempt ends by connect (10 s) + statement (30 s); waits 2 + 4 s; then recorded
    assert timing.worst(cfg.sources[0], timedelta(seconds=30)) == 3 * 40 + 6 + 5
    # an attempt longer than the function's timeout is cut there and not retried
    assert timing.worst(cfg.sources[0], timedelta(seconds=300)) == 3 * 90 + 6 + 5
    assert RetryPolicy(6, 2, 2, 30).worst_backoff() == 2 + 4 + 8 + 16 + 30


def test_the_shard_bound_is_exact_for_one_place_and_takes_the_worst_server() -> None:
    assert shard_worst_seconds([[1.0, 1.0], [2.0]], [1, 1], 1, [[10.0, 10.0], [2.0]]) == 20 + 2
    assert shard_worst_seconds([[1.0], [1.0]], [1, 1], 2, [[9.0], [1.0]]) == (9 + 1) / 2 + 0.5 * 9


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 60), min_size=1, max_size=6),
    cadence=st.sampled_from(["15m", "1h", "1d", "2h"]),
    limit=st.integers(1, 5),
    budget=st.integers(20, 200),
)
def test_a_plan_covers_every_source_once_and_keeps_each_server_to_its_limit(
    sizes: list[int], cadence: str, limit: int, budget: int
) -> None:
    sources = [
        source(
            f"s{server}-{i}", host=f"db{server}.internal", max_concurrency=limit, schedule={"rate": cadence}
        )
        for server, size in enumerate(sizes)
        for i in range(size)
    ]
    fleet = plan_fleet(config(sources, check_reserved_concurrency=budget))
    names = sorted(n for g in fleet.groups for n in g.sources)
    assert names == sorted(s["name"] for s in sources)
    for g in fleet.groups:
        assert len({b.server for b in g.servers}) == len(g.servers), "one batch per server"
        assert all(b.max_concurrency <= limit for b in g.servers)
        assert g.max_concurrency >= 1 and g.worst_seconds > 0
    if not fleet.problems:
        assert fleet.peak_checks_at_once <= budget
    assert TIMING.planned(config(sources).sources[0]) > 0


# --------------------------------------------------------------------------- the firing's deadline

START = datetime(2026, 12, 7, 12, 0, 1, tzinfo=UTC)


def test_the_room_of_an_attempt_counts_the_throttled_invocation_that_records_its_outcome() -> None:
    timing = CheckTiming(
        function_timeout=90,
        source_errors=RetryPolicy(3, 2, 2, 20),
        lambda_throttles=RetryPolicy(6, 2, 2, 30),
        record_failure=5,
    )
    cfg = config([source("a")])
    # cut at the function timeout (not retried), then record_failure throttled 2+4+8+16+30 s, then 5 s
    assert timing.room(cfg.sources[0], timedelta(seconds=30)) == 90 + 60 + 5
    quick = CheckTiming(function_timeout=42, source_errors=RetryPolicy(3, 2, 2, 20))
    # a retried failure (connect 10 s + statement 30 s), the longest wait (4 s), then the next attempt
    # finds the deadline past after its throttling and records the run as missed
    assert quick.room(cfg.sources[0], timedelta(seconds=30)) == 40 + 4 + 60 + 5
    assert RetryPolicy(3, 2, 2, 20).waits() == [2, 4] and RetryPolicy(1, 2, 2, 20).longest_wait() == 0


@settings(max_examples=200, deadline=None)
@given(
    statement=st.integers(1, 400),
    slack_ms=st.integers(-400_000, 400_000),
    ran=st.floats(0, 1),
    waited=st.floats(0, 1),
    throttled=st.lists(st.floats(0, 1), min_size=5, max_size=5),
)
def test_an_attempt_that_is_allowed_to_start_has_its_outcome_recorded_by_the_deadline(
    statement: int, slack_ms: int, ran: float, waited: float, throttled: list[float]
) -> None:
    """Whatever the attempt takes (up to its bound), the wait before the next attempt and the
    throttling of the invocation that records the outcome (full jitter: each wait up to its cap)."""
    cfg = config([source("a", statement_timeout=f"{statement}s")])
    s, timeout = cfg.sources[0], timedelta(seconds=statement)
    deadline = START + timedelta(seconds=240)
    now = deadline - timedelta(seconds=TIMING.room(s, timeout), milliseconds=slack_ms)
    fits = attempt_fits(s, timeout, now, deadline)
    assert fits == (slack_ms >= 0)
    if not fits:
        return
    throttle = sum(f * w for f, w in zip(throttled, TIMING.lambda_throttles.waits(), strict=True))
    retried = ran * TIMING.attempt(s, timeout) + waited * TIMING.source_errors.longest_wait()
    cut = TIMING.function_timeout
    for attempt in (retried, cut):
        ends = now + timedelta(seconds=attempt + throttle + TIMING.record_failure)
        assert ends <= deadline


def test_the_deadline_leaves_time_to_record_every_check_the_deadline_stops() -> None:
    """The drain: every check of the shard recorded as missed, one short invocation each, at the
    shard's concurrency, between the deadline and the end of the execution."""
    assert drain_seconds([10], [2], 1) == 5 * TIMING.planned_missed
    assert drain_seconds([1] * 8, [1] * 8, 4) == shard_worst_seconds([[0.5]] * 8, [1] * 8, 4, [[0.5]] * 8)
    fleet = plan_fleet(config(many(3000), check_reserved_concurrency=40))
    for g in fleet.groups:
        sizes = [len(b.sources) for b in g.servers]
        drain = drain_seconds(sizes, [b.max_concurrency for b in g.servers], g.max_concurrency)
        assert g.deadline == EXPRESS_LIMIT - END_MARGIN - timedelta(seconds=math.ceil(drain))
        # a healthy shard has room to start its checks before its deadline
        assert g.deadline.total_seconds() - TIMING.room(config(many(1)).sources[0], timedelta(seconds=30)) > 0


def test_the_shipped_index_carries_each_firings_deadline() -> None:
    cfg = config([*many(1200), source("hourly", schedule={"rate": "1h"})])
    groups = plan_schedules(cfg)
    index = plan_index(groups)
    for g in groups:
        shipped, planned = (
            firing_in_index(index, g.cadence_id, g.shard),
            firing_for(cfg, g.cadence_id, g.shard),
        )
        assert shipped.deadline == planned.deadline == g.deadline
        assert shipped.deadline_at(START) == START + g.deadline
    assert firing_in_index(index, groups[0].cadence_id, 999).servers == ()


def test_a_shard_of_one_source_a_server_runs_as_many_servers_at_once_as_its_share() -> None:
    fleet = plan_fleet(config([source(f"s{i:03d}", max_concurrency=2) for i in range(300)]))
    for g in fleet.groups:
        assert all(b.max_concurrency == 1 for b in g.servers), "one source: one check at a time"
        assert g.checks_at_once == g.max_concurrency
    assert fleet.peak_checks_at_once <= fleet.concurrency_budget


def test_the_latest_start_bound_is_exact_for_one_place_and_counts_a_failing_batch_before_the_others() -> None:
    # one place: the last check starts after everything else
    assert shard_latest_start([[1.0, 1.0], [2.0]], [1, 1], 1, [[1.0, 1.0], [2.0]]) == 2 + 1
    # the second batch may wait for the first one failing (10 s), and two waves of its own
    assert shard_latest_start([[1.0], [1.0, 1.0]], [1, 1], 1, [[10.0], [1.0, 1.0]]) == 10 + 1
    # a batch's own failure does not delay its own start
    assert shard_latest_start([[1.0]], [1], 1, [[50.0]]) == 0


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 6), min_size=1, max_size=8),
    limits=st.lists(st.integers(1, 3), min_size=8, max_size=8),
    outer=st.integers(1, 4),
    times=st.lists(st.floats(0.1, 5.0), min_size=64, max_size=64),
)
def test_no_check_of_a_list_scheduled_firing_starts_after_the_latest_start_bound(
    sizes: list[int], limits: list[int], outer: int, times: list[float]
) -> None:
    """Play the two-level Map (outer places over server batches, each batch in waves of its limit,
    a wave as long as its batch's longest check, as the bound assumes) and compare."""
    batches = [[times[8 * b + i] for i in range(n)] for b, n in enumerate(sizes)]
    concurrency = limits[: len(sizes)]
    free = [0.0] * outer
    latest = 0.0
    for batch, c in zip(batches, concurrency, strict=True):
        place = min(range(outer), key=lambda p: free[p])
        waves = math.ceil(len(batch) / c)
        latest = max(latest, free[place] + (waves - 1) * max(batch))
        free[place] += waves * max(batch)
    assert latest <= shard_latest_start(batches, concurrency, outer, batches) + 1e-9
