"""Detection: pure judgement of snapshots against learned baselines (no I/O).

The engine calls `evaluate_snapshot`; day-one backfill goes through `points_from_history`;
`last_read` and `marker_points` let collection keep the values of a table nobody wrote since its last
full read; `driftguard.detect.backtest` replays series for evaluation and tuning.
"""

from driftguard.detect import kinds
from driftguard.detect.base import (
    Evaluation,
    HistoryReader,
    SchemaBaselineReader,
    ValuesReader,
    Verdict,
    values_of,
)
from driftguard.detect.evaluate import check_keys, evaluate_snapshot, points_from_history
from driftguard.detect.last_read import last_read, marker_points, say_what_was_kept

__all__ = [
    "Evaluation",
    "HistoryReader",
    "SchemaBaselineReader",
    "ValuesReader",
    "Verdict",
    "check_keys",
    "evaluate_snapshot",
    "kinds",
    "last_read",
    "marker_points",
    "points_from_history",
    "say_what_was_kept",
    "values_of",
]
