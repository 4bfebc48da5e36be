"""From a Config to EventBridge Scheduler schedules, and back from a schedule to its sources.

Pure and deterministic: the CDK stack calls `plan_schedules` to create one schedule per
(cadence, shard), and the check function's `plan` action reads the same plan (`plan_index`, or
`firing_for` on the same config) to learn which sources one firing covers, grouped by database
server, and the firing's deadline. Both sides run this module on the same bundled config file, so
they always agree. docs/scaling.md gives the reasoning and the
numbers; in short:

* A *cadence* is what EventBridge Scheduler needs to fire: the schedule expression, its time zone
  and its flexible window. Sources with the same cadence share schedules, split into *shards*.
* One firing is one Express execution: it must end within 5 minutes, or the sources it had not
  reached yet would go unchecked. Every shard is sized so its worst case fits `SHARD_BUDGET`
  (240 s, 80 % of the limit): the checks take their planned time, and the worst database server
  of the shard fails in the slowest way the state machine allows (every check of it retried to
  its last attempt, each attempt cut at the connect plus statement timeout, with the backoff).
* What the plan cannot foresee (many servers failing, throttling) the *deadline* contains: counted
  from the execution's start, it leaves time to record every check it stops, and a check attempt
  starts only if it can end, with its throttled recording, by then (`attempt_fits`). So every
  execution ends inside the Express limit and every check gets an outcome (checked, failed, missed).
* `Source.max_concurrency` holds per database server, not per shard: the state machine maps over
  the shard's servers, and each server's checks run in a Map of their own limited to it. A shard
  holds at most as many of one server's sources as that server can check in the budget, so a
  busy server is spread over several shards; those run in different *slots*.
* Slots stagger the firings: a slot is 5 minutes (one execution at most), and each aligned
  cadence (rates that divide an hour or a day) gets offsets so that firings of one cadence, and
  as far as possible of all cadences, do not run at the same time. The concurrency budget
  (`aws.check_concurrency`, or the reserved concurrency) is shared by the shards that may run at
  once, so all checks together stay under it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from driftguard.config import FILE_KINDS, Config, Schedule, Source, format_duration
from driftguard.errors import ConfigError

EXPRESS_LIMIT = timedelta(minutes=5)
SHARD_BUDGET = timedelta(seconds=240)
"""What one firing may take in its worst case: 80 % of the Express limit, the rest is margin for
Step Functions' own latency and the deliveries after the last check."""

END_MARGIN = timedelta(seconds=10)
"""Kept free at the end of every execution: Step Functions' own latency between states and the
states after the last check. Every check of a firing has its outcome recorded by
EXPRESS_LIMIT - END_MARGIN after the execution started (see `ScheduleGroup.deadline`)."""

SHARD_FILL = 0.5
"""A cadence gets enough shards that each is planned to use at most half of its firing's budget
(at its share of the concurrency): the other half absorbs a failing server, slow sources, throttles."""

SLOT = timedelta(minutes=5)
"""Firings that start a slot apart never overlap: no execution outlives the Express limit."""

INLINE_MAP_LIMIT = 40
"""An inline Map runs at most 40 iterations at once (Step Functions quota)."""

MAX_SHARD_SIZE = 500
"""No shard holds more: the plan's result (source names by server) stays far below the 256 KB
state limit."""


@dataclass(frozen=True)
class RetryPolicy:
    """A Step Functions Retry: exponential backoff from `interval`, capped, with full jitter."""

    attempts: int
    interval: float
    rate: float
    max_delay: float

    def worst_backoff(self) -> float:
        """The longest the waits between all attempts can add up to (full jitter waits at most this)."""
        return sum(self.waits())

    def longest_wait(self) -> float:
        """The longest single wait between two attempts."""
        return max(self.waits(), default=0.0)

    def waits(self) -> list[float]:
        """The longest wait before each retry, in order (full jitter waits between 0 and this)."""
        return [min(self.interval * self.rate**n, self.max_delay) for n in range(self.attempts - 1)]


