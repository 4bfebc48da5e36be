"""What a Lambda handler does while its container initialises: light on purpose, since a handler
imports it before anything heavy (it imports only the standard library)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def long_lived() -> Iterator[None]:
    """Build what the container keeps for its whole life (modules, classes, pydantic schemas,
    Powertools' logger, metrics and tracer) with the cyclic garbage collector paused, then freeze it.

    Importing the check handler builds most of the ~110,000 objects its container tracks; meanwhile
    hundreds of collections walk the young ones (every tenth the older ones too) to free almost
    nothing (init leaves about 1,400 objects of cyclic garbage): about 30 ms of a cold start on
    Python 3.11 and on 3.13 (bench/README.md, Cold start). Re-enabling alone would only move that
    work into the first invocation (its next collections walk everything built meanwhile), so what
    was built is frozen first (`gc.freeze`): frozen objects are left out of every later collection
    (a warm invocation's collections walk only its own objects), at the price of keeping init's few
    cyclic leftovers for the container's life."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()
