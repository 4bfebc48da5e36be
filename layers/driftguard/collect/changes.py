"""Work that follows change: a table nobody has written since its last full read keeps that read's
freshness and row count instead of being read again.

PostgreSQL counts every row inserted, updated or deleted per table (pg_stat_all_tables); the catalog
query reads the counters with the schema, in the same round trip. The marker also carries the table's
relfilenode, which TRUNCATE, VACUUM FULL, CLUSTER and rewriting ALTERs change without moving the row
counters, and a statistics reset zeroes the counters, which changes the marker too. A table whose
marker equals the one stored with its last full read has the same rows, so the same max(timestamp)
and count(*): the run keeps them (and says so in its explanation) instead of scanning the table,
which matters most on a large table with no index on its timestamp column.

Two bounds keep this honest: a full read at least every `REREAD_AFTER`, and no reuse for a table
with column profiles (they scan anyway). The one window: a backend flushes its counters to the shared
statistics when its transaction ends, or up to a minute later when it stays busy; a write committed
that close to a check can be seen one run late.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta

from driftguard.model import LastRead

REREAD_AFTER = timedelta(hours=24)
_MARKER_BYTES = 6  # 48 bits: exact as the float of a stored point, collisions negligible


def change_marker(parts: Sequence[object]) -> int | None:
    """The marker of one table's write counters (None when the engine gave none)."""
    if any(p is None for p in parts) or not parts:
        return None
    digest = hashlib.blake2b(":".join(str(p) for p in parts).encode(), digest_size=_MARKER_BYTES)
    return int.from_bytes(digest.digest(), "big")


def may_reuse(marker: int | None, last: LastRead | None, at: datetime) -> bool:
    """Whether a run at `at` may keep `last`'s values: same marker, and that read is recent."""
    if marker is None or last is None or marker != last.marker:
        return False
    return timedelta(0) < at - last.at < REREAD_AFTER
