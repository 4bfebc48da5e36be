"""Replay every labeled series through DriftGuard and the reference detectors; print one table.

.venv/bin/python -m bench.detection [--quick] [--split train|heldout] [--family F ...] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from bench.detection.references import Detector, references
from bench.detection.scenarios import (
    CLEAN_FAMILIES,
    FAMILIES,
    REAL_LIKE_CLEAN,
    Scenario,
    Split,
    scenarios,
    seeds,
)
from bench.detection.scoring import Tally, score_series, total
from driftguard.config import DetectionSettings

DRIFTGUARD = "DriftGuard"
DELAY_FAMILIES = ("spike", "drop", "zero", "freshness_stall")
OVERALL_F1_TARGET = 0.9
CLEAN_FALSE_ALERTS_TARGET = 1.0  # per 30 days
TIDY_CLEAN = ("clean", "freshness_clean")  # the clean families held to CLEAN_FALSE_ALERTS_TARGET
REAL_LIKE_FALSE_ALERTS_TARGET = 0.5  # per 30 days, on the clean real-like families
DELAY_TARGET = 1.0  # periods
LEVEL_SHIFT_FAMILIES = ("level_shift", "rl_step")
LEVEL_SHIFT_F1_TARGET = 0.9


@dataclass(frozen=True)
class Contender:
    """Something that turns a scenario into one alert flag per point."""

    name: str
    alerts: Callable[[Scenario], list[bool]]


def _reference(volume: Detector, freshness: Detector) -> Contender:
    def alerts(scenario: Scenario) -> list[bool]:
        detector = volume if scenario.kind == "volume" else freshness
        return [v.anomaly for v in detector.backtest(scenario.rows, scenario.period)]

    return Contender(volume.name, alerts)


def reference_contenders() -> list[Contender]:
    return [_reference(v, f) for v, f in zip(references(), references(freshness=True), strict=True)]


def driftguard_contender(settings: DetectionSettings | None = None) -> Contender | str:
    """DriftGuard's own backtests (with `settings`, default: the defaults), or the reason they cannot be
    imported (never a stand-in)."""
    try:
        from driftguard.detect.backtest import backtest_freshness, backtest_volume
    except ImportError as e:
        return f"{DRIFTGUARD}: not available (ImportError: {e})"

    def alerts(scenario: Scenario) -> list[bool]:
        if scenario.kind == "volume":
            chosen = settings
            if scenario.calendar:  # the holiday calendar an operator would configure for this series
                chosen = (settings or DetectionSettings()).model_copy(update={"calendar": scenario.calendar})
            return [v.anomaly for v in backtest_volume(list(scenario.rows), scenario.period, chosen)]
        eval_times = [ts for ts, _ in scenario.rows]
        return [r.anomaly for r in backtest_freshness(list(scenario.update_times), eval_times, settings)]

    return Contender(DRIFTGUARD, alerts)


@dataclass
class Results:
    revision: str
    split: Split
    quick: bool
    families: tuple[str, ...]
    contenders: list[str]
    driftguard_error: str | None
    tallies: dict[str, dict[str, Tally]]  # family -> contender -> tally
    seconds: dict[str, float]  # contender -> time spent replaying
    series: int | None = None  # only the first that many seeds of each family

    def family_tally(self, family: str, contender: str) -> Tally:
        return self.tallies[family][contender]

    def pooled(self, contender: str, families: Sequence[str]) -> Tally:
        return total(self.tallies[f][contender] for f in families if f in self.tallies)

    @property
    def anomaly_families(self) -> list[str]:
        return [f for f in self.families if f not in CLEAN_FAMILIES]


def revision() -> str:
    """The commit the figures were produced at, and whether the package had uncommitted changes."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "layers/driftguard", "bench/detection"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as e:
        return f"unknown ({e})"
    return commit + (" with uncommitted changes in layers/driftguard or bench/detection" if dirty else "")


