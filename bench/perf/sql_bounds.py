"""Peak memory of a custom SQL check whose query returns millions of rows, in a child process.

.venv/bin/python -m bench.perf.sql_bounds [--rows N]

A child process collects one PostgreSQL source whose only check is
`select 'OK' as status, g from generate_series(1, N) g` (default N = 5 million) and reports its
peak RSS (getrusage ru_maxrss) next to the same child running a one-row check, the floor of
Python + SQLAlchemy + pg8000. With the row limit (sql_checks[].max_rows, default 1,000) the two
should be within a few MB: the server is asked for max_rows + 1 rows, whatever N is.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass

from bench.perf import pg

_CHILD = """
import json, resource, sys
from datetime import UTC, datetime, timedelta
from driftguard.collect import Collector
from driftguard.config import Source

rows = int(sys.argv[1])
source = Source.model_validate({
    "name": "big", "kind": "postgres",
    "connection": dict(zip(("host", "port", "database", "user"), sys.argv[2:6])),
    "sql_checks": [{"name": "many", "sql": f"select 'OK' as status, g from generate_series(1, {rows}) g"}],
})
with Collector(source, statement_timeout=timedelta(minutes=5)) as collector:
    snapshot = collector.collect(datetime.now(UTC))
(result,) = snapshot.sql_checks or [None]
print(json.dumps({
    "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    "rows_read": result.rows if result else None,
    "truncated": result.truncated if result else None,
    "errors": snapshot.sql_errors,
}))
"""


@dataclass(frozen=True)
class Measured:
    query_rows: int
    peak_rss_mb: float
    rows_read: int | None
    truncated: bool | None
    errors: dict[str, str]


def measure(query_rows: int) -> Measured:
    """Run the check in a fresh interpreter and return what it read and its peak memory."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(query_rows), pg.HOST, str(pg.PORT), pg.DATABASE, pg.USER],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return Measured(query_rows, out["peak_rss_kb"] / 1024, out["rows_read"], out["truncated"], out["errors"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    args = parser.parse_args()
    floor, big = measure(1), measure(args.rows)
    print(f"{'query rows':>12} {'peak RSS MB':>12} {'rows read':>10} {'truncated':>10}")
    for m in (floor, big):
        print(
            f"{m.query_rows:>12,} {m.peak_rss_mb:>12.1f} {m.rows_read!s:>10} {m.truncated!s:>10}",
            m.errors or "",
        )
    print(f"difference: {big.peak_rss_mb - floor.peak_rss_mb:+.1f} MB for {args.rows:,} rows")


if __name__ == "__main__":
    main()
