"""`driftguard backtest`: replay a series through detection, point by point, as production would.

Volume (`--check volume`)
    input   CSV with a header and the columns `timestamp,value` (other columns are ignored), one row
            per period, oldest first; timestamps in ISO 8601, UTC when they carry no offset.
    output  one row per input row, same order: `timestamp,value,expected,lower,upper,score,anomaly`;
            expected/lower/upper are empty while the series is still learning; score >= 0 (larger
            is more anomalous); anomaly is 0 or 1.

Freshness (`--check freshness`)
    input   CSV with a header and a `timestamp` column: when the table received new data.
    output  one row per evaluation time (every `--eval-every`, from the first update to one period
            after the last): `timestamp,lag_seconds,expected_max_lag,score,anomaly`;
            expected_max_lag is empty while learning (unless `--max-age` is given).

Verdict i only ever uses the rows before i. A summary (rows, anomalies) goes to stderr.
"""

from __future__ import annotations

import csv
import io
import math
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import click

from driftguard.cli.common import FailedError, json_option, print_json
from driftguard.config import parse_duration
from driftguard.detect.backtest import backtest_freshness, backtest_volume
from driftguard.detect.stats import typical_gap
from driftguard.model import utc, utcnow

if TYPE_CHECKING:
    from driftguard.report.model import ReplayedPoint

VOLUME_COLUMNS = ("timestamp", "value", "expected", "lower", "upper", "score", "anomaly")
FRESHNESS_COLUMNS = ("timestamp", "lag_seconds", "expected_max_lag", "score", "anomaly")


class CsvInputError(click.ClickException):
    """A problem in the input file: names the file, the line and what to do."""

    exit_code = 2


def _period(value: str | None) -> timedelta | None:
    if value is None or value.strip().lower() == "auto":
        return None
    try:
        return parse_duration(value)
    except ValueError as e:
        raise click.BadParameter(f"{e} (or 'auto')") from None


def _rows(path: str, handle: TextIO, needed: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    reader = csv.DictReader(handle)
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in needed if c not in header]
    if missing:
        found = ", ".join(header) if header else "nothing"
        raise CsvInputError(
            f"{path}:1: the header needs the column(s) {', '.join(missing)} (found {found}); "
            f"write a first line such as '{','.join(needed)}'"
        )
    reader.fieldnames = header
    for row in reader:
        yield reader.line_num, {k: (v or "").strip() for k, v in row.items() if k is not None}


def _timestamp(path: str, line: int, text: str) -> datetime:
    try:
        return utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        raise CsvInputError(
            f"{path}:{line}: {text!r} is not an ISO 8601 timestamp; write e.g. 2026-03-02T09:00:00Z"
        ) from None