@dataclass(frozen=True)
class CheckTiming:
    """How long one source's check can hold its place in a firing: what the planner budgets.

    The state machine retries a check that raised SourceUnavailable or QueryTimeout; both arise
    while connecting or on a statement, so a retried attempt ends by the connect timeout plus
    the statement timeout. An attempt that runs longer ends at the function timeout and is not
    retried (a Lambda timeout is caught and recorded). Either way the Catch then records the
    failure in one more short invocation. tests/infra checks these numbers against the synthesized
    state machine."""

    function_timeout: float = 90.0
    source_errors: RetryPolicy = RetryPolicy(attempts=3, interval=2, rate=2, max_delay=20)
    lambda_throttles: RetryPolicy = RetryPolicy(attempts=6, interval=2, rate=2, max_delay=30)
    """The state machine's retry of Lambda.TooManyRequestsException on every Lambda task: a throttled
    invocation waits up to 2 + 4 + 8 + 16 + 30 = 60 s before it runs (or fails for good)."""
    record_failure: float = 5.0
    planned_missed: float = 0.5
    """Recording a check the deadline did not let start, and delivering its notice, as planned: one
    short invocation that writes one run (no SQL), then one notify invocation."""
    planned_base: float = 0.5
    planned_per_table: float = 0.03
    """A healthy check as planned: 0.5 s plus 30 ms a table (1.1 s for 20 tables), about 3x what
    bench/README.md measured (12 ms a table in a steady run, 3 AWS calls a check)."""

    def planned(self, source: Source) -> float:
        return self.planned_base + self.planned_per_table * (len(source.tables) + len(source.sql_checks))

    def attempt(self, source: Source, statement_timeout: timedelta) -> float:
        """How long an attempt that fails in a retried way can take: connect, then a statement."""
        return min(
            self.function_timeout, (source.connection.connect_timeout + statement_timeout).total_seconds()
        )

    def worst(self, source: Source, statement_timeout: timedelta) -> float:
        retried_attempt = self.attempt(source, statement_timeout)
        retried = self.source_errors.attempts * retried_attempt + self.source_errors.worst_backoff()
        return max(retried, self.function_timeout) + self.record_failure

    def room(self, source: Source, statement_timeout: timedelta) -> float:
        """From the start of one attempt until the check's outcome is recorded, at worst: the attempt
        (a retried failure, then the wait before the next attempt; or cut at the function timeout),
        then the invocation that records the outcome (the next attempt finding the deadline past, or
        the Catch's record_failure), throttled to the end of its retries, then the recording itself.
        An attempt may start only this long before its firing's deadline (`attempt_fits`)."""
        retried = self.attempt(source, statement_timeout) + self.source_errors.longest_wait()
        return (
            max(retried, self.function_timeout) + self.lambda_throttles.worst_backoff() + self.record_failure
        )


TIMING = CheckTiming()


@dataclass(frozen=True)
class ServerBatch:
    """The sources of one database server in one shard, checked at most `max_concurrency` at once."""

    server: str
    max_concurrency: int
    sources: tuple[str, ...]


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
    offset: timedelta | None
    """When in its period the shard fires (its slot), already part of `expression`; None for a
    cadence that cannot be staggered (a cron, or a rate dividing neither an hour nor a day)."""
    servers: tuple[ServerBatch, ...]
    max_concurrency: int
    """Servers of this shard checked at once (the outer Map's MaxConcurrency, from the schedule's
    input): the shard's share of the concurrency budget divided by its busiest server's limit."""
    worst_seconds: float
    """The planned worst case of one firing (see `shard_worst_seconds`), at most SHARD_BUDGET."""
    deadline: timedelta = EXPRESS_LIMIT - END_MARGIN
    """How long after its execution starts every check of a firing must have its outcome recorded:
    EXPRESS_LIMIT - END_MARGIN less the time to record every check of the shard as missed at the
    shard's concurrency (`drain_seconds`), since the checks the deadline stops must still be
    recorded, one invocation each, before the execution ends. A check attempt starts only if it
    can end, with its recording, by then (`attempt_fits`)."""
    latest_start_seconds: float = 0.0
    """When the last check of a healthy firing starts at the latest (`shard_latest_start`)."""
    room_seconds: float = 0.0
    """The longest `CheckTiming.room` of the shard's sources."""

    @property
    def fits(self) -> bool:
        """The firing's worst case fits SHARD_BUDGET, and a healthy firing starts every check early
        enough for its deadline (none is recorded as missed)."""
        return _fits(self.worst_seconds, self.latest_start_seconds, self.room_seconds, self.deadline)

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(sorted(name for batch in self.servers for name in batch.sources))

    @property
    def checks_at_once(self) -> int:
        """The most checks this shard runs at once."""
        limits = sorted((b.max_concurrency for b in self.servers), reverse=True)
        return sum(limits[: self.max_concurrency])

    @property
    def name(self) -> str:
        """The schedule's name (unique in the stack's schedule group, at most 64 characters)."""
        return f"{self.cadence_id}-{self.shard:03d}"


