"""The performance benchmarks still run and print well-formed figures (quick mode). Never timings:
what a benchmark measures is its own business; that it measures and reports is this file's."""

from __future__ import annotations

import json
from typing import Any

import bench.__main__ as runner
import pytest
import sqlalchemy as sa
from bench.perf import cold_start, cost_per_check, demo, fleet, memory, scale, soda
from bench.perf.report import Report, Table

VERDICTS = {"MET", "NOT MET", "NOT MEASURED"}


def assert_well_formed(report: Report, *, tables: int) -> dict[str, Any]:
    figures = json.loads(json.dumps(report.to_json()))
    assert len(figures["tables"]) >= tables
    for table in figures["tables"]:
        assert table["title"] and table["columns"] and table["rows"], table
        assert all(len(row) == len(table["columns"]) for row in table["rows"]), table
    assert all(b["verdict"] in VERDICTS for b in figures["budgets"])
    text = report.render()
    assert all(t["title"] in text for t in figures["tables"])
    return figures


# --------------------------------------------------------------------------- pure parts


def test_a_table_renders_aligned_columns_and_refuses_a_short_row() -> None:
    table = Table("t", ["a", "bee"])
    table.add(1234567, 0.5)
    table.add(None, "x")
    lines = table.render().splitlines()
    assert lines[0] == "## t"
    assert len({len(line) for line in lines[1:]}) == 1
    assert "1,234,567" in lines[3] and "| -" in lines[4]
    with pytest.raises(ValueError, match="1 cells for 2 columns"):
        table.add(1)


def test_dynamodb_capacity_follows_the_sizing_rules() -> None:
    small = {"pk": {"S": "RUN#a"}, "sk": {"S": "x"}}
    big = {"pk": {"S": "SNAP#a"}, "body": {"B": b"z" * 5000}}
    assert cost_per_check.item_size(small) == len("pk") + 5 + len("sk") + 1
    assert cost_per_check.capacity("GetItem", {"ConsistentRead": True}, {"Item": big}) == (2, 0)
    assert cost_per_check.capacity("GetItem", {}, {}) == (0.5, 0)  # a miss still costs a unit
    assert cost_per_check.capacity("PutItem", {"Item": big}, {}) == (0, 5)
    transaction = {"TransactItems": [{"Put": {"Item": small}}, {"ConditionCheck": {}}]}
    assert cost_per_check.capacity("TransactWriteItems", transaction, {}) == (0, 4)
    keys = {"RequestItems": {"t": {"Keys": [small, small], "ConsistentRead": True}}}
    assert cost_per_check.capacity("BatchGetItem", keys, {"Responses": {"t": [small]}}) == (2, 0)


def test_calls_are_attributed_to_the_items_they_touch() -> None:
    query = {"TableName": "s", "ExpressionAttributeValues": {":0": {"S": "SERIES#ab"}, ":1": {"S": "2026-"}}}
    assert cost_per_check.purpose("dynamodb", query) == "SERIES items"
    idempotency = {"TableName": cost_per_check.IDEMPOTENCY_TABLE, "Item": {"id": {"S": "x"}}}
    assert cost_per_check.purpose("dynamodb", idempotency) == "Powertools idempotency record"
    assert cost_per_check.purpose("secretsmanager", {"SecretId": "s1"}) == "secret s1"


def test_import_costs_read_importtime_lines() -> None:
    log = "\n".join(
        [
            "import time: self [us] | cumulative | imported package",
            "import time:      1000 |       1000 |     pydantic.main",
            "import time:      2000 |       3000 |   pydantic",
            "import time:       500 |       3500 | handler",
        ]
    )
    costs = cold_start.import_costs(log)
    assert costs.by_package == {"pydantic": 3.0, "handler": 0.5}
    assert costs.direct == {"pydantic": 3.0}


# --------------------------------------------------------------------------- the benchmarks, quick


@pytest.mark.slow
def test_cold_start_quick() -> None:
    figures = assert_well_formed(cold_start.run(quick=True), tables=3)
    assert [b["name"] for b in figures["budgets"]] == [
        "handler import + container() vs the framework floor",
        "network connects during init",
    ]
    assert not figures["problems"]


@pytest.mark.slow
def test_demo_quick() -> None:
    assert not assert_well_formed(demo.run(quick=True), tables=1)["problems"]


@pytest.mark.slow
@pytest.mark.postgres
def test_cost_per_check_quick(_pg_admin: sa.Engine) -> None:
    report = cost_per_check.run(quick=True)
    figures = assert_well_formed(report, tables=2)
    assert not figures["problems"]
    per_check, breakdown = report.tables
    assert [row[:2] for row in per_check.rows] == [[1, "A"], [2, "A"], [3, "A"], [4, "A"], [5, "B"], [6, "A"]]
    assert all(isinstance(row[5], int) and row[5] > 0 for row in per_check.rows)  # AWS calls were counted
    assert {row[0] for row in breakdown.rows} <= {"dynamodb", "secretsmanager"}


