"""Container images emulated as Python environments built from a local wheelhouse.

An image has two layers, cached under ``<repo>/.cache/localcluster/images``:
- ``<flavour>-deps-<deps key>/venv``: Snakemake and every dependency of the plugins, installed
  ``--no-index`` from the wheelhouse (downloaded once). Rebuilt only when requirements change.
- ``<flavour>-<source key>/site``: both plugins, installed from their source folders; a pod
  (or ``.dev/env.sh``) puts it on PYTHONPATH through wrapper scripts in ``<image>/bin``.
  Cheap to rebuild, and keyed by a hash of the plugin sources, so edits take effect at the
  next cluster start.
- The ``bare`` flavour (Snakemake without our plugins, as in an image like snakemake/snakemake)
  shares the base flavour's third-party layer and has an empty ``site``; the plugins are
  wheels in ``<image>/plugin-wheels``, on the pods' PIP_FIND_LINKS, as a package index would
  serve them to a pod that pip-installs a storage plugin.
Builds take file locks, so parallel test processes build each layer once.
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
LAYOUT_VERSION = 2  # bump when the cached layout changes
# Flavours whose plugins are not installed, only offered to pip; their third-party layer.
BARE_FLAVOURS = {"bare": "base"}


class ImageNotFound(LookupError):
    """The image name maps to no emulated image (the kubelet reports ErrImagePull)."""


class ImageBuildError(RuntimeError):
    pass


@dataclass(frozen=True)
class Image:
    """A built image: a venv of third-party packages, the plugins layered on top of it
    (a site directory on PYTHONPATH), and the wheelhouse pip inside pods resolves from."""

    root: Path
    venv: Path
    site: Path
    wheelhouses: tuple[Path, ...]

    @property
    def bin_dir(self) -> Path:
        """Wrappers (python, snakemake, pip) that see the plugins; first on a pod's PATH."""
        return self.root / "bin"

    @property
    def path_dirs(self) -> tuple[Path, ...]:
        return (self.bin_dir, self.venv / "bin")


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
    if repository.endswith("snakemake-bare"):
        return "bare"
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


def _pip(python: str) -> list[str]:
    return [python, "-m", "pip", "--disable-pip-version-check"]


def _write_wrappers(image: Image) -> None:
    """python/snakemake/pip that put the plugin layer on sys.path, then run the venv's."""
    image.bin_dir.mkdir(parents=True, exist_ok=True)
    python = image.venv / "bin" / "python"
    commands = {
        "python": f'"{python}"',
        "python3": f'"{python}"',
        "snakemake": f'"{python}" -m snakemake',
        "pip": f'"{python}" -m pip',
        "pip3": f'"{python}" -m pip',
    }
    for name, command in commands.items():
        wrapper = image.bin_dir / name
        wrapper.write_text(
            "#!/bin/sh\n"
            f'PYTHONPATH="{image.site}${{PYTHONPATH:+:$PYTHONPATH}}"\n'
            "export PYTHONPATH\n"
            f'exec {command} "$@"\n'
        )
        wrapper.chmod(0o755)


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
        self._keys: dict[str, str] = {}

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
        digest = hashlib.sha256(f"{LAYOUT_VERSION}|{self._deps_key(flavour)}".encode())
        for path in self._plugin_files():
            digest.update(str(path.relative_to(self.repo_root)).encode())
            digest.update(path.read_bytes())
        return digest.hexdigest()[:16]

    def build(self, flavour: str) -> Image:
        """Build (or reuse) the flavour's image; blocking, safe across processes."""
        return self._build_image(flavour, self.image_key(flavour))

    def _build_image(self, flavour: str, key: str) -> Image:
        layer = BARE_FLAVOURS.get(flavour, flavour)
        deps = self._build_wheelhouse(layer)
        venv = self._build_base_venv(layer, deps)
        target = self.cache_dir / f"{flavour}-{key}"
        bare = flavour in BARE_FLAVOURS
        wheelhouses = (deps, target / "plugin-wheels") if bare else (deps,)
        image = Image(root=target, venv=venv, site=target / "site", wheelhouses=wheelhouses)
        with _file_lock(self.cache_dir / f"{target.name}.lock"):
            if (target / COMPLETE_MARKER).exists():
                return image
            shutil.rmtree(target, ignore_errors=True)  # an interrupted build
            target.mkdir(parents=True)
            plugin_paths = [str(self.repo_root / plugin) for plugin in PLUGIN_DIRS]
            offline = ["-q", "--no-deps", "--no-index", "--find-links", str(deps)]
            if bare:
                image.site.mkdir()
                into = ["wheel", *offline, "-w", str(wheelhouses[-1])]
            else:
                into = ["install", *offline, "--target", str(image.site)]
            _run([*_pip(sys.executable), *into, *plugin_paths], target / "build.log")
            _write_wrappers(image)
            (target / COMPLETE_MARKER).write_text(key + "\n")
        return image

    def _build_base_venv(self, flavour: str, deps: Path) -> Path:
        """The third-party layer (Snakemake and the plugins' dependencies), rarely rebuilt."""
        target = self.cache_dir / f"{flavour}-deps-{self._deps_key(flavour)}"
        venv = target / "venv"
        with _file_lock(self.cache_dir / f"{target.name}.lock"):
            if (target / COMPLETE_MARKER).exists():
                return venv
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            log = target / "build.log"
            plugin_paths = [str(self.repo_root / plugin) for plugin in PLUGIN_DIRS]
            # Build the plugins only to learn their dependencies; the layer gets the deps.
            probe = target / "plugin-wheels"
            wheel = ["wheel", "-q", "--no-deps", "--no-index", "--find-links", str(deps)]
            _run([*_pip(sys.executable), *wheel, "-w", str(probe), *plugin_paths], log)
            # venvs keep absolute paths in their scripts: build in place, mark completion.
            _run([sys.executable, "-m", "venv", str(venv)], log)
            offline = ["--no-index", "--find-links", str(deps), "--find-links", str(probe)]
            venv_pip = _pip(str(venv / "bin" / "python"))
            wanted = [*PLUGIN_DISTRIBUTIONS, *self.requirements(flavour)]
            _run([*venv_pip, "install", "-q", *offline, *wanted], log)
            _run([*venv_pip, "uninstall", "-q", "-y", *PLUGIN_DISTRIBUTIONS], log)
            shutil.rmtree(probe)
            (target / COMPLETE_MARKER).write_text(self._deps_key(flavour) + "\n")
        return venv

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
        """The built image for an image reference; ImageNotFound for unknown names.

        The plugin sources are hashed once per catalog (per cluster process): edits made while
        a cluster runs take effect when it restarts, never halfway through a test session."""
        flavour = flavour_of(image)
        task = self._builds.get(flavour)
        if task is None or (task.done() and task.exception() is not None):
            key = self._keys.setdefault(flavour, self.image_key(flavour))
            task = asyncio.ensure_future(asyncio.to_thread(self._build_image, flavour, key))
            self._builds[flavour] = task
        return await asyncio.shield(task)