@dataclass
class FleetPlan:
    """Every schedule, and what the fleet needs from the account's Lambda concurrency."""

    groups: list[ScheduleGroup]
    concurrency_budget: int
    peak_checks_at_once: int
    problems: list[str] = field(default_factory=list)
    """Why a shard could not be planned within its budget (the budget is too small for the fleet)."""
    suggested_budget: int | None = None
    """With problems: a budget with which every firing fits (None: none up to 10,000 does)."""


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


class _Memo(CheckTiming):
    """The timing of each source computed once per plan (the planner asks many times)."""

    def __init__(self, config: Config, timing: CheckTiming) -> None:
        super().__init__(**{f: getattr(timing, f) for f in timing.__dataclass_fields__})
        object.__setattr__(self, "_config", config)
        object.__setattr__(self, "_planned", {})
        object.__setattr__(self, "_worst", {})

    def planned(self, source: Source) -> float:
        cache: dict[str, float] = self._planned  # type: ignore[attr-defined]
        if source.name not in cache:
            cache[source.name] = super().planned(source)
        return cache[source.name]

    def worst(self, source: Source, statement_timeout: timedelta) -> float:
        cache: dict[str, float] = self._worst  # type: ignore[attr-defined]
        if source.name not in cache:
            cache[source.name] = super().worst(source, statement_timeout)
        return cache[source.name]


def concurrency_budget(config: Config) -> int:
    """Checks that may run at once across all schedules: the reserved concurrency when one is set,
    else what the account is assumed to grant (`aws.check_concurrency`)."""
    return config.aws.check_reserved_concurrency or config.aws.check_concurrency


def plan_schedules(config: Config, timing: CheckTiming = TIMING) -> list[ScheduleGroup]:
    """Every schedule the stack creates, ordered by cadence id and shard. Empty shards are left out."""
    return plan_fleet(config, timing).groups


def plan_fleet(config: Config, timing: CheckTiming = TIMING) -> FleetPlan:
    """The schedules for the config's budget; when some firing does not fit, also the smallest
    doubling of the budget with which all fit (`suggested_budget`), for synth to say what to raise."""
    budget = concurrency_budget(config)
    plan = _plan(config, budget, timing)
    if plan.problems:
        bigger = budget * 2
        while bigger <= 10_000 and _plan(config, bigger, timing).problems:
            bigger *= 2
        plan.suggested_budget = bigger if bigger <= 10_000 else None
    return plan


def _plan(config: Config, budget: int, timing: CheckTiming) -> FleetPlan:
    by_cadence: dict[str, list[Source]] = defaultdict(list)
    schedules: dict[str, Schedule] = {}
    for source in config.sources:
        schedule = config.schedule_of(source)
        cid = cadence_id(schedule)
        by_cadence[cid].append(source)
        schedules.setdefault(cid, schedule)
    # Shorter periods first: they take the most slots and are placed while the most are free.
    order = sorted(by_cadence, key=lambda c: (schedules[c].period, c))
    timing = _Memo(config, timing)
    per_shard = budget * SHARD_BUDGET.total_seconds() * SHARD_FILL
    counts = {
        cid: max(
            math.ceil(len(by_cadence[cid]) / MAX_SHARD_SIZE),
            min(
                _slots_in_period(schedules[cid]) or 1,
                math.ceil(sum(timing.planned(s) for s in by_cadence[cid]) / per_shard),
            ),
            1,
        )
        for cid in order
    }
    while True:
        shards = {cid: _shard(by_cadence[cid], counts[cid], timing) for cid in order}
        placed = _place(order, schedules, shards, timing)
        groups, over = _groups(config, order, schedules, shards, placed, budget, timing)
        # A cadence whose firing does not fit gets one more shard while it has free offsets.
        grow = [cid for cid in over if counts[cid] < (_slots_in_period(schedules[cid]) or 1)]
        if not grow:
            break
        for cid in grow:
            counts[cid] = min(2 * counts[cid], _slots_in_period(schedules[cid]) or 1)
    problems = [_problem(g) for g in groups if not g.fits]
    groups.sort(key=lambda g: (g.cadence_id, g.shard))
    return FleetPlan(groups, budget, peak_checks_at_once(groups), problems)