def run(
    split: Split,
    families: tuple[str, ...],
    quick: bool,
    log: TextIO | None = None,
    settings: DetectionSettings | None = None,
    series: int | None = None,
) -> Results:
    """Replay the split; `settings` are DriftGuard's detection settings (for tuning on the training split)."""
    dg = driftguard_contender(settings)
    contenders = ([dg] if isinstance(dg, Contender) else []) + reference_contenders()
    tallies: dict[str, dict[str, Tally]] = {f: {c.name: Tally() for c in contenders} for f in families}
    seconds = dict.fromkeys((c.name for c in contenders), 0.0)
    chosen = scenarios(split, families, quick, series)
    for number, scenario in enumerate(chosen, start=1):
        if log:
            print(f"[{number}/{len(chosen)}] {scenario.name}", file=log, flush=True)
        for contender in contenders:
            began = time.perf_counter()
            flags = contender.alerts(scenario)
            seconds[contender.name] += time.perf_counter() - began
            if len(flags) != len(scenario.rows):
                raise RuntimeError(
                    f"{contender.name} returned {len(flags)} verdicts for {scenario.name}, "
                    f"which has {len(scenario.rows)} points: one verdict per point is the contract"
                )
            tally = score_series(flags, scenario.events, scenario.warmup, scenario.period)
            tallies[scenario.family][contender.name] += tally
    return Results(
        revision(),
        split,
        quick,
        families,
        [c.name for c in contenders],
        None if isinstance(dg, Contender) else dg,
        tallies,
        seconds,
        series,
    )


# --------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class Target:
    text: str
    met: bool
    detail: str


def targets(results: Results) -> list[Target]:
    texts = (
        "DriftGuard F1 best on every family with anomalies",
        f"DriftGuard F1 >= {OVERALL_F1_TARGET} overall",
        f"<= {CLEAN_FALSE_ALERTS_TARGET:g} false alert per 30 days on each clean family",
        f"mean detection delay <= {DELAY_TARGET:g} period for {', '.join(DELAY_FAMILIES)}",
        f"<= {REAL_LIKE_FALSE_ALERTS_TARGET:g} false alerts per 30 days on each clean real-like family",
        f"DriftGuard F1 >= {LEVEL_SHIFT_F1_TARGET} on {' and '.join(LEVEL_SHIFT_FAMILIES)}",
    )
    if results.driftguard_error:
        return [Target(t, False, results.driftguard_error) for t in texts]
    others = [c for c in results.contenders if c != DRIFTGUARD]
    behind = []
    for f in results.anomaly_families:
        ours = results.family_tally(f, DRIFTGUARD).f1 or 0.0
        best = max(((results.family_tally(f, c).f1 or 0.0), c) for c in others)
        if ours < best[0]:
            behind.append(f"{f}: {ours:.2f} < {best[1]} {best[0]:.2f}")
    overall = results.pooled(DRIFTGUARD, results.families).f1

    def false_alerts(families: Sequence[str]) -> dict[str, float | None]:
        return {
            f: results.family_tally(f, DRIFTGUARD).false_alerts_per_30_days
            for f in families
            if f in results.families
        }

    def within(figures: dict[str, float | None], limit: float) -> bool:
        return bool(figures) and all(v is not None and v <= limit for v in figures.values())

    clean = false_alerts(TIDY_CLEAN)
    real_like = false_alerts(REAL_LIKE_CLEAN)
    shifts = {
        f: results.family_tally(f, DRIFTGUARD).f1 for f in LEVEL_SHIFT_FAMILIES if f in results.families
    }
    delays = {
        f: results.family_tally(f, DRIFTGUARD).mean_delay for f in DELAY_FAMILIES if f in results.families
    }
    return [
        Target(texts[0], not behind, "; ".join(behind) or "best or tied on every family"),
        Target(texts[1], overall is not None and overall >= OVERALL_F1_TARGET, f"F1 {_fmt(overall)}"),
        Target(
            texts[2],
            within(clean, CLEAN_FALSE_ALERTS_TARGET),
            ", ".join(f"{f} {_fmt(v)}" for f, v in clean.items()) or "no clean family selected",
        ),
        Target(
            texts[3],
            bool(delays) and all(v is not None and v <= DELAY_TARGET for v in delays.values()),
            ", ".join(f"{f} {_fmt(v)}" for f, v in delays.items()) or "no such family selected",
        ),
        Target(
            texts[4],
            within(real_like, REAL_LIKE_FALSE_ALERTS_TARGET),
            ", ".join(f"{f} {_fmt(v)}" for f, v in real_like.items()) or "no such family selected",
        ),
        Target(
            texts[5],
            bool(shifts) and all(v is not None and v >= LEVEL_SHIFT_F1_TARGET for v in shifts.values()),
            ", ".join(f"{f} {_fmt(v)}" for f, v in shifts.items()) or "no such family selected",
        ),
    ]


