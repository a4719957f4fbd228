"""Container images emulated as Python environments built from a local wheelhouse.

What goes into the images is configuration, not this package's location: the source folders
of the Python packages to install (``--plugin-source DIR``, repeatable, or
``LOCALCLUSTER_PLUGIN_SOURCES``, folders separated by ``os.pathsep``). An image has two
layers, cached under ``LOCALCLUSTER_IMAGE_CACHE`` (default ``~/.cache/localcluster/images``):
- ``<flavour>-deps-<deps key>/venv``: Snakemake and every dependency of the plugin sources,
  installed ``--no-index`` from the wheelhouse (downloaded once). Rebuilt only when
  requirements change.
- ``<flavour>-<source key>/venv``: the image's own venv (no packages of its own but the plugin
  sources, installed from their folders) whose ``base-layer.pth`` appends the third-party
  layer's site-packages, as a container image layers on its base. A pod (or ``.dev/env.sh``)
  runs it through wrapper scripts in ``<image>/bin``. Cheap to rebuild, and keyed by a hash
  of the sources, so edits take effect at the next cluster start.
- Everything an image holds is copied into the cache (the plugins, the pod site module) and
  its key hashes all of it, the interpreter that built it included: the cache refers to no
  clone, so one per-user cache serves every clone and worktree of the repository, and a
  clone with other sources gets an image of its own, never a stale one.
- The ``bare`` flavour (Snakemake without our plugins, as in an image like snakemake/snakemake)
  shares the base flavour's third-party layer and has a venv without the plugins; they are
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
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SOURCES_VARIABLE = "LOCALCLUSTER_PLUGIN_SOURCES"
CACHE_VARIABLE = "LOCALCLUSTER_IMAGE_CACHE"
BIO_PACKAGES = ("pybwa>=2", "pysam>=0.22", "matplotlib>=3.8")
BUILD_TOOLS = ("hatchling>=1.25",)
COMPLETE_MARKER = ".localcluster-image-complete"
POD_SITE = Path(__file__).resolve().parent / "podsite"
LAYOUT_VERSION = 5  # bump when the cached layout changes
# Flavours whose plugins are not installed, only offered to pip; their third-party layer.
BARE_FLAVOURS = {"bare": "base"}


_NOT_SOURCE = shutil.ignore_patterns("__pycache__")


class ImageNotFound(LookupError):
    """The image name maps to no emulated image (the kubelet reports ErrImagePull)."""


class ImageBuildError(RuntimeError):
    pass


class ImageConfigError(ValueError):
    """The plugin sources to put into images are missing or not Python projects."""


def sources_from_environment(environ: Mapping[str, str] = os.environ) -> tuple[Path, ...]:
    """The plugin source folders named by LOCALCLUSTER_PLUGIN_SOURCES (may be none)."""
    return tuple(Path(p) for p in environ.get(SOURCES_VARIABLE, "").split(os.pathsep) if p)


def default_cache_dir(environ: Mapping[str, str] = os.environ) -> Path:
    if environ.get(CACHE_VARIABLE):
        return Path(environ[CACHE_VARIABLE])
    base = Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "localcluster" / "images"


def distribution_name(source: Path) -> str:
    """The ``[project] name`` of a source folder's pyproject.toml."""
    pyproject = source / "pyproject.toml"
    try:
        name = tomllib.loads(pyproject.read_text())["project"]["name"]
    except (OSError, tomllib.TOMLDecodeError, KeyError) as error:
        raise ImageConfigError(
            f"plugin source {source}: not a Python project ({pyproject}: {error!r})"
        ) from None
    return str(name)


def site_packages(venv: Path) -> Path:
    """A venv's site-packages (the venvs here all run this interpreter's version)."""
    return venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"


