"""The local demo: a small shop in an embedded SQLite database, five weeks of history, and one
bad hour, watched by the real engine (collector, detectors, alert lifecycle, channels).

Timeline, with T the demo clock (the latest Tuesday 11:00 UTC, see `demo_clock`):
- history: `orders` loaded hourly with a daily and weekly rhythm; `events` loaded every
  15 minutes until it silently stopped 9 hours ago; `customers` growing slowly;
- run 1 at T-1h: the first check of a new source backfills each table's history from its own
  rows, learns the schemas, and already catches the stalled `events` feed;
- then the incident: the last hourly load of `orders` is broken (a handful of rows, some with
  negative amounts) and a migration drops `customers.lifetime_value` and adds `ltv_cents`;
- run 2 at T: volume drop, schema drift and the custom SQL check fire, with the reason for each.
Deterministic: the same seed gives the same data.
"""

from __future__ import annotations

import math
import random
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

DEMO_CONFIG = """\
# The demo's config: one SQLite source with the checks a team would write.
version: 1
defaults:
  schedule: {{rate: 1h}}
sources:
  - name: shop
    kind: sqlite
    owner: "@shop-data"
    tags: [tier-1, demo]
    connection: {{path: "{db_path}"}}
    tables:
      - name: orders
        checks:
          freshness: {{column: created_at, max_age: 3h}}
          volume: {{column: created_at, period: 1h}}
          schema: true
          columns:
            - {{name: amount, metrics: [null_rate, mean, min, max]}}
      - name: events
        checks:
          freshness: {{column: occurred_at}}
          volume: {{column: occurred_at, period: 1h}}
      - name: customers
        checks:
          schema: true
          volume: {{exact: true}}
    sql_checks:
      - name: no_negative_amounts
        table: orders
        severity: critical
        description: Order amounts are never negative
        sql: |
          select case when count(*) > 0 then 'ALERT' else 'OK' end as status,
                 count(*) as actual, 0 as threshold,
                 min(amount) as worst_amount
          from orders where amount < 0
channels:
  - {{name: console, type: console}}
  - {{name: demo-file, type: file, path: "{notifications_path}"}}
route:
  receivers: [console, demo-file]
state:
  path: "{state_path}"
"""

HISTORY_DAYS = 35
_HOURLY_PROFILE = [
    0.25,
    0.15,
    0.1,
    0.08,
    0.08,
    0.12,
    0.3,
    0.55,
    0.8,
    1.0,
    1.1,
    1.2,
    1.25,
    1.2,
    1.1,
    1.05,
    1.1,
    1.2,
    1.35,
    1.45,
    1.3,
    1.0,
    0.7,
    0.45,
]
_WEEKDAY_FACTOR = [1.0, 1.02, 1.0, 1.05, 1.15, 0.75, 0.6]  # Mon..Sun
_BASE_ORDERS_PER_HOUR = 60


@dataclass(frozen=True)
class DemoPaths:
    directory: Path
    database: Path
    config: Path
    state: Path
    notifications: Path


def demo_paths(directory: Path) -> DemoPaths:
    return DemoPaths(
        directory=directory,
        database=directory / "shop.db",
        config=directory / "driftguard-demo.yaml",
        state=directory / "state.db",
        notifications=directory / "notifications.jsonl",
    )


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S")


def expected_orders(hour_start: datetime) -> float:
    return _BASE_ORDERS_PER_HOUR * _HOURLY_PROFILE[hour_start.hour] * _WEEKDAY_FACTOR[hour_start.weekday()]


