"""Grouped delivery end to end through the engine and the real SQLite store: sources that fail within
group_wait make one message per channel, a later one waits for group_interval, resolved notices
group the same way, and concurrent flushers send each message once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from driftguard.alerts import group_due, merge
from driftguard.config import Config, parse_config
from driftguard.engine import Engine
from driftguard.errors import SourceUnavailable
from driftguard.model import DeliveryRecord, DeliveryStatus, NoticeKind, Notification, Snapshot
from driftguard.store.sqlite import SqliteStore

T0 = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)
SECOND, MINUTE = timedelta(seconds=1), timedelta(minutes=1)

GROUPED = """
sources:
  - {name: orders, kind: sqlite, connection: {path: orders.db}, owner: sales}
  - {name: billing, kind: sqlite, connection: {path: billing.db}, owner: sales}
  - {name: stock, kind: sqlite, connection: {path: stock.db}, owner: sales}
channels:
  - {name: slack, type: console}
  - {name: mail, type: console}
route:
  receivers: [slack, mail]
  group_by: [owner]
  group_wait: 1m
  group_interval: 5m
alerting: {error_after_failures: 1}
"""


class Source:
    """A collector whose source is up or down, as the test says."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.down = False

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def backfill(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("no tables, nothing to backfill")

    def collect(self, scheduled_time: datetime, last_reads: Any = None) -> Snapshot:
        if self.down:
            raise SourceUnavailable(f"{self.name}: connection refused")
        return Snapshot(
            source=self.name, scheduled_time=scheduled_time, collected_at=scheduled_time, tables=[]
        )


class Channels:
    """Every channel's sender; records what each was sent (thread-safe)."""

    def __init__(self) -> None:
        self.sent: list[Notification] = []
        self._lock = threading.Lock()

    def __call__(self, n: Notification) -> DeliveryRecord:
        with self._lock:
            self.sent.append(n)
        return DeliveryRecord(
            notification_id=n.id, channel=n.channel, status=DeliveryStatus.DELIVERED, attempts=1, at=T0
        )

    def take(self) -> list[tuple[str, list[tuple[str, NoticeKind]]]]:
        """(channel, [(source, kind)]) of each message sent since the last take."""
        out = [(n.channel, [(a.key.source, a.kind) for a in n.alerts]) for n in self.sent]
        self.sent.clear()
        return sorted(out)


class World:
    def __init__(self, config: Config, path: Path) -> None:
        self.config = config
        self.path = path
        self.sources = {s.name: Source(s.name) for s in config.sources}
        self.channels = Channels()
        self.now = T0
        self.store = SqliteStore(path)

    def engine(self, store: SqliteStore | None = None) -> Engine:
        return Engine(
            self.config,
            store or self.store,
            collector_factory=lambda source, *_: self.sources[source.name],
            senders={c.name: self.channels for c in self.config.channels},
            clock=lambda: self.now,
        )

    def check(self, source: str, *, down: bool, at: timedelta) -> None:
        self.now = T0 + at
        self.sources[source].down = down
        outcome = self.engine().check(source, self.now)
        assert outcome.deliveries == [], "a grouped notice is never sent by the run itself"

    def flush(self, at: timedelta) -> list[tuple[str, list[tuple[str, NoticeKind]]]]:
        self.now = T0 + at
        self.engine().flush_groups()
        return self.channels.take()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(parse_config(GROUPED), tmp_path / "state.db")
    yield w
    w.store.close()


ERROR, RESOLVED = NoticeKind.ERROR, NoticeKind.RESOLVED


def test_sources_failing_within_group_wait_make_one_message_per_channel_and_a_later_one_waits(
    world: World,
) -> None:
    world.check("orders", down=True, at=0 * SECOND)
    world.check("billing", down=True, at=10 * SECOND)
    assert world.flush(at=59 * SECOND) == []  # group_wait (1m) after the first notice: not yet

    both = [("billing", ERROR), ("orders", ERROR)]
    assert world.flush(at=60 * SECOND) == [("mail", both), ("slack", both)]
    assert world.flush(at=61 * SECOND) == []  # sent once

    world.check("stock", down=True, at=2 * MINUTE)
    assert world.flush(at=2 * MINUTE) == []
    assert world.flush(at=6 * MINUTE - SECOND) == []  # group_interval (5m) after the first message
    stock = [("stock", ERROR)]
    assert world.flush(at=6 * MINUTE) == [("mail", stock), ("slack", stock)]

    world.check("orders", down=False, at=20 * MINUTE)
    world.check("billing", down=False, at=20 * MINUTE + 30 * SECOND)
    assert world.flush(at=20 * MINUTE + 59 * SECOND) == []  # quiet for an interval: group_wait again
    resolved = [("billing", RESOLVED), ("orders", RESOLVED)]
    assert world.flush(at=21 * MINUTE) == [("mail", resolved), ("slack", resolved)]
    assert world.store.pending_groups() == [] and world.store.pending_notifications() == []


def test_the_message_of_a_group_names_its_sources_and_group(world: World) -> None:
    world.check("orders", down=True, at=0 * SECOND)
    world.check("billing", down=True, at=5 * SECOND)
    world.now = T0 + MINUTE
    world.engine().flush_groups()
    message = next(n for n in world.channels.sent if n.channel == "slack")
    assert message.source == "billing, orders" and message.run_time == T0 + MINUTE
    assert message.group is not None and message.group.labels == {"owner": "sales"}
    assert world.store.delivery(message.id) is not None


def test_concurrent_flushers_send_each_groups_message_once(world: World) -> None:
    world.check("orders", down=True, at=0 * SECOND)
    world.check("billing", down=True, at=10 * SECOND)
    world.now = T0 + MINUTE
    stores = [SqliteStore(world.path) for _ in range(4)]  # like separate processes: a connection each
    barrier = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def flush(store: SqliteStore) -> None:
        barrier.wait()
        try:
            world.engine(store).flush_groups()
        except BaseException as e:  # handed to the assertion below
            errors.append(e)

    threads = [threading.Thread(target=flush, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for s in stores:
        s.close()

    assert errors == []
    assert sorted(n.channel for n in world.channels.sent) == ["mail", "slack"]
    assert len({n.id for n in world.channels.sent}) == 2


def test_a_message_sealed_by_a_flusher_that_died_is_sent_by_the_next(world: World) -> None:
    world.check("orders", down=True, at=0 * SECOND)
    world.now = T0 + MINUTE
    (group,) = [g for g in world.store.pending_groups() if g.parts[0].group.channel == "slack"]
    window = group_due(group.parts, None)
    assert world.store.seal_group(group, merge(group.parts, window))  # ... and then it died

    world.engine().flush_groups()

    assert sorted((n.channel, n.run_time) for n in world.channels.sent) == [
        ("mail", window),
        ("slack", window),
    ]


def test_without_grouping_config_every_run_sends_at_once_as_before(tmp_path: Path) -> None:
    config = parse_config(
        GROUPED.replace("  group_by: [owner]\n  group_wait: 1m\n  group_interval: 5m\n", "")
    )
    w = World(config, tmp_path / "state.db")
    w.now = T0
    w.sources["orders"].down = True
    outcome = w.engine().check("orders", T0)
    assert [d.channel for d in outcome.deliveries] == ["mail", "slack"]
    assert outcome.grouped == [] and w.store.pending_groups() == []
    w.channels.take()
    assert w.flush(at=10 * MINUTE) == []
    w.store.close()


def test_a_group_above_the_stores_seal_limit_sends_the_oldest_and_the_rest_an_interval_later(
    world: World,
) -> None:
    world.store.max_sealed_parts = 2  # as DynamoDB's transaction limit does at 97
    for i, source in enumerate(("orders", "billing", "stock")):
        world.check(source, down=True, at=i * SECOND)
    oldest = [("billing", ERROR), ("orders", ERROR)]
    assert world.flush(at=MINUTE) == [("mail", oldest), ("slack", oldest)]
    assert world.flush(at=6 * MINUTE - SECOND) == []
    assert world.flush(at=6 * MINUTE) == [("mail", [("stock", ERROR)]), ("slack", [("stock", ERROR)])]


def test_a_silence_mutes_a_repeat_on_a_route_that_groups(tmp_path: Path) -> None:
    """A repeat moves no state, so only the grouped notice says the silences must be read."""
    from test_engine import CONFIG, RecordingSender, ScriptedCollector, hourly_history

    from driftguard.alerts import new_silence
    from driftguard.model import Matcher

    config = parse_config(
        CONFIG.replace("route: {receivers: [console]}", "route: {receivers: [console], group_by: [table]}")
    )
    store = SqliteStore(tmp_path / "state.db")
    collector = ScriptedCollector([100, 2, 2, 2, 2, 2], history=hourly_history(24 * 21))
    hour = timedelta(hours=1)
    engine = Engine(
        config,
        store,
        collector_factory=lambda *_: collector,
        senders={"console": RecordingSender()},
        clock=lambda: T0,
    )
    fired = [engine.check("shop", T0 + h * hour).grouped for h in range(2)][1]
    assert [a.kind for g in fired for a in g.notification.alerts] == [NoticeKind.FIRING]
    unsilenced = [engine.check("shop", T0 + h * hour).grouped for h in range(2, 6)]
    assert [a.kind for g in unsilenced[-1] for a in g.notification.alerts] == [NoticeKind.REPEAT]  # 4h on

    muted_collector = ScriptedCollector([2], history=hourly_history(24 * 21))
    engine = Engine(
        config,
        store,
        collector_factory=lambda *_: muted_collector,
        senders={"console": RecordingSender()},
        clock=lambda: T0,
    )
    store.put_silence(
        new_silence(
            [Matcher(label="table", value="orders")],
            created_by="alice",
            comment="migration",
            now=T0,
            duration=timedelta(days=1),
        )
    )
    assert engine.check("shop", T0 + 9 * hour).grouped == []  # the next repeat is due, and muted
    store.close()