@pytest.mark.slow
@pytest.mark.postgres
def test_scale_quick(_pg_admin: sa.Engine) -> None:
    figures = assert_well_formed(scale.run(quick=True), tables=3)
    assert not figures["problems"]


@pytest.mark.slow
@pytest.mark.postgres
def test_soda_quick_keeps_the_driftguard_column_without_installing(_pg_admin: sa.Engine) -> None:
    report = soda.run(quick=True, install=False)
    figures = assert_well_formed(report, tables=1)
    rows = {row[0]: row for row in report.tables[0].rows}
    assert rows["DriftGuard, steady run"][1] != "NOT RUN"
    floor = rows["raw SQL floor (pg8000 alone, one connection, the same reads)"]
    assert floor[1] != "NOT RUN" and "'tables with rows': 1" in floor[-1]
    assert any(b.name.startswith("DriftGuard steady run vs the raw SQL floor") for b in report.budgets)
    missing = any("SODA CORE COLUMN MISSING" in p for p in figures["problems"])
    for label in (
        "Soda Core, documented Python path (a connection a contract)",
        "Soda Core, one process, one shared connection",
        "Soda Core CLI, one process a contract",
    ):
        assert (rows[label][1] == "NOT RUN") == missing, label


def test_the_fleet_simulation_accounts_for_every_scheduled_check() -> None:
    config = fleet.generated_config(100, None)
    sim = fleet.Fleet(config, fleet.plan_fleet(config), hours=1.0, seed=3)
    figures = sim.run()
    for cadence, scheduled in figures.scheduled.items():
        outcomes = (
            figures.checked[cadence]
            + figures.failed[cadence]
            + figures.deferred[cadence]
            + figures.lost[cadence]
        )
        assert outcomes == scheduled, cadence
    assert figures.failed, "the slow sources and the server that is down fail"
    assert figures.peak_in_flight <= sim.fleet.concurrency_budget


def test_a_throttle_storm_ends_every_execution_in_time_and_leaves_no_check_unaccounted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """30 % of all Lambda invocations throttled at random, on top of the budget: the throttle waits
    pass inside the executions, and the deadline still ends each one inside the Express limit."""
    monkeypatch.setattr(fleet, "THROTTLE_SHARE", 0.3)
    config = fleet.generated_config(200, None)
    sim = fleet.Fleet(config, fleet.plan_fleet(config), hours=2.0, seed=5)
    figures = sim.run()
    assert figures.throttles > 500
    assert not figures.over_limit and max(figures.worst_execution.values()) <= 300
    for cadence, scheduled in figures.scheduled.items():
        outcomes = figures.checked[cadence] + figures.failed[cadence] + figures.deferred[cadence]
        assert outcomes + figures.lost[cadence] == scheduled, cadence
    assert sim.missed_without_alert() == 0


@pytest.mark.slow
def test_fleet_quick() -> None:
    figures = assert_well_formed(fleet.run(quick=True), tables=4)
    # deterministic (seed 11): the quick fleet meets every target at the default budget and at 40
    assert len(figures["budgets"]) == 6
    assert {b["verdict"] for b in figures["budgets"]} == {"MET"}, figures["budgets"]


@pytest.mark.slow
def test_memory_quick() -> None:
    figures = assert_well_formed(memory.run(quick=True), tables=2)
    assert not figures["problems"]
    peaks = {row[0].split(":")[0]: row[1] for row in figures["tables"][0]["rows"]}
    one, many = (row[1] for row in figures["tables"][0]["rows"] if row[0].startswith("check, as shipped"))
    assert one < peaks["before slices"]  # a check reads its source's slice, not the fleet's config
    assert many - one < 5  # 200 sources' slices in turn: the container keeps only the last few


# --------------------------------------------------------------------------- the runner


def test_the_runner_reports_a_missing_benchmark_and_goes_on(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ghost = runner.Benchmark("ghost", "bench.perf.no_such_benchmark", True)
    monkeypatch.setattr(runner, "BENCHMARKS", (ghost,))
    assert runner.main(["--quick"]) == 1
    out = capsys.readouterr().out
    assert "module bench.perf.no_such_benchmark is missing" in out
    assert "| ghost     | MISSING |" in out


@pytest.mark.slow
def test_the_runner_runs_a_benchmark_and_summarises_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert runner.main(["--quick", "--only", "cold-start"]) == 0
    summary = capsys.readouterr().out.split("## Benchmarks run")[-1]
    assert "cold-start" in summary and "| ok " in summary and "MET" in summary
