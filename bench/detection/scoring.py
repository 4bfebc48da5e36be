"""Event-level scoring of a detector's alerts against labeled anomalies (definitions in README.md).

- An event's window is its labeled points plus `GRACE` points after its last one.
- An event is detected (a true positive) when any point of its window alerts; its delay is the first
  alerting point minus its onset, in periods.
- A false alert is a maximal run of consecutive alerting points outside every window (one run = one
  notification an operator would get), counted after the warm-up only.
- precision = detected / (detected + false alerts); recall = detected / events; F1 their harmonic mean.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from bench.detection.scenarios import Event

GRACE = 1


@dataclass(frozen=True)
class Tally:
    """Counts for one series or, summed with `+`, for many."""

    events: int = 0
    detected: int = 0
    false_alerts: int = 0
    scored_days: float = 0.0
    delays: tuple[int, ...] = field(default=())

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.events + other.events,
            self.detected + other.detected,
            self.false_alerts + other.false_alerts,
            self.scored_days + other.scored_days,
            self.delays + other.delays,
        )

    @property
    def precision(self) -> float | None:
        alerts = self.detected + self.false_alerts
        return self.detected / alerts if alerts else None

    @property
    def recall(self) -> float | None:
        return self.detected / self.events if self.events else None

    @property
    def f1(self) -> float | None:
        if not self.events:
            return None
        if not self.detected:
            return 0.0
        p, r = self.detected / (self.detected + self.false_alerts), self.detected / self.events
        return 2 * p * r / (p + r)

    @property
    def false_alerts_per_30_days(self) -> float | None:
        return self.false_alerts * 30.0 / self.scored_days if self.scored_days else None

    @property
    def mean_delay(self) -> float | None:
        return sum(self.delays) / len(self.delays) if self.delays else None

    def figures(self) -> dict[str, float | int | None]:
        return {
            "events": self.events,
            "detected": self.detected,
            "false_alerts": self.false_alerts,
            "scored_days": round(self.scored_days, 3),
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "false_alerts_per_30_days": self.false_alerts_per_30_days,
            "mean_delay_periods": self.mean_delay,
        }


def total(tallies: Iterable[Tally]) -> Tally:
    return sum(tallies, Tally())


def score_series(
    alerts: Sequence[bool], events: Sequence[Event], warmup: int, period: timedelta, grace: int = GRACE
) -> Tally:
    """Score one series' alert flags (one per point) against its labeled events."""
    n = len(alerts)
    in_window = [False] * n
    delays = []
    for event in events:
        if event.onset < warmup:
            raise ValueError(f"event {event} starts inside the warm-up ({warmup} points), never scored")
        window = range(event.onset, min(event.end + grace, n - 1) + 1)
        for i in window:
            in_window[i] = True
        first = next((i for i in window if alerts[i]), None)
        if first is not None:
            delays.append(first - event.onset)
    false_alerts, previous = 0, False
    for i in range(warmup, n):
        outside = alerts[i] and not in_window[i]
        false_alerts += outside and not previous
        previous = outside
    scored_days = (n - warmup) * period / timedelta(days=1)
    return Tally(len(events), len(delays), false_alerts, scored_days, tuple(delays))