# --------------------------------------------------------------------------- output


def _fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _row(label: str, contender: str, tally: Tally, best: bool) -> str:
    return (
        f"{label:<16} {contender:<13} {tally.events:>6} {_fmt(tally.precision):>5} {_fmt(tally.recall):>5} "
        f"{_fmt(tally.f1):>5}{'*' if best else ' '} {_fmt(tally.false_alerts_per_30_days):>6} "
        f"{_fmt(tally.mean_delay, 1):>6}"
    )


def _block(label: str, by_contender: dict[str, Tally]) -> list[str]:
    best = max((t.f1 for t in by_contender.values() if t.f1 is not None), default=None)
    lines = []
    for i, (name, tally) in enumerate(by_contender.items()):
        top = best is not None and tally.f1 == best
        lines.append(_row(label if i == 0 else "", name, tally, top))
    return lines


def report(results: Results) -> str:
    split_seeds = seeds(results.split, FAMILIES[0])
    per_family = (
        "1 series per family (quick)"
        if results.quick
        else f"{len(split_seeds[: results.series])} series per family"
    )
    lines = [
        f"DriftGuard detection benchmark: split {results.split} (seeds {split_seeds.start}-"
        f"{split_seeds.stop - 1}), {per_family}",
        f"Code: {results.revision}",
    ]
    if results.driftguard_error:
        banner = "!" * 100
        lines += [
            "",
            banner,
            f"!! {results.driftguard_error}",
            "!! Only the reference detectors are shown.",
            banner,
        ]
    header = (
        f"{'family':<16} {'detector':<13} {'events':>6} {'P':>5} {'R':>5} {'F1':>5}  "
        f"{'FA/30d':>6} {'delay':>6}"
    )
    lines += ["", header, "-" * len(header)]
    for family in results.families:
        lines += _block(family, results.tallies[family])
    pooled_clean = [f for f in CLEAN_FAMILIES if f in results.families]
    if pooled_clean:
        lines += ["-" * len(header)]
        lines += _block("clean (pooled)", {c: results.pooled(c, pooled_clean) for c in results.contenders})
    lines += ["-" * len(header)]
    lines += _block("overall", {c: results.pooled(c, results.families) for c in results.contenders})
    lines += [
        "",
        "P, R, F1: event-level precision, recall, F1 (* = best F1 of the family).",
        "FA/30d: false alerts per 30 days of scored time. delay: mean periods from onset to first alert.",
        "",
        "Time spent replaying: " + ", ".join(f"{c} {s:.1f}s" for c, s in results.seconds.items()),
        "",
        "Targets:",
    ]
    lines += [f"  [{'met' if t.met else 'NOT MET'}] {t.text} — {t.detail}" for t in targets(results)]
    return "\n".join(lines)


def as_json(results: Results) -> dict[str, Any]:
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "revision": results.revision,
        "split": results.split,
        "quick": results.quick,
        "seeds": {
            f: list(seeds(results.split, f, results.quick)[: results.series]) for f in results.families
        },
        "families": list(results.families),
        "detectors": results.contenders,
        "driftguard_error": results.driftguard_error,
        "results": {
            f: {c: t.figures() for c, t in by_contender.items()}
            for f, by_contender in results.tallies.items()
        },
        "overall": {c: results.pooled(c, results.families).figures() for c in results.contenders},
        "targets": [{"target": t.text, "met": t.met, "detail": t.detail} for t in targets(results)],
        "seconds": results.seconds,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.detection", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few series per family (CI smoke test)")
    parser.add_argument("--split", choices=("train", "heldout"), default="heldout")
    parser.add_argument("--family", action="append", choices=FAMILIES, help="only this family (repeatable)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON")
    parser.add_argument(
        "--series", type=int, metavar="N", help="only the split's first N seeds per family (faster tuning)"
    )
    args = parser.parse_args(argv)
    families = tuple(args.family) if args.family else FAMILIES
    results = run(args.split, families, args.quick, log=sys.stderr, series=args.series)
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(as_json(results), indent=2) + "\n", encoding="utf-8")
        print(f"\nFigures written to {args.json}")
    if results.driftguard_error:
        print(f"\n{results.driftguard_error}", file=sys.stderr)
    return 0