@dataclass(frozen=True)
class Firing:
    """What one schedule's firing covers, and by when its checks must have their outcomes recorded
    (`ScheduleGroup.deadline`, counted from the execution's start)."""

    servers: tuple[ServerBatch, ...]
    deadline: timedelta

    def deadline_at(self, started: datetime) -> datetime:
        return started + self.deadline


def firing_for(config: Config, cadence: str, shard: int) -> Firing:
    """One schedule's firing planned from the config. Raises ConfigError for an unknown cadence; a
    shard the plan lacks covers nothing."""
    known = {cadence_id(config.schedule_of(s)) for s in config.sources}
    if cadence not in known:
        raise ConfigError(
            f"no source has cadence {cadence!r}; the deployed config has "
            f"{', '.join(sorted(known)) or '(no sources)'}. The schedules and the bundled config disagree: "
            "redeploy the stack with `cdk deploy`"
        )
    for g in plan_schedules(config):
        if g.cadence_id == cadence and g.shard == shard:
            return Firing(g.servers, g.deadline)
    return Firing((), EXPRESS_LIMIT - END_MARGIN)


def servers_for(config: Config, cadence: str, shard: int) -> list[ServerBatch]:
    """The server batches one schedule covers. Raises ConfigError for an unknown cadence."""
    return list(firing_for(config, cadence, shard).servers)


def plan_index(groups: list[ScheduleGroup]) -> str:
    """The plan as the check function ships it (JSON): schedule name -> its deadline (seconds after
    the execution's start) and server batches. The `plan` action reads its firing's entry instead of
    planning the whole fleet on every firing."""
    return json.dumps(
        {
            g.name: {
                "deadline_seconds": g.deadline.total_seconds(),
                "servers": [
                    {"max_concurrency": b.max_concurrency, "sources": list(b.sources)} for b in g.servers
                ],
            }
            for g in groups
        },
        separators=(",", ":"),
    )


def firing_in_index(index: str, cadence: str, shard: int) -> Firing:
    """One schedule's firing read back from `plan_index` (covering nothing for a shard it lacks)."""
    plan = json.loads(index)
    if not any(name.rsplit("-", 1)[0] == cadence for name in plan):
        raise ConfigError(
            f"no schedule of cadence {cadence!r} in the shipped plan: the schedules and the bundled plan "
            "disagree; redeploy the stack with `cdk deploy`"
        )
    entry = plan.get(f"{cadence}-{shard:03d}")
    if entry is None:
        return Firing((), EXPRESS_LIMIT - END_MARGIN)
    return Firing(
        tuple(ServerBatch("", int(b["max_concurrency"]), tuple(b["sources"])) for b in entry["servers"]),
        timedelta(seconds=float(entry["deadline_seconds"])),
    )


def servers_in_index(index: str, cadence: str, shard: int) -> list[ServerBatch]:
    """One schedule's server batches read back from `plan_index` (empty for a shard it lacks)."""
    return list(firing_in_index(index, cadence, shard).servers)


def attempt_fits(
    source: Source,
    statement_timeout: timedelta,
    now: datetime,
    deadline: datetime,
    timing: CheckTiming = TIMING,
) -> bool:
    """Whether a check attempt starting `now` ends, with the recording of its outcome, by the firing's
    deadline whatever happens to it (`CheckTiming.room`). If not, the check is recorded as missed at
    once instead (one short invocation, which the deadline's drain allowance counts)."""
    return now + timedelta(seconds=timing.room(source, statement_timeout)) <= deadline


