"""The functions' memory sizes, from the size of what each loads (bench/perf/memory.py measured the
constants; bench/README.md, Function memory).

The check function loads the config without sources and the plan at init, then per invocation the
slice of the source it checks (keeping the last SLICE_CACHE_SIZE), and works on that source's
tables; the notify function loads the config without sources and one channel. So:

    check  = (CHECK_BASE_MB + EXPANSION x (shared + plan + SLICE_CACHE_SIZE x largest slice) MB
              + CHECK_MB_PER_TABLE x tables of the largest source) x HEADROOM
    notify = (NOTIFY_BASE_MB + EXPANSION x shared MB) x HEADROOM

each rounded up to a multiple of 64 MB and at least the function's default (check 512 MB, the default
of `aws.check_memory_mb`; notify 256 MB): the defaults also buy CPU, which Lambda allocates in
proportion to memory. `aws.check_memory_mb` and `aws.notify_memory_mb`, when set, are used as they
are; one below the estimate is kept, with a warning at synth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from aws_cdk import Annotations

from constructs import IConstruct
from driftguard.config import Config
from driftguard.errors import ConfigError
from driftguard.lambda_runtime import SLICE_CACHE_SIZE

CHECK_BASE_MB = 66.0
"""Peak RSS of a check container before its source's tables count: the runtime over the config without
sources, a plan, one slice and the modules a check imports (65.8 MB measured at 10,000 sources)."""
NOTIFY_BASE_MB = 46.0
"""Peak RSS of the notify path with a config without sources and a channel adapter (45.5 MB measured)."""
EXPANSION = 13.0
"""MB of memory per MB of compiled JSON once parsed and validated (pydantic models): (1,604 - 45.5) MB
for the 126.2 MB config of 10,000 sources x 20 tables is 12.3; an earlier build measured 13.0."""
CHECK_MB_PER_TABLE = 0.26
"""A check's working memory per table of the checked source (snapshot, history, baselines, findings):
the difference of a check's peak at 100 and at 20 tables, over 80 (0.26 MB measured)."""
HEADROOM = 1.5
"""Running out of memory ends the invocation: the estimate is exceeded by half again."""
STEP_MB = 64
LAMBDA_MAX_MB = 10240
CHECK_DEFAULT_MB = 512
NOTIFY_DEFAULT_MB = 256


@dataclass(frozen=True)
class MemorySize:
    function: str
    mb: int  # what the function gets
    estimate_mb: int  # the formula's figure, before rounding to STEP_MB and the floor
    floor_mb: int
    setting: str  # the aws key that overrides it
    explicit: bool  # the setting was given in the config

    @property
    def too_small(self) -> bool:
        return self.mb < self.estimate_mb

    def note(self) -> str:
        """What synth prints."""
        how = (
            f"set by aws.{self.setting}"
            if self.explicit
            else f"sized from the config (at least {self.floor_mb} MB; set aws.{self.setting} to override)"
        )
        text = f"{self.function} function memory: {self.mb} MB, {how}; estimated need {self.estimate_mb} MB"
        if self.too_small:
            text += (
                f". aws.{self.setting} is below the estimate: the function may run out of memory on the "
                f"largest source; raise it to at least {_rounded(self.estimate_mb)} MB or remove it"
            )
        return text


def announced(scope: IConstruct, size: MemorySize) -> MemorySize:
    """`size`, said at synth on `scope`: a warning when a setting is below the estimate, else info."""
    (Annotations.of(scope).add_warning if size.too_small else Annotations.of(scope).add_info)(size.note())
    return size


def _rounded(mb: float) -> int:
    return int(math.ceil(mb / STEP_MB) * STEP_MB)


def _mb(text_bytes: int) -> float:
    return text_bytes / 1e6


def check_memory(config: Config, *, shared: str, plan: str, slices: dict[str, str]) -> MemorySize:
    """The check function's memory (see the module's formula) for the files it ships."""
    largest_slice = max((len(text.encode()) for text in slices.values()), default=0)
    largest_tables = max((len(s.tables) for s in config.sources), default=0)
    loaded = _mb(len(shared.encode()) + len(plan.encode()) + SLICE_CACHE_SIZE * largest_slice)
    estimate = (CHECK_BASE_MB + EXPANSION * loaded + CHECK_MB_PER_TABLE * largest_tables) * HEADROOM
    explicit = "check_memory_mb" in config.aws.model_fields_set
    return _size(
        "check",
        "check_memory_mb",
        config.aws.check_memory_mb if explicit else None,
        estimate,
        CHECK_DEFAULT_MB,
    )


def notify_memory(config: Config, *, shared: str) -> MemorySize:
    """The notify function's memory (see the module's formula) for the config it ships."""
    estimate = (NOTIFY_BASE_MB + EXPANSION * _mb(len(shared.encode()))) * HEADROOM
    return _size("notify", "notify_memory_mb", config.aws.notify_memory_mb, estimate, NOTIFY_DEFAULT_MB)


def watchdog_memory(config: Config, *, whole: str) -> MemorySize:
    """The watchdog function's memory: it loads the whole compiled config (every source's schedule),
    so it grows with the fleet as the check function did before slices:

        watchdog = (NOTIFY_BASE_MB + EXPANSION x whole config MB) x HEADROOM

    at least the check function's default; `aws.check_memory_mb`, when set, sizes it as it sizes the
    check function (as before this estimate), with the same warning when it is below the estimate."""
    estimate = (NOTIFY_BASE_MB + EXPANSION * _mb(len(whole.encode()))) * HEADROOM
    explicit = "check_memory_mb" in config.aws.model_fields_set
    given = config.aws.check_memory_mb if explicit else None
    advice = "watch fewer sources from one stack: split the config into several deployments"
    return _size("watchdog", "check_memory_mb", given, estimate, CHECK_DEFAULT_MB, advice)


def _size(
    function: str,
    setting: str,
    given: int | None,
    estimate: float,
    floor: int,
    advice: str = "split the largest source's tables into several sources",
) -> MemorySize:
    mb = given if given is not None else max(floor, _rounded(estimate))
    if mb > LAMBDA_MAX_MB:
        raise ConfigError(
            f"the {function} function would need about {math.ceil(estimate)} MB for this config, more than "
            f"Lambda's {LAMBDA_MAX_MB} MB: {advice}"
        )
    return MemorySize(function, mb, math.ceil(estimate), floor, setting, explicit=given is not None)