def _poisson(rng: random.Random, mean: float) -> int:
    # Knuth for small means, normal approximation above: plenty for demo data.
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def build_database(paths: DemoPaths, now_hour: datetime, seed: int = 7) -> None:
    """Create the shop database with history up to `now_hour - 1h` (the last load is not in yet)."""
    rng = random.Random(seed)
    paths.directory.mkdir(parents=True, exist_ok=True)
    for p in (paths.database, paths.state, paths.notifications):
        p.unlink(missing_ok=True)
    start = now_hour - timedelta(days=HISTORY_DAYS)
    conn = sqlite3.connect(paths.database)
    with conn:
        conn.executescript(
            """
            create table orders (
                id integer primary key, customer_id integer not null, amount real,
                status text not null, created_at timestamp not null);
            create index orders_created_at on orders(created_at);
            create table events (
                id integer primary key, kind text not null, occurred_at timestamp not null);
            create index events_occurred_at on events(occurred_at);
            create table customers (
                id integer primary key, email text not null, country text,
                signup_at timestamp not null, lifetime_value real);
            """
        )
        orders = []
        hour = start
        while hour < now_hour - timedelta(hours=1):
            for _ in range(_poisson(rng, expected_orders(hour))):
                at = hour + timedelta(seconds=rng.randrange(3600))
                amount = None if rng.random() < 0.01 else round(rng.lognormvariate(3.4, 0.6), 2)
                orders.append(
                    (
                        rng.randrange(1, 5000),
                        amount,
                        rng.choice(["paid", "paid", "paid", "refunded"]),
                        _iso(at),
                    )
                )
            hour += timedelta(hours=1)
        conn.executemany(
            "insert into orders(customer_id, amount, status, created_at) values (?,?,?,?)", orders
        )

        events = []
        stop = now_hour - timedelta(hours=9)  # the feed silently stopped here
        t = start
        while t < stop:
            for _ in range(_poisson(rng, 25)):
                events.append(
                    (
                        rng.choice(["view", "click", "cart", "checkout"]),
                        _iso(t + timedelta(seconds=rng.randrange(900))),
                    )
                )
            t += timedelta(minutes=15)
        conn.executemany("insert into events(kind, occurred_at) values (?,?)", events)

        customers = []
        for i in range(4000):
            signup = start + timedelta(seconds=rng.randrange(HISTORY_DAYS * 86400 - 7200))
            customers.append(
                (
                    f"user{i}@example.com",
                    rng.choice(["DE", "FR", "US", "GB", "NL"]),
                    _iso(signup),
                    round(rng.uniform(0, 900), 2),
                )
            )
        conn.executemany(
            "insert into customers(email, country, signup_at, lifetime_value) values (?,?,?,?)", customers
        )
    conn.close()


def break_things(paths: DemoPaths, now_hour: datetime, seed: int = 11) -> None:
    """The incident: a broken last load of orders and a schema migration on customers."""
    rng = random.Random(seed)
    hour = now_hour - timedelta(hours=1)
    conn = sqlite3.connect(paths.database)
    with conn:
        rows = [
            (rng.randrange(1, 5000), round(rng.uniform(5, 80), 2), "paid", _iso(hour + timedelta(minutes=m)))
            for m in (3, 9, 14)
        ]
        rows += [
            (rng.randrange(1, 5000), -round(rng.uniform(5, 80), 2), "paid", _iso(hour + timedelta(minutes=m)))
            for m in (21, 33)
        ]
        conn.executemany("insert into orders(customer_id, amount, status, created_at) values (?,?,?,?)", rows)
        conn.execute("alter table customers drop column lifetime_value")
        conn.execute("alter table customers add column ltv_cents integer")
    conn.close()


def write_config(paths: DemoPaths) -> None:
    paths.config.write_text(
        DEMO_CONFIG.format(
            db_path=paths.database.resolve().as_posix(),
            notifications_path=paths.notifications.resolve().as_posix(),
            state_path=paths.state.resolve().as_posix(),
        ),
        encoding="utf-8",
    )


def demo_clock(now: datetime | None = None) -> datetime:
    """The demo's "now": the latest Tuesday 11:00 UTC. A fixed busy weekday hour keeps the story
    the same whenever it runs (a broken load at 3 a.m. on a Sunday would look like a quiet hour)."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    candidate = now.replace(hour=11, minute=0, second=0, microsecond=0)
    candidate -= timedelta(days=(candidate.weekday() - 1) % 7)
    return candidate if candidate <= now else candidate - timedelta(days=7)