def drain_seconds(
    sizes: list[int], concurrency: list[int], outer: int, timing: CheckTiming = TIMING
) -> float:
    """How long recording every check of a shard as missed can take (`planned_missed` each) at the
    shard's concurrency: the same list-scheduling bound as the firing's own time."""
    batches = [[timing.planned_missed] * n for n in sizes]
    return shard_worst_seconds(batches, concurrency, outer, batches)


def capacity_notes(plan: FleetPlan) -> list[str]:
    """What synth says about Lambda concurrency: what the plan assumes, and what to raise if it does
    not fit. One line each, for the deploy output."""
    notes = [
        f"checks: {len(plan.groups)} schedules; at most {plan.peak_checks_at_once} checks at once "
        f"(budget {plan.concurrency_budget}: aws.check_reserved_concurrency, else aws.check_concurrency)"
    ]
    if plan.problems:
        worst = max(g.worst_seconds for g in plan.groups)
        wanted = plan.suggested_budget
        raise_it = (
            f"Raise the budget to {wanted}: ask for a Lambda concurrency quota of at least {wanted + 100} "
            f"(Service Quotas, AWS Lambda, 'Concurrent executions', L-B99A9384) and set "
            f"aws.check_reserved_concurrency: {wanted}"
            if wanted
            else "No budget up to 10,000 fits: lower statement timeouts or raise the servers' max_concurrency"
        )
        notes.append(
            f"checks: {len(plan.problems)} schedule(s) do not fit one firing in the worst case (up to "
            f"{worst:.0f} s of {SHARD_BUDGET.total_seconds():.0f} s, or checks starting too late for the "
            f"firing's deadline); what they cannot reach is recorded as missed and alerts. {raise_it}"
        )
    return notes


def sources_for(config: Config, cadence: str, shard: int) -> list[str]:
    """The names of the sources one schedule covers, sorted. Raises ConfigError for an unknown cadence."""
    return sorted(name for batch in servers_for(config, cadence, shard) for name in batch.sources)


def shard_worst_seconds(
    batches: list[list[float]], concurrency: list[int], outer: int, failing: list[list[float]]
) -> float:
    """An upper bound of one firing's time: Graham's bound of list scheduling (total / m + (1 - 1/m)
    x longest) of the server batches on `outer` Map places, each batch taking waves of its planned
    check times, while the one batch that hurts most takes its `failing` (worst) times instead."""
    planned = [_batch_seconds(t, c) for t, c in zip(batches, concurrency, strict=True)]
    worst = [_batch_seconds(t, c) for t, c in zip(failing, concurrency, strict=True)]
    total = sum(planned)
    return max(
        (total - p + w) / outer + (1 - 1 / outer) * max(w, *planned)
        for p, w in zip(planned, worst, strict=True)
    )


def shard_latest_start(
    batches: list[list[float]], concurrency: list[int], outer: int, failing: list[list[float]]
) -> float:
    """An upper bound of when the last healthy check of one firing starts, while the one batch that
    hurts most fails (takes its `failing` times). In list scheduling a batch starts at the latest
    when all `outer` places were busy with the others' work until then (their total / outer), and
    its last wave starts one wave before the batch ends. The failing batch's own checks are left
    out: a late attempt of theirs is recorded as missed, which is their outcome either way."""
    planned = [_batch_seconds(t, c) for t, c in zip(batches, concurrency, strict=True)]
    excess = sorted(
        (
            (_batch_seconds(f, c) - p, i)
            for i, (f, c, p) in enumerate(zip(failing, concurrency, planned, strict=True))
        ),
        reverse=True,
    )[:2]
    total = sum(planned)
    latest = 0.0
    for i, (times, own) in enumerate(zip(batches, planned, strict=True)):
        worse = max((e for e, j in excess if j != i), default=0.0)  # another batch failing
        latest = max(latest, (total + worse - own) / outer + own - max(times))
    return latest


def _batch_seconds(times: list[float], concurrency: int) -> float:
    return math.ceil(len(times) / concurrency) * max(times)