def _value(path: str, line: int, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise CsvInputError(f"{path}:{line}: value {text!r} is not a number") from None
    if not math.isfinite(value):
        raise CsvInputError(f"{path}:{line}: value {text!r} is not a finite number")
    return value


def read_series(path: str, handle: TextIO) -> list[tuple[datetime, float]]:
    """(timestamp, value) rows, checked to be in time order."""
    rows: list[tuple[datetime, float]] = []
    for line, row in _rows(path, handle, ("timestamp", "value")):
        ts = _timestamp(path, line, row["timestamp"])
        if rows and ts <= rows[-1][0]:
            raise CsvInputError(
                f"{path}:{line}: timestamp {row['timestamp']} is not after the previous row's; "
                "sort the file by time and remove duplicates"
            )
        rows.append((ts, _value(path, line, row["value"])))
    if not rows:
        raise CsvInputError(f"{path}: no data rows after the header")
    return rows


def read_updates(path: str, handle: TextIO) -> list[datetime]:
    times = [_timestamp(path, line, row["timestamp"]) for line, row in _rows(path, handle, ("timestamp",))]
    if not times:
        raise CsvInputError(f"{path}: no data rows after the header")
    return sorted(set(times))


def _cell(x: float | None) -> str:
    return "" if x is None else f"{x:.10g}"


def _open_input(path: str) -> TextIO:
    if path == "-":
        return sys.stdin
    try:
        return Path(path).open(encoding="utf-8", newline="")
    except OSError as e:
        raise CsvInputError(f"{path}: cannot read the input file: {e.strerror or e}") from None


def evaluation_times(updates: list[datetime], every: timedelta) -> list[datetime]:
    """Every `every` from the first update to one period after the last."""
    out, t = [], updates[0] + every
    while t <= updates[-1] + every:
        out.append(t)
        t += every
    return out


@click.command()
@click.option(
    "--check", type=click.Choice(["volume", "freshness"]), required=True, help="What the series is."
)
@click.option("--input", "input_path", required=True, help="Input CSV ('-' for stdin).")
@click.option("--output", "output_path", default="-", show_default=True, help="Output CSV ('-' for stdout).")
@click.option(
    "--period",
    default="auto",
    show_default=True,
    help="Volume: the spacing of the rows (auto, 5min, 1h, 1d ...). Freshness: how often to evaluate.",
)
@click.option("--eval-every", default=None, help="Freshness: how often to evaluate (same as --period).")
@click.option(
    "--max-age", default=None, help="Freshness: a hard limit on top of the learned cadence, e.g. 6h."
)
@click.option(
    "--exact",
    is_flag=True,
    help="Volume: fit every row in full (slower) instead of judging plainly normal rows by the fit "
    "kept from an earlier row, as a check does.",
)
@json_option
@click.option(
    "--report",
    "report_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Also write an HTML chart of the series, its band and the flagged points (e.g. out.html).",
)
def backtest(
    check: str,
    input_path: str,
    output_path: str,
    period: str,
    eval_every: str | None,
    max_age: str | None,
    exact: bool,
    as_json: bool,
    report_path: str | None,
) -> None:
    """Replay a CSV series through detection; write one verdict per row (or per evaluation time).

    \b
    volume     input  timestamp,value      (ISO 8601; UTC when no offset; oldest first)
               output timestamp,value,expected,lower,upper,score,anomaly
    freshness  input  timestamp            (when the table received new data)
               output timestamp,lag_seconds,expected_max_lag,score,anomaly

    Each verdict uses only the rows before it. expected/lower/upper (expected_max_lag) are empty
    while learning; score >= 0, larger is more anomalous; anomaly is 0 or 1. With --json the
    summary is printed on stdout as JSON (the CSV then needs --output FILE).
    """
    if as_json and output_path == "-":
        raise click.UsageError("--json prints the summary on stdout: write the CSV with --output FILE")

    from driftguard.report.model import ReplayedPoint  # the report's model, imported only when replaying

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    with _open_input(input_path) as handle:
        if check == "volume":
            rows = read_series(input_path, handle)
            verdicts = backtest_volume(rows, _period(period), exact=exact)
            writer.writerow(VOLUME_COLUMNS)
            for v in verdicts:
                bounds = [_cell(v.expected), _cell(v.lower), _cell(v.upper)]
                writer.writerow([v.ts.isoformat(), _cell(v.value), *bounds, _cell(v.score), int(v.anomaly)])
            flagged, total = sum(v.anomaly for v in verdicts), len(verdicts)
            learning = sum(v.expected is None for v in verdicts)
            replayed = [
                ReplayedPoint(v.ts, v.value, v.expected, v.lower, v.upper, v.anomaly) for v in verdicts
            ]
        else:
            updates = read_updates(input_path, handle)
            every = _period(eval_every or period) or min(
                typical_gap(updates) or timedelta(hours=1), timedelta(hours=1)
            )
            limit = _period(max_age) if max_age else None
            results = backtest_freshness(updates, evaluation_times(updates, every), max_age=limit)
            writer.writerow(FRESHNESS_COLUMNS)
            for r in results:
                writer.writerow(
                    [
                        r.ts.isoformat(),
                        _cell(r.lag_seconds),
                        _cell(r.expected_max_lag),
                        _cell(r.score),
                        int(r.anomaly),
                    ]
                )
            flagged, total = sum(r.anomaly for r in results), len(results)
            learning = sum(r.expected_max_lag is None for r in results)
            replayed = [
                ReplayedPoint(
                    r.ts,
                    r.lag_seconds,
                    None,
                    0.0 if r.expected_max_lag else None,
                    r.expected_max_lag,
                    r.anomaly,
                )
                for r in results
                if r.lag_seconds is not None
            ]
    if output_path == "-":
        click.echo(buffer.getvalue(), nl=False)
    else:
        try:
            Path(output_path).write_text(buffer.getvalue(), encoding="utf-8")
        except OSError as e:
            raise FailedError(f"{output_path}: cannot write the output: {e.strerror or e}") from None
    if report_path is not None:
        _write_report(check, input_path, replayed, report_path)
    if as_json:
        summary = {"check": check, "rows": total, "anomalies": flagged, "learning": learning}
        print_json({**summary, "output": output_path, "report": report_path})
        return
    where = "" if output_path == "-" else f" -> {output_path}"
    click.echo(
        f"backtest {check}: {total} rows, {flagged} anomalies, {learning} while learning{where}", err=True
    )


def _write_report(check: str, input_path: str, replayed: list[ReplayedPoint], path: str) -> None:
    from driftguard.report.model import backtest_report
    from driftguard.report.render import write_report

    name = "stdin" if input_path == "-" else Path(input_path).name
    report = backtest_report(check, name, replayed, unit="s" if check == "freshness" else "", now=utcnow())
    try:
        write_report(report, Path(path))
    except OSError as e:
        raise click.ClickException(f"{path}: cannot write the report: {e.strerror or e}") from None
    click.echo(f"backtest report -> {path}", err=True)


commands: list[click.Command] = [backtest]
