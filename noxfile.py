"""Developer entry points: `nox -s unit`, `nox -s tests`, `nox -s demo`, `nox -s up`/`down`,
`nox -s bench`, `nox -s chaos`, `nox -s lint`.

Every session installs what it needs, each local package editable like any dependency (no
search-path settings): both plugins, `localcluster` (the local cluster, Azurite launcher and pytest
plugin), the example's `vcdemo`, the benchmark harness `pluginbench` and the tests' shared
helpers `support`; the test tools; and Azurite through npm into `.cache/azurite` when it is
not there yet.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox

ROOT = Path(__file__).parent
AZURITE_DIR = ROOT / ".cache" / "azurite"
AZURITE_VERSION = "3.35.0"
IMAGE_CACHE = ROOT / ".cache" / "localcluster" / "images"

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

PLUGINS = ["-e", "./storage-plugin", "-e", "./executor-plugin"]
LOCALCLUSTER = ["-e", "./localcluster"]
EXAMPLE = ["-e", "./examples/variant-calling"]
BENCHMARKS = ["-e", "./benchmarks"]
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
    """Install Azurite from the npm registry into the repository's cache, once."""
    binary = AZURITE_DIR / "node_modules" / ".bin" / "azurite-blob"
    if binary.exists():
        return
    if shutil.which("npm") is None:
        session.error("npm not found: install Node.js 20 (it brings npm) to run Azurite")
    AZURITE_DIR.mkdir(parents=True, exist_ok=True)
    session.run_install(
        "npm",
        "install",
        "--prefix",
        str(AZURITE_DIR),
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
        f"azurite@{AZURITE_VERSION}",
        external=True,
    )


def install_project(session: nox.Session, *extra: str) -> None:
    session.install(
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
    session.env["AZURITE_BIN"] = str(AZURITE_DIR / "node_modules" / ".bin" / "azurite-blob")
    session.env["LOCALCLUSTER_PLUGIN_SOURCES"] = os.pathsep.join(map(str, PLUGIN_SOURCES))
    image_cache = os.environ.get("LOCALCLUSTER_IMAGE_CACHE") or IMAGE_CACHE
    session.env["LOCALCLUSTER_IMAGE_CACHE"] = str(image_cache)


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