def _shard(members: list[Source], count: int, timing: CheckTiming) -> list[list[Source]]:
    """Split one cadence's sources into `count` shards of at most an even share each. A server's
    sources are dealt in turn to consecutive shards from a stable hash of the server (the next one
    with room), so each shard holds about 1/count of every server: its limit costs a firing least."""
    by_server: dict[str, list[Source]] = defaultdict(list)
    for source in members:
        by_server[server_of(source)].append(source)
    room = math.ceil(len(members) / count)
    shards: list[list[Source]] = [[] for _ in range(count)]
    for server in sorted(by_server, key=lambda name: (_digest(name), name)):
        at = int(_digest(server)[:16], 16) % count
        for source in sorted(by_server[server], key=lambda s: s.name):
            while len(shards[at]) >= room:
                at = (at + 1) % count
            shards[at].append(source)
            at = (at + 1) % count
    return shards


def _slots_in_period(schedule: Schedule) -> int | None:
    """How many SLOT offsets an aligned cadence has in its period; None if it cannot be offset
    (cron expressions, rates that divide neither an hour nor a day)."""
    if schedule.rate is None:
        return None
    minutes = int(schedule.rate.total_seconds() // 60)
    slot = int(SLOT.total_seconds() // 60)
    if minutes < slot or minutes % slot:
        return None
    divides_hour = 60 % minutes == 0
    divides_day = minutes % 60 == 0 and 24 % (minutes // 60) == 0
    return minutes // slot if divides_hour or divides_day else None


_DAY_SLOTS = int(timedelta(days=1) / SLOT)


@dataclass(frozen=True)
class _Placement:
    offset: int | None  # in slots; None: the cadence cannot be offset
    share: float  # its part of the concurrency budget: its planned time / its busiest slot's


def _place(
    order: list[str],
    schedules: dict[str, Schedule],
    shards: dict[str, list[list[Source]]],
    timing: CheckTiming,
) -> dict[tuple[str, int], _Placement]:
    """Give every aligned shard the offset whose busiest slot carries the least planned check time
    (the first such: the plan is deterministic). A shard with offset o occupies the day's slots o,
    o + n, o + 2n, ... for a period of n slots. Shards that cannot be offset may fire in any slot."""
    load = [0.0] * _DAY_SLOTS
    offsets: dict[tuple[str, int], int] = {}
    anywhere = 0.0
    weight = {
        (cid, k): sum(timing.planned(s) for s in members)
        for cid in order
        for k, members in enumerate(shards[cid])
    }
    for cid in order:
        n = _slots_in_period(schedules[cid])
        for k in range(len(shards[cid])):
            if n is None:
                anywhere += weight[(cid, k)]
                continue
            best = min(range(n), key=lambda o: (max(load[o::n]), o))
            offsets[(cid, k)] = best
            for slot in range(best, _DAY_SLOTS, n):
                load[slot] += weight[(cid, k)]
    placed: dict[tuple[str, int], _Placement] = {}
    for cid in order:
        n = _slots_in_period(schedules[cid])
        for k in range(len(shards[cid])):
            own = weight[(cid, k)]
            if n is None:
                placed[(cid, k)] = _Placement(None, own / (max(load) + anywhere or 1.0))
            else:
                o = offsets[(cid, k)]
                placed[(cid, k)] = _Placement(o, own / (max(load[o::n]) + anywhere or 1.0))
    return placed


def offset_expression(schedule: Schedule, offset: timedelta) -> str:
    """An aligned rate as the cron expression that fires `offset` into each period, e.g. rate(15
    minutes) + 5 min -> cron(5/15 * * * ? *). Rates fire relative to when the schedule was
    created; a cron fires at known times, which is what staggering needs."""
    assert schedule.rate is not None
    minutes = int(schedule.rate.total_seconds() // 60)
    at = int(offset.total_seconds() // 60)
    if minutes < 60:
        return f"cron({at}/{minutes} * * * ? *)"
    hours = minutes // 60
    hour = f"{at // 60}/{hours}" if hours < 24 else str(at // 60)
    return f"cron({at % 60} {'*' if hours == 1 else hour} * * ? *)"


def _groups(
    config: Config,
    order: list[str],
    schedules: dict[str, Schedule],
    shards: dict[str, list[list[Source]]],
    placed: dict[tuple[str, int], _Placement],
    budget: int,
    timing: CheckTiming,
) -> tuple[list[ScheduleGroup], list[str]]:
    """The schedule groups, and the cadences with a shard over the budget."""
    groups: list[ScheduleGroup] = []
    over: list[str] = []
    for cid in order:
        schedule = schedules[cid]
        for k, members in enumerate(shards[cid]):
            if not members:
                continue
            place = placed[(cid, k)]
            share = max(1, int(budget * place.share))
            by_server: dict[str, list[Source]] = defaultdict(list)
            for source in members:
                by_server[server_of(source)].append(source)
            servers = sorted(by_server)
            # A server's batch runs at most its limit, its share, and its own size at once: a shard
            # holding one source of each of many servers checks them all one at a time, so the
            # firing may run that many more servers at once.
            limits = [
                min(share, len(by_server[name]), *(s.max_concurrency for s in by_server[name]))
                for name in servers
            ]
            outer = max(1, min(INLINE_MAP_LIMIT, config.aws.map_concurrency, share // max(limits)))
            planned = [[timing.planned(s) for s in by_server[name]] for name in servers]
            failing = [
                [timing.worst(s, config.statement_timeout_of(s)) for s in by_server[name]] for name in servers
            ]
            worst = shard_worst_seconds(planned, limits, outer, failing)
            # Healthy, the firing starts every check early enough for its deadline; with a server
            # failing, a check the deadline stops is recorded as missed (the worst case fits anyway).
            latest = shard_latest_start(planned, limits, outer, planned)
            drain = drain_seconds([len(by_server[name]) for name in servers], limits, outer, timing)
            deadline = EXPRESS_LIMIT - END_MARGIN - timedelta(seconds=math.ceil(drain))
            room = max(timing.room(s, config.statement_timeout_of(s)) for s in members)
            if not _fits(worst, latest, room, deadline) and cid not in over:
                over.append(cid)
            offset = SLOT * place.offset if place.offset is not None else None
            groups.append(
                ScheduleGroup(
                    cadence_id=cid,
                    shard=k,
                    shard_count=len(shards[cid]),
                    expression=(
                        schedule.aws_expression() if offset is None else offset_expression(schedule, offset)
                    ),
                    timezone=schedule.timezone,
                    flexible_window=schedule.flexible_window if offset is None else None,
                    period=schedule.period,
                    offset=offset,
                    servers=tuple(
                        ServerBatch(name, limit, tuple(sorted(s.name for s in by_server[name])))
                        for name, limit in zip(servers, limits, strict=True)
                    ),
                    max_concurrency=outer,
                    worst_seconds=round(worst, 1),
                    deadline=deadline,
                    latest_start_seconds=round(latest, 1),
                    room_seconds=room,
                )
            )
    return groups, over


def _problem(g: ScheduleGroup) -> str:
    if g.worst_seconds > SHARD_BUDGET.total_seconds():
        why = (
            f"may take {g.worst_seconds:.0f} s in the worst case, over the "
            f"{SHARD_BUDGET.total_seconds():.0f} s one firing may take"
        )
    else:
        why = (
            f"may start its last check {g.latest_start_seconds:.0f} s into a healthy firing, but its "
            f"deadline lets a check start only until {g.deadline.total_seconds() - g.room_seconds:.0f} s"
        )
    return (
        f"schedule {g.name}: {len(g.sources)} sources {why}; raise aws.check_concurrency (or "
        "aws.check_reserved_concurrency), or the max_concurrency of its busiest server"
    )


def _fits(worst: float, latest_start: float, room: float, deadline: timedelta) -> bool:
    return worst <= SHARD_BUDGET.total_seconds() and latest_start + room <= deadline.total_seconds()


def peak_checks_at_once(groups: list[ScheduleGroup]) -> int:
    """The most checks that may run at once, over the day's slots (unaligned shards count in all)."""
    load = [0] * _DAY_SLOTS
    anywhere = 0
    for g in groups:
        if g.offset is None:
            anywhere += g.checks_at_once
            continue
        n = int(g.period / SLOT)
        for s in range(int(g.offset / SLOT), _DAY_SLOTS, n):
            load[s] += g.checks_at_once
    return max(load) + anywhere


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