@dataclass(frozen=True)
class Image:
    """A built image: its own venv holding the plugins, layered through a .pth file on a
    venv of third-party packages, and the wheelhouse pip inside pods resolves from."""

    root: Path
    venv: Path
    base_venv: Path
    wheelhouses: tuple[Path, ...]

    @property
    def site(self) -> Path:
        return site_packages(self.venv)

    @property
    def bin_dir(self) -> Path:
        """Wrappers (python, snakemake, pip) of the image's venv; first on a pod's PATH."""
        return self.root / "bin"

    @property
    def path_dirs(self) -> tuple[Path, ...]:
        return (self.bin_dir, self.venv / "bin", self.base_venv / "bin")


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
    """python/snakemake/pip of the image's venv (the base layer's own scripts would run the
    base venv's interpreter, which does not see the plugins)."""
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
        wrapper.write_text(f'#!/bin/sh\nexec {command} "$@"\n')
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

    def __init__(self, plugin_sources: Sequence[Path], cache_dir: Path | None = None) -> None:
        if not plugin_sources:
            raise ImageConfigError(
                "no plugin sources for the job images: pass --plugin-source DIR (repeatable) "
                f"or set {SOURCES_VARIABLE}"
            )
        self.plugin_sources = tuple(Path(source).resolve() for source in plugin_sources)
        self.distributions = tuple(distribution_name(source) for source in self.plugin_sources)
        self.cache_dir = Path(cache_dir or default_cache_dir())
        self.snakemake = _snakemake_requirement()
        self._builds: dict[str, asyncio.Task[Image]] = {}
        self._keys: dict[str, str] = {}

    @classmethod
    def from_environment(cls) -> ImageCatalog:
        """The catalog that LOCALCLUSTER_PLUGIN_SOURCES and LOCALCLUSTER_IMAGE_CACHE describe."""
        return cls(sources_from_environment(), default_cache_dir())

    def requirements(self, flavour: str) -> list[str]:
        extra = list(BIO_PACKAGES) if flavour == "bio" else []
        return [self.snakemake, *extra]

    def _plugin_files(self) -> list[tuple[str, Path]]:
        """(name in the image key, file) of each file of the plugin layer, the name being the
        source folder's own name and the path inside it (``storage-plugin/src/...py``), and
        of the pod site module copied into every image."""
        files = []
        for source in self.plugin_sources:
            candidates = [source / "pyproject.toml", *sorted((source / "src").rglob("*.py"))]
            files += [(f"{source.name}/{p.relative_to(source)}", p) for p in candidates]
        files += [(f"podsite/{p.name}", p) for p in sorted(POD_SITE.glob("*.py"))]
        return [(name, path) for name, path in files if path.is_file()]

    def _deps_key(self, flavour: str) -> str:
        # The venvs run the interpreter that built them (their pyvenv.cfg names it).
        interpreter = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
        digest = hashlib.sha256()
        digest.update(f"{interpreter}|{sys.version}|{self.requirements(flavour)}".encode())
        for source in self.plugin_sources:
            digest.update((source / "pyproject.toml").read_bytes())
        return digest.hexdigest()[:16]

    def image_key(self, flavour: str) -> str:
        digest = hashlib.sha256(f"{LAYOUT_VERSION}|{self._deps_key(flavour)}".encode())
        for name, path in self._plugin_files():
            digest.update(name.encode())
            digest.update(path.read_bytes())
        return digest.hexdigest()[:16]

    def build(self, flavour: str) -> Image:
        """Build (or reuse) the flavour's image; blocking, safe across processes."""
        return self._build_image(flavour, self.image_key(flavour))

    def _build_image(self, flavour: str, key: str) -> Image:
        layer = BARE_FLAVOURS.get(flavour, flavour)
        deps = self._build_wheelhouse(layer)
        base_venv = self._build_base_venv(layer, deps)
        target = self.cache_dir / f"{flavour}-{key}"
        bare = flavour in BARE_FLAVOURS
        wheelhouses = (deps, target / "plugin-wheels") if bare else (deps,)
        image = Image(
            root=target, venv=target / "venv", base_venv=base_venv, wheelhouses=wheelhouses
        )
        with _file_lock(self.cache_dir / f"{target.name}.lock"):
            if (target / COMPLETE_MARKER).exists():
                return image
            shutil.rmtree(target, ignore_errors=True)  # an interrupted build
            target.mkdir(parents=True)
            log = target / "build.log"
            _run([sys.executable, "-m", "venv", "--without-pip", str(image.venv)], log)
            # The site module appends each line of a .pth file to sys.path, after the venv's
            # own site-packages: the plugins here win over any copy in the base layer.
            (image.site / "base-layer.pth").write_text(f"{site_packages(base_venv)}\n")
            # podsite's sitecustomize makes a pod's Python see its node's CPU count; a copy,
            # so that the image outlives the clone that built it.
            pod_site = shutil.copytree(POD_SITE, target / "podsite", ignore=_NOT_SOURCE)
            (image.site / "localcluster-podsite.pth").write_text(f"{pod_site}\n")
            plugin_paths = [str(source) for source in self.plugin_sources]
            offline = ["-q", "--no-deps", "--no-index", "--find-links", str(deps)]
            if bare:
                into = ["wheel", *offline, "-w", str(wheelhouses[-1])]
            else:
                into = ["install", *offline, "--target", str(image.site)]
            _run([*_pip(sys.executable), *into, *plugin_paths], log)
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
            plugin_paths = [str(source) for source in self.plugin_sources]
            # Build the plugins only to learn their dependencies; the layer gets the deps.
            probe = target / "plugin-wheels"
            wheel = ["wheel", "-q", "--no-deps", "--no-index", "--find-links", str(deps)]
            _run([*_pip(sys.executable), *wheel, "-w", str(probe), *plugin_paths], log)
            # venvs keep absolute paths in their scripts: build in place, mark completion.
            _run([sys.executable, "-m", "venv", str(venv)], log)
            offline = ["--no-index", "--find-links", str(deps), "--find-links", str(probe)]
            venv_pip = _pip(str(venv / "bin" / "python"))
            wanted = [*self.distributions, *self.requirements(flavour)]
            _run([*venv_pip, "install", "-q", *offline, *wanted], log)
            _run([*venv_pip, "uninstall", "-q", "-y", *self.distributions], log)
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
            plugin_paths = [str(source) for source in self.plugin_sources]
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
            own = tuple(f"{name.replace('-', '_')}-" for name in self.distributions)
            for wheel in staging.glob("*.whl"):
                if wheel.name.startswith(own):
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
