"""The shared Lambda layer: the driftguard package and its runtime dependencies, built without Docker.

Two cached stages under `build/layer/` (or $DRIFTGUARD_LAYER_CACHE), so repeated synths and
tests do not reinstall anything:

* `deps-<hash>`: the base, `aws` and `channels` requirements from pyproject.toml, installed by
  `pip install --platform manylinux2014_aarch64 --only-binary=:all: --python-version 3.13
  --implementation cp` (binary wheels for the Lambda's arm64 Python 3.13, whatever the build
  machine). Keyed by the requirement strings: rebuilt only when pyproject.toml changes them.
* `package-<hash>`: the driftguard package itself, installed non-editable from a wheel with
  `--no-deps`. Keyed by pyproject.toml and every file of layers/driftguard.

Both stages ship bytecode for the runtime's Python: /opt is read-only in Lambda, so a module
without a `.pyc` is compiled from source at every cold start, and doing so for pydantic,
SQLAlchemy, PynamoDB, Powertools and the rest costs about a second (measured on the build
machine: importing the check handler took 1.59 s compiling everything against 0.34 s with
bytecode). The bytecode is compiled by a Python 3.13 interpreter (`DRIFTGUARD_LAYER_PYTHON`,
`python3.13` on PATH, or pyenv's 3.13), as unchecked-hash `.pyc` files (valid whatever the
files' times after unzipping). Without such an interpreter the layer is built without bytecode
and a warning says what that costs.

boto3, botocore and s3transfer are left out: the Lambda Python 3.13 runtime provides them
(/var/runtime, after /opt/python on sys.path), they are about 25 MB unzipped, and the
runtime's copy stays patched by AWS. Pin them in the layer only if a feature needs a newer
SDK than the runtime ships.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path

from aws_cdk import aws_lambda as lambda_

from constructs import Construct
from infra.constructs.assets import REPO, BundlingError, link_tree, local_asset

PACKAGE_DIR = REPO / "layers" / "driftguard"
PYPROJECT = REPO / "pyproject.toml"
EXTRAS = ("aws", "channels")
PROVIDED_BY_RUNTIME = ("boto3", "botocore", "s3transfer")
PIP_TARGET_ARGS = (
    "--platform",
    "manylinux2014_aarch64",
    "--only-binary=:all:",
    "--python-version",
    "3.13",
    "--implementation",
    "cp",
)
_BUILD_FORMAT = "3"  # bump when the build steps change, to invalidate every cache entry
LAMBDA_CACHE_TAG = "cpython-313"  # the bytecode the Lambda Python 3.13 runtime reads


def cache_root() -> Path:
    return Path(os.environ.get("DRIFTGUARD_LAYER_CACHE", REPO / "build" / "layer"))


def runtime_requirements() -> list[str]:
    """Base requirements plus the aws and channels extras, without the SDK the runtime provides."""
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    reqs = list(project["dependencies"])
    for extra in EXTRAS:
        reqs += project["optional-dependencies"][extra]
    return [r for r in reqs if _requirement_name(r) not in PROVIDED_BY_RUNTIME]


def deps_key() -> str:
    return _hash([_BUILD_FORMAT, _bytecode_tag(), *PIP_TARGET_ARGS, *runtime_requirements()])


def package_key() -> str:
    files = sorted(p for p in PACKAGE_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return _hash(
        [_BUILD_FORMAT, _bytecode_tag(), PYPROJECT.read_text(encoding="utf-8")]
        + [f"{p.relative_to(REPO)}\0{p.read_bytes().hex()}" for p in files]
    )


@functools.cache
def bytecode_python() -> str | None:
    """An interpreter that writes the Lambda runtime's bytecode (CPython 3.13), or None."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [os.environ.get("DRIFTGUARD_LAYER_PYTHON"), shutil.which("python3.13")]
    candidates += [str(p) for p in sorted(pyenv.glob("3.13*/bin/python3.13"), reverse=True)]
    for candidate in candidates:
        if not candidate:
            continue
        try:
            tag = subprocess.run(
                [candidate, "-c", "import sys; print(sys.implementation.cache_tag)"],
                capture_output=True,
                text=True,
                check=False,
                timeout=30,
            ).stdout.strip()
        except OSError:
            continue
        if tag == LAMBDA_CACHE_TAG:
            return candidate
    return None


