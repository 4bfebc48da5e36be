"""The alert lifecycle of one check: a small, explicit state machine, one step per run.

    OK ──anomaly──▶ PENDING ──anomaly, pending_runs times──▶ FIRING ──ok──▶ RESOLVED ──ok──▶ OK
    (any) ──error, error_after_failures times──▶ ERROR ──ok──▶ RESOLVED
    (any) ──learning──▶ LEARNING        (any) ──no data──▶ NO_DATA
    source NO_DATA (the watchdog found no run) ──ok──▶ RESOLVED

Decisions worth knowing:
- With `pending_runs: 1` a check goes from OK straight to FIRING in one run and records ONE
  transition (OK → FIRING): a PENDING that lasts no time would only add noise to the audit trail.
- An incident is the time spent in PENDING, FIRING or ERROR; `active_since` is when it began and
  survives moves between those three (a firing check whose source goes down is still one
  incident). Moving to any other state ends the incident.
- Failures are counted before they change anything: fewer than `error_after_failures`
  consecutive ERROR findings leave the state (and its severity) as it was, so a flaky
  connection neither resolves nor re-fires an alert.
- `consecutive` is the length of the current streak of the last finding's status (anomaly or
  error); it is 0 after any other finding. A severity change while FIRING is recorded as a
  FIRING → FIRING transition, since it is what an escalation notice refers to.
- NO_DATA of a table (nothing to judge) is no incident. NO_DATA of the source itself is: the
  watchdog found no recorded run for two of its periods (driftguard.watchdog), the monitor is
  blind there, so it pages like ERROR and resolves when a check is recorded again.
- A check seen for the first time starts from an implicit OK; a first OK finding stores the state
  without a transition (nothing changed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from driftguard.config import Alerting
from driftguard.model import (
    AlertState,
    AlertStateName,
    CheckKey,
    CheckKind,
    Finding,
    FindingStatus,
    Transition,
    stable_hash,
    utc,
)

S = AlertStateName
INCIDENT_STATES = frozenset({S.PENDING, S.FIRING, S.ERROR})


def is_incident(state: AlertStateName, key: CheckKey) -> bool:
    """An incident state of this check: the source's own NO_DATA is one (see the module's notes)."""
    return state in INCIDENT_STATES or (state == S.NO_DATA and key.check == CheckKind.SOURCE)


@dataclass(frozen=True)
class Step:
    """One run's move of one check: the state as read and the state it moves to."""

    before: AlertState  # as read, or the implicit OK of a check seen for the first time
    after: AlertState
    transition: Transition | None
    is_new: bool

    @property
    def incident_ended(self) -> bool:
        key = self.after.key
        return is_incident(self.before.state, key) and not is_incident(self.after.state, key)

    @property
    def changed(self) -> bool:
        """Whether the state must be written. The latest finding alone is not a change, except
        during a streak, which the next run reads back from `last_finding`."""
        if self.is_new or self.after.consecutive > 0:
            return True
        return self.after.model_copy(update={"last_finding": self.before.last_finding}) != self.before


def transition_id(
    fingerprint: str, at: datetime, from_state: AlertStateName, to_state: AlertStateName
) -> str:
    return stable_hash(fingerprint, utc(at).isoformat(), from_state.value, to_state.value)


def _streak(before: AlertState, finding: Finding) -> int:
    if finding.status not in (FindingStatus.ANOMALY, FindingStatus.ERROR):
        return 0
    last = before.last_finding
    if before.consecutive and last is not None and last.status == finding.status:
        return before.consecutive + 1
    return 1


def _target(before: AlertState, finding: Finding, streak: int, alerting: Alerting) -> AlertStateName:
    match finding.status:
        case FindingStatus.ERROR:
            failed_long_enough = before.state == S.ERROR or streak >= alerting.error_after_failures
            return S.ERROR if failed_long_enough else before.state
        case FindingStatus.ANOMALY:
            return S.FIRING if before.state == S.FIRING or streak >= alerting.pending_runs else S.PENDING
        case FindingStatus.OK:
            blind = before.state == S.NO_DATA and is_incident(before.state, finding.key)
            ended = before.state in (S.FIRING, S.ERROR) or blind
            return S.RESOLVED if ended else S.OK
        case FindingStatus.LEARNING:
            return S.LEARNING
        case FindingStatus.NO_DATA:
            return S.NO_DATA
    raise AssertionError(f"unhandled finding status {finding.status!r}")


def _why(finding: Finding) -> str:
    reason = finding.explanation.reason.strip()
    return f": {reason}" if reason else ""


def _reason(before: AlertState, after: AlertState, finding: Finding, alerting: Alerting) -> str:
    why = _why(finding)
    if before.state == after.state:
        return f"severity {before.severity.value} → {after.severity.value}{why}"
    match after.state:
        case S.PENDING:
            return f"anomalous {after.consecutive} of {alerting.pending_runs} run(s) needed to fire{why}"
        case S.FIRING:
            return f"anomalous for {after.consecutive} consecutive run(s){why}"
        case S.ERROR:
            return f"the check failed {after.consecutive} consecutive run(s){why}"
        case S.RESOLVED:
            back = "back to normal" if before.state == S.FIRING else "the check works again"
            return back + why
        case S.OK:
            return ("the condition cleared before it fired" if before.state == S.PENDING else "normal") + why
        case S.LEARNING:
            return f"learning: not enough history to judge yet{why}"
        case S.NO_DATA:
            return f"no data: the check had nothing to judge{why}"
    raise AssertionError(f"unhandled state {after.state!r}")


def advance(previous: AlertState | None, finding: Finding, *, alerting: Alerting, now: datetime) -> Step:
    """Move one check's state by one run's finding (notices are decided elsewhere)."""
    now = utc(now)
    before = previous or AlertState(key=finding.key, state=S.OK, since=now)
    streak = _streak(before, finding)
    target = _target(before, finding, streak, alerting)
    judged = finding.status == FindingStatus.ANOMALY or (
        finding.status == FindingStatus.ERROR and target == S.ERROR
    )
    severity = finding.severity if judged else before.severity
    if not is_incident(target, finding.key):
        active_since = None
    elif is_incident(before.state, finding.key):
        active_since = before.active_since or before.since
    else:
        active_since = now
    after = before.model_copy(
        update={
            "state": target,
            "severity": severity,
            "since": now if target != before.state else before.since,
            "active_since": active_since,
            "consecutive": streak,
            "last_finding": finding,
        }
    )
    moved = target != before.state or (target == S.FIRING and severity != before.severity)
    transition = None
    if moved:
        transition = Transition(
            id=transition_id(finding.fingerprint, now, before.state, target),
            fingerprint=finding.fingerprint,
            key=finding.key,
            at=now,
            from_state=before.state,
            to_state=target,
            severity=severity,
            reason=_reason(before, after, finding, alerting),
            finding=finding,
        )
        after = after.model_copy(update={"last_transition_id": transition.id})
    return Step(before=before, after=after, transition=transition, is_new=previous is None)
