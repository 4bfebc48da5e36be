"""From a Config to EventBridge Scheduler schedules, and back from a schedule to its sources.

Pure and deterministic: the CDK stack calls `plan_schedules` to create one schedule per
(cadence, shard), and the check function's `plan` action calls `plan` with the same config
to learn which sources one firing covers. Both sides run this module on the same bundled
config file, so they always agree.

A *cadence* is what EventBridge Scheduler needs to fire: the schedule expression, its time
zone and its flexible window. Sources with the same cadence share schedules, split into
*shards* of at most `MAX_SHARD_SIZE` sources so that one firing fits one Express execution
(5 minutes, 256 KB of state) and 10,000 sources need tens of schedules, not thousands.

A source's shard is a stable hash of its *database server* modulo a power-of-two shard count
derived from the cadence's size. Hashing the server (not the source) keeps the sources that
share one database server in one shard, so one execution can hold them to the server's limit
(`Source.max_concurrency`, see `ScheduleGroup.max_concurrency`). A server with more than
`TARGET_SHARD_SIZE` sources in one cadence is spread by source name instead; its limit then
holds per shard. Adding sources moves none of the existing ones until the shard count doubles;
then about half of them move.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import timedelta

from driftguard.config import FILE_KINDS, Config, Schedule, Source, format_duration
from driftguard.errors import ConfigError

TARGET_SHARD_SIZE = 250
"""The shard count grows (doubling) until the average shard holds at most this many sources."""

MAX_SHARD_SIZE = 500
"""No shard holds more: 500 sources x ~100 bytes of per-source summary stays far below the
256 KB state limit, and at map_concurrency 40 it is 13 waves of checks inside 5 minutes."""


@dataclass(frozen=True)
class ScheduleGroup:
    """One EventBridge Scheduler schedule: one shard of the sources sharing one cadence."""

    cadence_id: str
    shard: int
    shard_count: int
    expression: str
    timezone: str
    flexible_window: timedelta | None
    period: timedelta
    sources: tuple[str, ...]
    max_concurrency: int
    """Checks of this shard at once: `aws.map_concurrency`, lowered to the `max_concurrency` of any
    server with more sources here than its limit (a server's limit is its sources' smallest).
    The state machine's Map reads it from the schedule's input (MaxConcurrencyPath)."""

    @property
    def name(self) -> str:
        """The schedule's name (unique in the stack's schedule group, at most 64 characters)."""
        return f"{self.cadence_id}-{self.shard:03d}"


def server_of(source: Source) -> str:
    """The database server a source's checks load: sources sharing it share its limit."""
    c = source.connection
    if source.kind in FILE_KINDS:
        return f"{source.kind}:{c.path}"
    return f"{source.kind}://{(c.host or '').lower()}:{c.port or source.default_port}"


def cadence_id(schedule: Schedule) -> str:
    """A readable, stable id for a cadence, e.g. 'rate-15-minutes-1a2b3c'."""
    expression = schedule.aws_expression()
    window = format_duration(schedule.flexible_window) if schedule.flexible_window else "off"
    digest = _digest(f"{expression}|{schedule.timezone}|{window}")[:6]
    slug = re.sub(r"[^a-z0-9]+", "-", expression.lower()).strip("-")[:40].rstrip("-")
    return f"{slug}-{digest}"


def plan_schedules(config: Config) -> list[ScheduleGroup]:
    """Every schedule the stack creates, ordered by cadence id and shard. Empty shards are left out."""
    by_cadence: dict[str, list[Source]] = defaultdict(list)
    schedules: dict[str, Schedule] = {}
    for source in config.sources:
        schedule = config.schedule_of(source)
        cid = cadence_id(schedule)
        by_cadence[cid].append(source)
        schedules.setdefault(cid, schedule)
    groups: list[ScheduleGroup] = []
    for cid in sorted(by_cadence):
        schedule = schedules[cid]
        shards = _shard(by_cadence[cid])
        period = schedule.period
        groups.extend(
            ScheduleGroup(
                cadence_id=cid,
                shard=k,
                shard_count=len(shards),
                expression=schedule.aws_expression(),
                timezone=schedule.timezone,
                flexible_window=schedule.flexible_window,
                period=period,
                sources=tuple(sorted(s.name for s in members)),
                max_concurrency=_shard_concurrency(members, config.aws.map_concurrency),
            )
            for k, members in enumerate(shards)
            if members
        )
    return groups


def sources_for(config: Config, cadence: str, shard: int) -> list[str]:
    """The names of the sources one schedule covers, sorted. Raises ConfigError for an unknown cadence."""
    return [s.name for s in _shard_members(config, cadence, shard)]


def _shard_members(config: Config, cadence: str, shard: int) -> list[Source]:
    members = [s for s in config.sources if cadence_id(config.schedule_of(s)) == cadence]
    if not members:
        known = sorted({cadence_id(config.schedule_of(s)) for s in config.sources})
        raise ConfigError(
            f"no source has cadence {cadence!r}; the deployed config has "
            f"{', '.join(known) or '(no sources)'}. The schedules and the bundled config disagree: "
            "redeploy the stack with `cdk deploy`"
        )
    shards = _shard(members)
    return sorted(shards[shard], key=lambda s: s.name) if 0 <= shard < len(shards) else []


def _shard(members: list[Source]) -> list[list[Source]]:
    """Split one cadence's sources into a power-of-two number of shards, each within MAX_SHARD_SIZE."""
    per_server = Counter(server_of(s) for s in members)
    keys = [
        server_of(s) if per_server[server_of(s)] <= TARGET_SHARD_SIZE else f"{server_of(s)}#{s.name}"
        for s in members
    ]
    hashes = [int(_digest(k)[:16], 16) for k in keys]
    count = 1 << max(0, math.ceil(math.log2(max(1, math.ceil(len(members) / TARGET_SHARD_SIZE)))))
    while True:
        shards: list[list[Source]] = [[] for _ in range(count)]
        for source, h in zip(members, hashes, strict=True):
            shards[h % count].append(source)
        if max(len(s) for s in shards) <= MAX_SHARD_SIZE or count >= len(members):
            return shards
        count *= 2


def _shard_concurrency(members: list[Source], map_concurrency: int) -> int:
    """With a flat Map of M checks at once, any M running may all hit one server: M must not exceed
    the limit of a server that has more sources in the shard than that limit."""
    by_server: dict[str, list[Source]] = defaultdict(list)
    for source in members:
        by_server[server_of(source)].append(source)
    binding = [
        limit for group in by_server.values() if len(group) > (limit := min(s.max_concurrency for s in group))
    ]
    return min([map_concurrency, *binding])


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
