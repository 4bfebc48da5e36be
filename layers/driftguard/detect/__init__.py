"""Detection: pure judgement of snapshots against learned baselines (no I/O).

The engine calls `evaluate_snapshot`; day-one backfill goes through `points_from_history`;
`driftguard.detect.backtest` replays series for evaluation and tuning.
"""

from driftguard.detect import kinds
from driftguard.detect.base import Evaluation, HistoryReader, SchemaBaselineReader, Verdict
from driftguard.detect.evaluate import check_keys, evaluate_snapshot, points_from_history

__all__ = [
    "Evaluation",
    "HistoryReader",
    "SchemaBaselineReader",
    "Verdict",
    "check_keys",
    "evaluate_snapshot",
    "kinds",
    "points_from_history",
]
