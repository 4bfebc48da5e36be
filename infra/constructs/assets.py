"""Local bundling for Lambda assets: no Docker, only the current Python interpreter.

`LocalBundling` adapts a plain function `build(output_dir)` to CDK's `ILocalBundling`; a build
that cannot run raises `BundlingError` with what to do, instead of falling back to Docker
(which CDK would try, and which this project never uses).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

REPO = Path(__file__).resolve().parents[2]
CONFIG_FILE_NAME = "driftguard.json"
"""The compiled config inside each function asset (env DRIFTGUARD_CONFIG): validated at synth and
written as JSON, which loads an order of magnitude faster than YAML on a Lambda cold start."""

PLAN_FILE_NAME = "driftguard-plan.json"
"""The schedule plan inside the check function's asset (env DRIFTGUARD_PLAN): which sources each
schedule covers, by server, computed once at synth (`driftguard.schedules.plan_index`)."""

SLICES_DIR_NAME = "driftguard-sources"
"""The check function's per-source slices of the compiled config (env DRIFTGUARD_CONFIG_SLICES): one
`NAME.json` per source; its `driftguard.json` is then the config without sources, and a check reads
only its source's slice (driftguard.lambda_runtime.ConfigSlices)."""

_UNUSED_IMAGE = DockerImage.from_registry("public.ecr.aws/sam/build-python3.13")
"""CDK requires an image; local bundling always succeeds or raises, so it is never pulled."""


class BundlingError(RuntimeError):
    """A Lambda asset could not be built locally."""


@jsii.implements(ILocalBundling)
class LocalBundling:
    def __init__(self, build: Callable[[Path], None]) -> None:
        self._build = build

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_options: object) -> bool:
        self._build(Path(output_dir))
        return True


def local_asset(
    path: Path, build: Callable[[Path], None], *, asset_hash: str | None = None
) -> lambda_.AssetCode:
    """An asset whose content `build` writes; hashed by `asset_hash` if given, else by its output."""
    return lambda_.Code.from_asset(
        str(path),
        asset_hash=asset_hash,
        asset_hash_type=AssetHashType.CUSTOM if asset_hash else AssetHashType.OUTPUT,
        bundling=BundlingOptions(image=_UNUSED_IMAGE, local=LocalBundling(build)),
    )


def link_tree(source: Path, target: Path) -> None:
    """Copy a directory tree into `target` with hard links where possible (fast, no extra space)."""

    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link_or_copy, dirs_exist_ok=True)


def function_code(folder: Path, files: Mapping[str, str], config_path: Path) -> lambda_.AssetCode:
    """A function folder as it is (it may still be empty) plus `files` compiled at synth (name ->
    text): the config as `driftguard.json` and the schedule plan as `driftguard-plan.json`."""

    def build(output_dir: Path) -> None:
        if folder.is_dir():
            shutil.copytree(
                folder, output_dir, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        for name, text in files.items():
            target = output_dir / name
            target.parent.mkdir(parents=True, exist_ok=True)  # slices: driftguard-sources/NAME.json
            target.write_text(text, encoding="utf-8")

    return local_asset(folder if folder.is_dir() else config_path.parent, build)
