"""Container initialisation with the garbage collector paused: GC state restored, what init built
frozen, and both handlers' imports leave the collector running."""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftguard.lambda_init import long_lived

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _unfreeze() -> Iterator[None]:
    """Give the test process's objects back to the collector after each test."""
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if enabled:
        gc.enable()


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector could free it


def test_the_collector_is_paused_inside_and_running_after() -> None:
    assert gc.isenabled()
    with long_lived():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_what_was_built_inside_is_frozen() -> None:
    gc.unfreeze()
    with long_lived():
        built = _Node()
    assert gc.get_freeze_count() > 0
    assert not any(o is built for o in gc.get_objects())  # out of every generation: frozen


def test_an_error_inside_still_restarts_the_collector() -> None:
    with pytest.raises(RuntimeError, match="init failed"), long_lived():
        raise RuntimeError("init failed")
    assert gc.isenabled()


def test_a_collector_disabled_before_stays_disabled() -> None:
    gc.disable()
    with long_lived():
        pass
    assert not gc.isenabled()


@pytest.mark.parametrize("function", ["check", "notify"])
def test_importing_a_handler_leaves_the_collector_running(function: str) -> None:
    probe = (
        "import gc, sys; "
        f"sys.path.insert(0, {str(REPO / 'functions' / function)!r}); "
        "import handler; "
        "print(gc.isenabled(), gc.get_freeze_count() > 0, handler.tracer is not None)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO)
    assert done.stdout.split() == ["True", "True", "True"]