def _bytecode_tag() -> str:
    return LAMBDA_CACHE_TAG if bytecode_python() else "source-only"


def _compile(site: Path) -> None:
    """Write unchecked-hash bytecode for the runtime's Python next to every module under `site`."""
    python = bytecode_python()
    if python is None:
        print(
            "warning: no Python 3.13 found (set DRIFTGUARD_LAYER_PYTHON): the layer ships without "
            "bytecode, so every cold start compiles its modules from source (about a second)",
            file=sys.stderr,
        )
        return
    # Exit status 1 only means some file did not compile (test data written for another Python in
    # a dependency): those few are compiled at run time, as before; the rest is written.
    subprocess.run(
        [python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", str(site)],
        capture_output=True,
        check=False,
    )


def build_layer(output_dir: Path, *, deps: str, package: str) -> None:
    """Write the layer content (`python/...`) into output_dir, building missing cache stages first."""
    link_tree(_cached(f"deps-{deps[:24]}", _install_dependencies), output_dir)
    link_tree(_cached(f"package-{package[:24]}", _install_package), output_dir)


def _cached(name: str, build: Callable[[Path], None]) -> Path:
    target = cache_root() / name
    if target.is_dir():
        return target
    cache_root().mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=cache_root()))
    try:
        build(work)
        try:
            work.rename(target)
        except OSError:  # another process finished the same stage first: use theirs
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _prune(name.split("-", 1)[0])
    return target


def _prune(stage: str, keep: int = 4) -> None:
    """Drop all but the newest `keep` entries of a stage: package sources change on every edit."""
    entries = sorted(cache_root().glob(f"{stage}-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def _install_dependencies(work: Path) -> None:
    _pip(
        [
            "install",
            "--no-compile",
            "--quiet",
            *PIP_TARGET_ARGS,
            "--target",
            str(work / "python"),
            *runtime_requirements(),
        ],
        what="the layer's dependencies",
    )
    site = work / "python"
    for name in PROVIDED_BY_RUNTIME:
        shutil.rmtree(site / name, ignore_errors=True)
        for info in site.glob(f"{name}-*.dist-info"):
            shutil.rmtree(info)
    _compile(site)


def _install_package(work: Path) -> None:
    wheels = work / "wheel"
    _pip(["wheel", "--no-deps", "--quiet", "--wheel-dir", str(wheels), str(REPO)], what="the package wheel")
    (wheel,) = wheels.glob("driftguard-*.whl")
    _pip(
        ["install", "--no-deps", "--no-compile", "--quiet", "--target", str(work / "python"), str(wheel)],
        what="the driftguard package",
    )
    shutil.rmtree(wheels)
    _compile(work / "python")


def _pip(args: list[str], *, what: str) -> None:
    command = [sys.executable, "-m", "pip", *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BundlingError(
            f"building the Lambda layer failed while installing {what} (pip exit {result.returncode}).\n"
            f"command: {' '.join(command)}\n{result.stderr.strip()[-3000:]}\n"
            "pip needs to reach PyPI (or your index, PIP_INDEX_URL) once; after that the layer is "
            f"cached in {cache_root()}. Check the network or proxy settings and run the synth again."
        )


def _requirement_name(requirement: str) -> str:
    name = requirement
    for sep in "[<>=!~;@ ":
        name = name.split(sep, 1)[0]
    return name.strip().lower().replace("_", "-")


def _hash(parts: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


class SharedLayer(Construct):
    """ONE layer for both functions: driftguard + its runtime dependencies for arm64 Python 3.13."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        deps, package = deps_key(), package_key()  # once: the sources may change while we synthesize
        self.layer = lambda_.LayerVersion(
            self,
            "Layer",
            code=local_asset(
                PACKAGE_DIR,
                functools.partial(build_layer, deps=deps, package=package),
                asset_hash=_hash([deps, package])[:32],
            ),
            compatible_runtimes=[lambda_.Runtime.PYTHON_3_13],
            compatible_architectures=[lambda_.Architecture.ARM_64],
            description="driftguard package and runtime dependencies (aws, channels extras)",
        )
