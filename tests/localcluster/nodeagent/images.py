"""Container images emulated as Python virtual environments built from a local wheelhouse.

The wheelhouse holds wheels of both plugins, Snakemake and all their dependencies; a venv is
built from it with ``--no-index`` once per image flavour and cached under
``<repo>/.cache/localcluster/images/<flavour>-<key>``. The key hashes the plugin sources and
the requirement lists, so editing a plugin rebuilds the image on next use. Builds take a file
lock, so parallel test processes build each image once.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
PLUGIN_DIRS = ("storage-plugin", "executor-plugin")
PLUGIN_DISTRIBUTIONS = ("snakemake-storage-plugin-azblob", "snakemake-executor-plugin-kubernetes")
BIO_PACKAGES = ("pybwa>=2", "pysam>=0.22", "matplotlib>=3.8")
BUILD_TOOLS = ("hatchling>=1.25",)
COMPLETE_MARKER = ".localcluster-image-complete"
KEY_RECHECK_SECONDS = 5.0


class ImageNotFound(LookupError):
    """The image name maps to no emulated image (the kubelet reports ErrImagePull)."""


class ImageBuildError(RuntimeError):
    pass


@dataclass(frozen=True)
class Image:
    """A built image: its venv and the wheelhouse pip inside pods resolves from."""

    venv: Path
    wheelhouses: tuple[Path, ...]

    @property
    def bin_dir(self) -> Path:
        return self.venv / "bin"


def flavour_of(image: str) -> str:
    """Which emulated image an image reference names; ImageNotFound otherwise."""
    repository = image.split("@", 1)[0]
    last = repository.rsplit("/", 1)[-1]
    if ":" in last:
        repository = repository[: -(len(last) - last.index(":"))]
    for prefix in ("docker.io/", "index.docker.io/"):
        repository = repository.removeprefix(prefix)
    if repository.endswith("snakemake-k8s-azblob-bio"):
        return "bio"
    if repository in ("snakemake/snakemake", "library/snakemake/snakemake") or repository.endswith(
        "snakemake-k8s-azblob"
    ):
        return "base"
    raise ImageNotFound(image)


def _snakemake_requirement() -> str:
    try:
        return f"snakemake=={importlib.metadata.version('snakemake')}"
    except importlib.metadata.PackageNotFoundError:
        return "snakemake>=9,<10"


def _run(command: list[str], log: Path) -> None:
    with log.open("a") as output:
        output.write(f"$ {' '.join(command)}\n")
        output.flush()
        completed = subprocess.run(command, stdout=output, stderr=subprocess.STDOUT, check=False)
    if completed.returncode != 0:
        raise ImageBuildError(f"{' '.join(command[:4])} ... failed; see {log}")


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class ImageCatalog:
    """Maps image names to built venvs, building each flavour at most once."""

    def __init__(self, repo_root: Path | None = None, cache_dir: Path | None = None) -> None:
        self.repo_root = Path(repo_root or REPO_ROOT)
        default_cache = os.environ.get("LOCALCLUSTER_IMAGE_CACHE")
        self.cache_dir = Path(
            cache_dir or default_cache or self.repo_root / ".cache" / "localcluster" / "images"
        )
        self.snakemake = _snakemake_requirement()
        self._builds: dict[str, asyncio.Task[Image]] = {}
        self._keys: dict[str, tuple[float, str]] = {}

    def requirements(self, flavour: str) -> list[str]:
        extra = list(BIO_PACKAGES) if flavour == "bio" else []
        return [self.snakemake, *extra]

    def _plugin_files(self) -> list[Path]:
        files = []
        for plugin in PLUGIN_DIRS:
            root = self.repo_root / plugin
            files.append(root / "pyproject.toml")
            files.extend(sorted((root / "src").rglob("*.py")))
        return [path for path in files if path.is_file()]

    def _deps_key(self, flavour: str) -> str:
        digest = hashlib.sha256()
        digest.update(f"{sys.version_info[:2]}|{self.requirements(flavour)}".encode())
        for plugin in PLUGIN_DIRS:
            digest.update((self.repo_root / plugin / "pyproject.toml").read_bytes())
        return digest.hexdigest()[:16]

    def image_key(self, flavour: str) -> str:
        digest = hashlib.sha256(self._deps_key(flavour).encode())
        for path in self._plugin_files():
            digest.update(str(path.relative_to(self.repo_root)).encode())
            digest.update(path.read_bytes())
        return digest.hexdigest()[:16]

    def image_dir(self, flavour: str) -> Path:
        return self.cache_dir / f"{flavour}-{self.image_key(flavour)}"

    def build(self, flavour: str) -> Image:
        """Build (or reuse) the flavour's venv; blocking, safe across processes."""
        deps = self._build_wheelhouse(flavour)
        target = self.image_dir(flavour)
        wheels = target / "wheels"
        image = Image(venv=target / "venv", wheelhouses=(deps, wheels))
        with _file_lock(self.cache_dir / f"{target.name}.lock"):
            if (target / COMPLETE_MARKER).exists():
                return image
            shutil.rmtree(target, ignore_errors=True)  # an interrupted build
            target.mkdir(parents=True)
            log = target / "build.log"
            pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
            offline = ["--no-index", "--find-links", str(deps)]
            plugin_paths = [str(self.repo_root / plugin) for plugin in PLUGIN_DIRS]
            _run(
                [*pip, "wheel", "-q", "--no-deps", *offline, "-w", str(wheels), *plugin_paths], log
            )
            # venvs keep absolute paths in their scripts, so build in place and mark completion.
            _run([sys.executable, "-m", "venv", str(image.venv)], log)
            venv_pip = [str(image.bin_dir / "python"), "-m", "pip", "--disable-pip-version-check"]
            _run(
                [
                    *venv_pip,
                    "install",
                    "-q",
                    *offline,
                    "--find-links",
                    str(wheels),
                    *PLUGIN_DISTRIBUTIONS,
                    *self.requirements(flavour),
                ],
                log,
            )
            (target / COMPLETE_MARKER).write_text(self.image_key(flavour) + "\n")
        return image

    def _build_wheelhouse(self, flavour: str) -> Path:
        """Third-party wheels for the flavour (downloaded once, then offline)."""
        wheelhouse = self.cache_dir / f"wheelhouse-{flavour}-{self._deps_key(flavour)}"
        with _file_lock(self.cache_dir / f"{wheelhouse.name}.lock"):
            if wheelhouse.is_dir():
                return wheelhouse
            staging = wheelhouse.with_name(wheelhouse.name + ".partial")
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            log = self.cache_dir / f"{wheelhouse.name}.log"
            log.unlink(missing_ok=True)
            plugin_paths = [str(self.repo_root / plugin) for plugin in PLUGIN_DIRS]
            command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "wheel", "-q"]
            _run(
                [
                    *command,
                    "-w",
                    str(staging),
                    *plugin_paths,
                    *self.requirements(flavour),
                    *BUILD_TOOLS,
                    "pip",
                    "setuptools",
                    "wheel",
                ],
                log,
            )
            # The plugins' own wheels belong to each image, not to the shared wheelhouse.
            for wheel in staging.glob("snakemake_*_plugin_*.whl"):
                if wheel.name.startswith(("snakemake_storage_plugin_azblob", "snakemake_executor")):
                    wheel.unlink()
            staging.rename(wheelhouse)
        return wheelhouse

    async def resolve(self, image: str) -> Image:
        """The built image for an image reference; ImageNotFound for unknown names."""
        flavour = flavour_of(image)
        key = f"{flavour}-{self._current_key(flavour)}"
        task = self._builds.get(key)
        if task is None or (task.done() and task.exception() is not None):
            task = asyncio.ensure_future(asyncio.to_thread(self.build, flavour))
            self._builds[key] = task
        return await asyncio.shield(task)

    def _current_key(self, flavour: str) -> str:
        """The image key, re-hashed at most every few seconds (edits rebuild on next pod)."""
        now = time.monotonic()
        cached = self._keys.get(flavour)
        if cached is None or now - cached[0] > KEY_RECHECK_SECONDS:
            cached = (now, self.image_key(flavour))
            self._keys[flavour] = cached
        return cached[1]
