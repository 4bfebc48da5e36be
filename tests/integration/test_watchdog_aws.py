"""The watchdog action against the real DynamoDB store adapter and SNS (moto): a source without a
recorded run for two periods gets one missed run and one page, a repeated tick changes nothing,
and a source checked recently is left alone."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aws_world import paged_runtime, sqs_bodies

from driftguard import lambda_runtime
from driftguard.engine import Engine, source_key
from driftguard.errors import ErrorKind, SourceUnavailable
from driftguard.ledger import ClaimRequest
from driftguard.model import AlertStateName, DeliveryStatus, Snapshot
from driftguard.notify import delivery
from driftguard.notify.delivery import deliver_once
from driftguard.secrets import SecretResolver
from driftguard.store.dynamodb import DynamoStore

REGION = "eu-west-1"
WATCHDOG_TIMEOUT = timedelta(minutes=5)  # infra/constructs/watchdog.py
T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
CONFIG = """
sources:
  - name: quiet
    kind: postgres
    connection: {host: quiet.internal, database: app, user: ro}
    schedule: {rate: 15m}
  - name: busy
    kind: postgres
    connection: {host: busy.internal, database: app, user: ro}
    schedule: {rate: 15m}
channels:
  - {name: ops, type: sns}
route: {receivers: [ops]}
"""


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    (tmp_path / "driftguard.yaml").write_text(CONFIG)
    with paged_runtime(monkeypatch, tmp_path / "driftguard.yaml", REGION) as paged:
        yield paged


def pages(sqs: Any, queue: str) -> list[dict[str, Any]]:
    return sqs_bodies(sqs, queue)


def test_a_silent_source_gets_one_missed_run_and_one_page(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    sqs, queue = aws
    through_ledger: list[str] = []

    def spy(store: Any, notification_id: str, *args: Any) -> Any:
        through_ledger.append(notification_id)
        return deliver_once(store, notification_id, *args)

    monkeypatch.setattr(delivery, "deliver_once", spy)
    rt = lambda_runtime.runtime()
    engine = Engine(rt.config, rt.store, secrets=rt.secrets, deliver_inline=False)
    engine.record_failure("quiet", T0, SourceUnavailable("refused"))  # its last recorded run
    engine.record_failure("busy", T0 + timedelta(minutes=30), SourceUnavailable("refused"))

    tick = {"action": "watchdog", "time": (T0 + timedelta(minutes=35)).isoformat()}
    result = lambda_runtime.watchdog(rt, tick)
    assert result == {"sources": 2, "overdue": ["quiet"], "recorded": 1, "notifications": 1}
    (run,) = rt.store.runs("quiet", limit=1)
    assert run.scheduled_time == T0 + timedelta(minutes=30) and run.error_kind == ErrorKind.MISSED.value
    (page,) = pages(sqs, queue)
    assert "no check recorded" in page["Message"]
    # sent through the delivery ledger, like every notification: claimed, marked, nothing left waiting
    (claimed,) = through_ledger
    delivered = rt.store.delivery(claimed)
    assert delivered is not None and delivered.status == DeliveryStatus.DELIVERED
    assert rt.store.pending_notifications("quiet") == []

    assert lambda_runtime.watchdog(rt, tick)["recorded"] == 0, "a repeated tick records nothing"
    later = {"action": "watchdog", "time": (T0 + timedelta(minutes=50)).isoformat()}
    continuing = {"sources": 2, "overdue": ["quiet"], "recorded": 1, "notifications": 0}
    assert lambda_runtime.watchdog(rt, later) == continuing, "each further period is missed, paged once"
    then = {"action": "watchdog", "time": (T0 + timedelta(minutes=65)).isoformat()}
    assert lambda_runtime.watchdog(rt, then) == {
        "sources": 2,
        "overdue": ["busy", "quiet"],
        "recorded": 2,
        "notifications": 1,  # busy's silence is new and pages; quiet's continues
    }
    assert len(pages(sqs, queue)) == 1


class EmptyCollector:
    """A source without tables collects nothing: enough for a check to be recorded as OK."""

    def __init__(self, source: Any, *_: Any) -> None:
        self.source = source

    def __enter__(self) -> EmptyCollector:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def collect(self, scheduled_time: datetime, last_reads: Any = None) -> Snapshot:
        return Snapshot(
            source=self.source.name, scheduled_time=scheduled_time, collected_at=scheduled_time, tables=[]
        )


def tick(at: datetime) -> dict[str, Any]:
    return {"action": "watchdog", "time": at.isoformat()}


def source_state(rt: Any, source: str) -> AlertStateName:
    (state,) = [s for s in rt.store.alert_states(source) if s.key == source_key(source)]
    return state.state


def test_a_source_that_never_ran_pages_once_two_periods_after_it_was_deployed_and_resolves(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqs, queue = aws
    requests: list[ClaimRequest] = []

    def spy(store: Any, notification_id: str, send: Any, request: ClaimRequest) -> Any:
        requests.append(request)
        return deliver_once(store, notification_id, send, request)

    monkeypatch.setattr(delivery, "deliver_once", spy)
    rt = lambda_runtime.runtime()
    in_lambda: dict[str, Any] = {"claimer": "lambda:request-1", "remaining_ms": 299_000}
    # The first tick after the deploy: nothing ran yet, so nothing is overdue; it starts watching both.
    assert lambda_runtime.watchdog(rt, tick(T0), **in_lambda)["overdue"] == []
    engine = Engine(rt.config, rt.store, secrets=rt.secrets, deliver_inline=False)
    engine.record_failure("busy", T0 + timedelta(minutes=30), SourceUnavailable("refused"))  # busy ran

    for minutes in (5, 15, 30, 34):  # not before two periods (30 min) and the grace (5 min)
        assert (
            lambda_runtime.watchdog(rt, tick(T0 + timedelta(minutes=minutes)), **in_lambda)["overdue"] == []
        )
    assert pages(sqs, queue) == []

    result = lambda_runtime.watchdog(rt, tick(T0 + timedelta(minutes=35)), **in_lambda)
    assert result == {"sources": 2, "overdue": ["quiet"], "recorded": 1, "notifications": 1}
    (page,) = pages(sqs, queue)
    assert "no check recorded ever" in page["Message"]
    (run,) = rt.store.runs("quiet", limit=1)
    assert run.scheduled_time == T0 + timedelta(minutes=30) and run.error_kind == ErrorKind.MISSED.value
    assert source_state(rt, "quiet") == AlertStateName.NO_DATA
    # Claimed in the ledger with a lease that ends soon after the invocation could (not 15 minutes).
    (request,) = requests
    assert request.claimer == "lambda:request-1"
    assert request.until - request.now == timedelta(seconds=299) + lambda_runtime.CLAIM_MARGIN
    assert request.until - request.now <= WATCHDOG_TIMEOUT + lambda_runtime.CLAIM_MARGIN

    again = lambda_runtime.watchdog(rt, tick(T0 + timedelta(minutes=35)), **in_lambda)
    assert again["recorded"] == 0 and again["notifications"] == 0, "a repeated tick changes nothing"
    assert lambda_runtime.watchdog(rt, tick(T0 + timedelta(minutes=50)), **in_lambda)["notifications"] == 0
    assert pages(sqs, queue) == [], "a continuing silence pages once"

    checker = Engine(rt.config, rt.store, secrets=rt.secrets, collector_factory=EmptyCollector)
    checker.check("quiet", T0 + timedelta(minutes=60))
    assert source_state(rt, "quiet") == AlertStateName.RESOLVED, "its first run resolves it"


def test_two_watchdogs_at_once_page_a_never_run_source_exactly_once(aws: Any) -> None:
    sqs, queue = aws
    config = lambda_runtime.runtime().config
    lambda_runtime.watchdog(lambda_runtime.runtime(), tick(T0))  # the first tick after the deploy

    def container() -> lambda_runtime.Runtime:  # each invocation in a container of its own
        return lambda_runtime.Runtime(config=config, store=DynamoStore("state"), secrets=SecretResolver())

    runtimes = [container(), container()]
    start = threading.Barrier(len(runtimes))
    results: list[dict[str, Any]] = []

    def invoke(rt: lambda_runtime.Runtime, n: int) -> None:
        start.wait()
        at = tick(T0 + timedelta(minutes=35))
        results.append(lambda_runtime.watchdog(rt, at, claimer=f"lambda:{n}", remaining_ms=299_000))

    threads = [threading.Thread(target=invoke, args=(rt, n)) for n, rt in enumerate(runtimes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    # Which sources each saw overdue depends on who got there first (one may already find the other's
    # missed run recorded); between them they saw both, and each missed run is recorded and paged once.
    assert len(results) == 2 and all(set(r["overdue"]) <= {"busy", "quiet"} for r in results)
    assert set(results[0]["overdue"]) | set(results[1]["overdue"]) == {"busy", "quiet"}
    assert sum(r["recorded"] for r in results) == 2, "each missed run recorded once between them"
    assert sum(r["notifications"] for r in results) == 2
    sent = pages(sqs, queue) + pages(sqs, queue)
    assert len(sent) == 2, "one page per source, whichever watchdog sent it"
    assert [sum(name in p["Message"] for p in sent) for name in ("busy", "quiet")] == [1, 1]
