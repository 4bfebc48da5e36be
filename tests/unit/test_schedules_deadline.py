"""The firing's deadline in the check function's runtime: the plan step counts it from the
execution's start, and a check that could not end by it is recorded as missed, not started."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from driftguard import lambda_runtime
from driftguard.config import Config
from driftguard.errors import ErrorKind
from driftguard.model import RunStatus
from driftguard.schedules import TIMING, ScheduleGroup, plan_index, plan_schedules
from driftguard.secrets import SecretResolver
from driftguard.store.sqlite import SqliteStore

SCHEDULED = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def config(n: int) -> Config:
    return Config.model_validate(
        {
            "sources": [
                {
                    "name": f"s{i:03d}",
                    "kind": "postgres",
                    "connection": {"host": f"db{i % 7}.internal", "database": "app", "user": "u"},
                }
                for i in range(n)
            ]
        }
    )


@pytest.fixture
def rt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[lambda_runtime.Runtime]:
    cfg = config(40)
    monkeypatch.setattr(lambda_runtime, "_plan_index", lambda: plan_index(plan_schedules(cfg)))
    store = SqliteStore(tmp_path / "state.db")
    yield lambda_runtime.Runtime(config=cfg, store=store, secrets=SecretResolver())
    store.close()


def plan_event(group: ScheduleGroup, started: str | None) -> dict[str, Any]:
    event = {
        "action": "plan",
        "cadence": group.cadence_id,
        "shard": group.shard,
        "scheduled_time": SCHEDULED.isoformat(),
    }
    return event if started is None else {**event, "started": started}


def test_the_plan_step_counts_the_deadline_from_the_executions_start(rt: lambda_runtime.Runtime) -> None:
    group = plan_schedules(rt.config)[-1]
    started = datetime.now(UTC) - timedelta(seconds=70)  # the plan step was throttled for a minute
    planned = lambda_runtime.plan(rt, plan_event(group, started.isoformat().replace("+00:00", "Z")))
    items = [item for batch in planned["servers"] for item in batch["sources"]]
    assert sorted(i["source"] for i in items) == list(group.sources)
    assert {i["deadline"] for i in items} == {(started + group.deadline).isoformat()}
    # without the start (an older state machine) it counts from now, as before
    (deadline,) = {
        i["deadline"]
        for b in lambda_runtime.plan(rt, plan_event(group, None))["servers"]
        for i in b["sources"]
    }
    assert datetime.fromisoformat(deadline) > started + group.deadline


def test_a_check_that_could_not_end_by_the_deadline_is_recorded_as_missed_at_once(
    rt: lambda_runtime.Runtime,
) -> None:
    source = rt.config.sources[0]
    room = timedelta(seconds=TIMING.room(source, rt.config.statement_timeout_of(source)))
    deadline = datetime.now(UTC) + room - timedelta(seconds=5)  # five seconds short
    event = {"source": source.name, "scheduled_time": SCHEDULED.isoformat(), "deadline": deadline.isoformat()}
    summary = lambda_runtime.check(rt, event)
    assert summary["status"] == RunStatus.FAILED.value
    (run,) = rt.store.runs(source.name, limit=1)
    assert run.error_kind == ErrorKind.MISSED.value and "ran out of time" in (run.error or "")
