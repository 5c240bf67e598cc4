"""The Lambda functions' code asset, bundled locally: pip for Linux x86-64, Python 3.12, no Docker.

The bundle is the ``api`` extra's dependencies (less the HTTP server, which a
Lambda function does not run) installed with ``pip --platform
manylinux2014_x86_64 --platform manylinux_2_28_x86_64 --only-binary=:all:
--python-version 3.12 --no-compile`` under the pins of ``constraints.txt``, plus
the ``annotrain`` and ``lambdas`` packages. torch and everything under
``batch_jobs/`` stay out: a function never imports them, and torch alone would
pass Lambda's 250 MB limit.

The installed dependencies are cached in ``.build/lambda-deps/<key>``, keyed by
the requirements, the constraints and the target platform, so only the first
synth after a dependency change reaches the package index. The asset hash covers
that key and every source file, so CDK re-bundles exactly when either changes.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

RUNTIME = lambda_.Runtime.PYTHON_3_12
PYTHON_VERSION = "3.12"
# Lambda's Python 3.12 runtime is Amazon Linux 2023 (glibc 2.34): wheels for glibc
# 2.17 (manylinux2014) up to 2.28 run there, and some packages (Pillow 13) publish
# only manylinux_2_28 wheels.
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_28_x86_64")
SOURCE_PACKAGES = ("annotrain", "lambdas")
# The HTTP server and its accelerators: `annotrain serve` needs them, a Lambda function does not.
SERVER_ONLY = frozenset({"uvicorn", "httptools", "uvloop"})
NEVER_BUNDLED = frozenset({"torch", "transformers", "accelerate"})
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo")


class LambdaBundlingError(RuntimeError):
    """pip could not install the functions' dependencies; the message has its output."""


def lambda_requirements(pyproject: Path) -> list[str]:
    """The requirements a Lambda function needs: the core's and the ``api`` extra's.

    Args:
        pyproject: The project's ``pyproject.toml``.

    Returns:
        Requirement strings, the server-only packages left out.

    Raises:
        LambdaBundlingError: A requirement that must never reach a function is listed.
    """
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["api"]]
    requirements = [r for r in wanted if _name(r) not in SERVER_ONLY]
    forbidden = sorted({_name(r) for r in requirements} & NEVER_BUNDLED)
    if forbidden:
        raise LambdaBundlingError(f"the api extra pulls {forbidden} into the Lambda bundle")
    return requirements


def _name(requirement: str) -> str:
    for stop in "<>=!~;[ ":
        requirement = requirement.split(stop, 1)[0]
    return requirement.strip().lower().replace("_", "-")


class LambdaAsset:
    """Builds the functions' ``Code`` from a repository checkout.

    Args:
        root: The repository root (``pyproject.toml``, ``constraints.txt``, sources).
        cache_dir: Where installed dependencies are kept between synths.
        python: The interpreter whose pip installs them.
    """

    def __init__(self, *, root: Path, cache_dir: Path, python: str = sys.executable) -> None:
        self._root = root
        self._cache_dir = cache_dir
        self._python = python
        self._requirements = lambda_requirements(root / "pyproject.toml")
        self._deps_key = _digest(
            [
                *PLATFORMS,
                PYTHON_VERSION,
                *self._requirements,
                (root / "constraints.txt").read_text(encoding="utf-8"),
            ]
        )[:16]
        self._hash: str | None = None

    @property
    def asset_hash(self) -> str:
        """The dependency key and every source file, hashed: what decides a re-bundle."""
        if self._hash is None:
            digest = hashlib.sha256(self._deps_key.encode())
            for path in self._source_files():
                digest.update(str(path.relative_to(self._root)).encode())
                digest.update(path.read_bytes())
            self._hash = digest.hexdigest()
        return self._hash

    def code(self) -> lambda_.Code:
        """The asset for ``lambda_.Function(code=…)``; bundled at synth, once per process."""
        return lambda_.Code.from_asset(
            str(self._root / "lambdas"),
            asset_hash_type=AssetHashType.CUSTOM,
            asset_hash=self.asset_hash,
            bundling=BundlingOptions(
                # Never pulled: the local bundler below always bundles or raises.
                image=DockerImage.from_registry("public.ecr.aws/sam/build-python3.12"),
                local=_PipBundling(self),
            ),
        )

    def bundle_into(self, output_dir: Path) -> None:
        """Install the dependencies (from the cache) and copy the sources into ``output_dir``."""
        deps = self._installed_dependencies()
        _link_tree(deps, output_dir)
        for package in SOURCE_PACKAGES:
            shutil.copytree(self._root / package, output_dir / package, ignore=_IGNORED)

    def _installed_dependencies(self) -> Path:
        target = self._cache_dir / self._deps_key
        if target.is_dir():
            return target
        staging = self._cache_dir / f"{self._deps_key}.partial-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        command = [
            self._python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
            str(staging),
            *(arg for platform in PLATFORMS for arg in ("--platform", platform)),
            "--implementation",
            "cp",
            "--python-version",
            PYTHON_VERSION,
            "--only-binary=:all:",
            "--no-compile",
            "--constraint",
            str(self._root / "constraints.txt"),
            *self._requirements,
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise LambdaBundlingError(
                f"pip could not install the Lambda dependencies (exit {result.returncode}):\n"
                f"{result.stderr[-4000:]}"
            )
        leaked = sorted(p.name for p in staging.iterdir() if p.name.lower() in NEVER_BUNDLED)
        if leaked:
            shutil.rmtree(staging, ignore_errors=True)
            raise LambdaBundlingError(f"{leaked} reached the Lambda bundle through a dependency")
        try:
            staging.rename(target)
        except OSError:
            if not target.is_dir():
                raise
            shutil.rmtree(staging)  # another synth installed the same set meanwhile
        return target

    def _source_files(self) -> Iterable[Path]:
        for package in SOURCE_PACKAGES:
            for path in sorted((self._root / package).rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                    yield path


@jsii.implements(ILocalBundling)
class _PipBundling:
    """CDK's local bundling hook: bundles in this process, so Docker is never asked."""

    def __init__(self, asset: LambdaAsset) -> None:
        self._asset = asset

    def try_bundle(self, output_dir: str, *_args: Any, **_options: Any) -> bool:
        self._asset.bundle_into(Path(output_dir))
        return True


def _link_tree(source: Path, destination: Path) -> None:
    """Hard-link (or, across file systems, copy) every file of ``source`` under ``destination``."""
    for folder, _dirs, files in os.walk(source):
        relative = Path(folder).relative_to(source)
        (destination / relative).mkdir(parents=True, exist_ok=True)
        for name in files:
            src, dst = Path(folder) / name, destination / relative / name
            try:
                os.link(src, dst)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                    raise
                shutil.copy2(src, dst)


def _digest(parts: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()
