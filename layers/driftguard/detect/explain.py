"""Turn a judgement into an Explanation with a reason an on-call engineer can act on."""

from __future__ import annotations

from typing import Any

from driftguard.detect.strategy import Judgement
from driftguard.formatting import format_estimate, format_expected
from driftguard.model import Explanation, FindingStatus


def number(x: float | str) -> str:
    """12, 1,234, 0.25, 154.7: as the CLI and notifications write estimates."""
    return format_estimate(x)


def span(j: Judgement) -> str:
    """'8 weeks of history (1,344 points)'."""
    if j.training_start is None or j.training_end is None:
        return f"{j.training_points} points"
    days = (j.training_end - j.training_start).total_seconds() / 86400
    if days >= 14:
        length = f"{days / 7:.0f} weeks"
    elif days >= 2:
        length = f"{days:.0f} days"
    else:
        length = f"{days * 24:.0f} hours"
    return f"{length} of history ({number(j.training_points)} points)"


def learning_reason(subject: str, j: Judgement, unit: str = "points") -> str:
    return (
        f"{subject}; still learning its normal behaviour: {j.needed_points} more {unit} needed "
        f"({j.training_points} so far)."
    )


def series_reason(subject: str, j: Judgement) -> str:
    if j.method == "hard limit":
        return f"{subject}, {j.note}."
    if j.status == FindingStatus.LEARNING:
        return learning_reason(subject, j)
    assert j.expected is not None and j.lower is not None and j.upper is not None
    where = f" for {j.slot}" if j.slot else ""
    expected = f"{format_expected(j.expected, j.lower, j.upper)}{where} from {span(j)}"
    note = f"; {j.note}" if j.note else ""
    if j.status == FindingStatus.ANOMALY:
        change = f"; a {j.direction} of {abs(j.effect):.0%}" if j.effect is not None else f"; a {j.direction}"
        return f"{subject}, expected {expected}{change}{note}."
    return f"{subject}, as expected: {expected}{note}."


def explanation(j: Judgement, reason: str, details: dict[str, Any] | None = None) -> Explanation:
    """The explanation of `j`; the noise model and calendar rule it used join `details`."""
    details = dict(details or {})
    if j.noise:
        details["noise"] = j.noise
    if j.calendar:
        details["calendar"] = j.calendar
    if j.seasonality:
        details["seasonality"] = j.seasonality
    return Explanation(
        observed=j.observed,
        expected=j.expected,
        lower=j.lower,
        upper=j.upper,
        score=j.score,
        method=j.method,
        training_start=j.training_start,
        training_end=j.training_end,
        training_points=j.training_points,
        seasonal_slot=j.slot,
        effect_size=j.effect,
        direction=j.direction,
        needed_points=j.needed_points if j.status == FindingStatus.LEARNING else None,
        reason=reason,
        details=details,
    )
