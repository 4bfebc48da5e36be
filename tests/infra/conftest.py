"""Synthesizing the stack in-process, as few times as possible (CDK synth is heavy).

* The Lambda layer is built (or taken from the cache) once per session and its cache keys are
  pinned, so an edit to the package during the session does not rebuild it for every synth.
* Each config is synthesized once per module (module-scoped `synth` fixtures); examples/aws-basic.yaml
  once per session (`basic_synth`), since several modules read it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import stack_helpers  # noqa: F401  (first: puts the repository on sys.path)

# isort: split
from infra.constructs import layer
from stack_helpers import REPO, Synthesized, synthesize

BASIC_CONFIG = REPO / "examples" / "aws-basic.yaml"


@pytest.fixture(scope="session")
def pinned_layer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Build the layer's cache stages once (printing how long it took) and pin their keys."""
    deps, package = layer.deps_key(), layer.package_key()
    started = time.perf_counter()
    layer.build_layer(tmp_path_factory.mktemp("layer"), deps=deps, package=package)
    print(f"\nlayer (deps-{deps[:8]}, package-{package[:8]}): {time.perf_counter() - started:.1f}s")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(layer, "deps_key", lambda: deps)
        mp.setattr(layer, "package_key", lambda: package)
        yield


@pytest.fixture(scope="session")
def basic_synth(pinned_layer: None, tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    result = synthesize(BASIC_CONFIG, tmp_path_factory.mktemp("basic"))
    print(f"\nsynth of {BASIC_CONFIG.name}: {result.seconds:.1f}s")
    return result
