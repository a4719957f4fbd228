"""Developer entry points: `nox -s unit`, `nox -s tests`, `nox -s demo`, `nox -s up`/`down`,
`nox -s bench`, `nox -s chaos`, `nox -s lint`.

Every session installs what it needs, each local package editable like any dependency (no
search-path settings): both plugins, `localcluster` (the local cluster, Azurite launcher and pytest
plugin), the example's `vcdemo`, the benchmark harness `pluginbench` and the tests' shared
helpers `support`; the test tools; and Azurite through npm when it is not there yet.

What does not depend on the clone is cached per user, as pip caches its downloads, so that a
second clone or worktree (CI runs the demo in one and the tests in another) builds nothing
again: Azurite in `<user cache>/localcluster/azurite/<version>/` and the job images in
`<user cache>/localcluster/images/` (localcluster's default; `LOCALCLUSTER_IMAGE_CACHE`
overrides it), each image keyed by a hash of everything that goes into it. The user cache
is `$XDG_CACHE_HOME`, else `~/.cache`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import nox

ROOT = Path(__file__).parent
USER_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "localcluster"
AZURITE_VERSION = "3.35.0"
AZURITE_DIR = USER_CACHE / "azurite" / AZURITE_VERSION
AZURITE_BIN = AZURITE_DIR / "node_modules" / ".bin" / "azurite-blob"

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

PLUGINS = ["-e", "./storage-plugin", "-e", "./executor-plugin"]
LOCALCLUSTER = ["-e", "./localcluster"]
EXAMPLE = ["-e", "./examples/variant-calling"]
BENCHMARKS = ["-e", "./benchmarks/hold-executor", "-e", "./benchmarks"]
TEST_SUPPORT = ["-e", "./tests/support"]
# What the local cluster installs into its job images.
PLUGIN_SOURCES = [ROOT / "storage-plugin", ROOT / "executor-plugin"]
SNAKEMAKE = ["snakemake>=9.0,<10"]
TEST_TOOLS = [
    "pytest>=8",
    "pytest-timeout>=2.3",
    "kubernetes-validate>=1.31",
    "aiohttp>=3.10",
    "pyyaml>=6",
    "trustme>=1.1",
]
WORKFLOW_TOOLS = ["pybwa>=2", "pysam>=0.22", "matplotlib>=3.8"]


def install_azurite(session: nox.Session) -> None:
    """Install Azurite from the npm registry into the user cache, once per version.

    npm installs into a folder of this process's own, renamed into place when complete: a
    session in another clone sees either no Azurite or a whole one."""
    if AZURITE_BIN.exists():
        return
    if shutil.which("npm") is None:
        session.error("npm not found: install Node.js 20 (it brings npm) to run Azurite")
    staging = AZURITE_DIR.with_name(f"{AZURITE_VERSION}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        session.run_install(
            "npm",
            "install",
            "--prefix",
            str(staging),
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            f"azurite@{AZURITE_VERSION}",
            external=True,
        )
        try:
            staging.rename(AZURITE_DIR)
        except OSError:
            if not AZURITE_BIN.exists():  # not another session's install finishing first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def install_once(session: nox.Session, *requirements: str) -> None:
    """pip-install into the session's venv unless the same requirements already went into it.

    The local packages are editable, so their code needs no reinstall; what would is in
    their pyproject.toml (dependencies, entry points), and it is part of the fingerprint.
    pip would find every requirement satisfied and change nothing, after some 20 s of
    building the editable wheels again; a venv that nox recreates has no fingerprint."""
    digest = hashlib.sha256("\0".join(requirements).encode())
    for requirement in requirements:
        pyproject = ROOT / requirement / "pyproject.toml"
        if requirement.startswith("./") and pyproject.is_file():
            digest.update(pyproject.read_bytes())
    stamp = Path(session.virtualenv.location) / ".installed-requirements"
    if stamp.is_file() and stamp.read_text() == digest.hexdigest():
        session.log("requirements unchanged since this venv's last install; pip skipped")
        return
    session.install(*requirements)
    # Through run_install, so that it is skipped exactly when nox skips the install (--no-install).
    write = "import pathlib, sys; pathlib.Path(sys.argv[1]).write_text(sys.argv[2])"
    session.run_install("python", "-c", write, str(stamp), digest.hexdigest(), silent=True)


def install_project(session: nox.Session, *extra: str) -> None:
    install_once(
        session,
        *SNAKEMAKE,
        *PLUGINS,
        *LOCALCLUSTER,
        *EXAMPLE,
        *BENCHMARKS,
        *TEST_SUPPORT,
        *TEST_TOOLS,
        *extra,
    )
    install_azurite(session)
    session.env["AZURITE_BIN"] = str(AZURITE_BIN)
    session.env["LOCALCLUSTER_PLUGIN_SOURCES"] = os.pathsep.join(map(str, PLUGIN_SOURCES))


def build_cluster_images(session: nox.Session) -> None:
    """Build the local cluster's job images (cached venvs) up front, so that no test's
    time limit includes a first build."""
    session.run_install(
        "python",
        "-c",
        "from localcluster.nodeagent.images import ImageCatalog; "
        "catalog = ImageCatalog.from_environment(); catalog.build('base'); catalog.build('bio')",
    )


@nox.session
def unit(session: nox.Session) -> None:
    """The fast tier: pure code and Azurite, no cluster and nothing marked slow."""
    install_project(session, *WORKFLOW_TOOLS)
    session.run(
        "pytest",
        "-m",
        "not cluster and not slow",
        "--durations=10",
        *(session.posargs or ["tests"]),
    )


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite (unit, Azurite, local cluster, end to end, reduced chaos)."""
    install_project(session, *WORKFLOW_TOOLS)
    build_cluster_images(session)
    session.run("pytest", "--durations=25", *(session.posargs or ["tests"]))


@nox.session
def chaos(session: nox.Session) -> None:
    """The fault-injection and load suite at full size."""
    install_project(session, *WORKFLOW_TOOLS)
    build_cluster_images(session)
    session.env["CHAOS_SCALE"] = "full"
    session.run("pytest", "-m", "chaos", *(session.posargs or ["tests"]))


@nox.session
def up(session: nox.Session) -> None:
    """Start Azurite and the local cluster in the background; write .dev/env.sh."""
    install_project(session, *WORKFLOW_TOOLS)
    session.run("localcluster", "up", "--root", str(ROOT))


@nox.session
def down(session: nox.Session) -> None:
    """Stop Azurite and the local cluster and remove their state."""
    install_project(session)
    session.run("localcluster", "down", "--root", str(ROOT))


@nox.session
def demo(session: nox.Session) -> None:
    """The reference scenario: variant calling on the local cluster with Blob staging."""
    install_project(session, *WORKFLOW_TOOLS)
    session.run("localcluster", "up", "--root", str(ROOT))
    session.run(
        "python", str(ROOT / "examples" / "variant-calling" / "run_demo.py"), *session.posargs
    )


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against the existing plugins and the raw SDK; prints ratios."""
    install_project(session)
    session.run("python", str(ROOT / "benchmarks" / "run.py"), *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
