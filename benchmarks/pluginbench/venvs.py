"""Virtual environments for the baseline plugins, kept apart from ours.

Each baseline gets its own venv under ``.cache/bench-venvs/`` because its pins clash
with ours (the kubernetes executor 0.5.1 needs ``kubernetes<33``). They are built with
``python -m venv`` and pip from the ordinary package index, once, and reused.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_ROOT = REPO_ROOT / ".cache" / "bench-venvs"


@dataclass(frozen=True)
class BaselineEnv:
    name: str
    requirements: tuple[str, ...]

    @property
    def path(self) -> Path:
        return VENV_ROOT / self.name

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    @property
    def bin_dir(self) -> Path:
        return self.path / "bin"

    @property
    def marker(self) -> Path:
        return self.path / ".requirements"


AZURE_STORAGE = BaselineEnv(
    "azure-storage-0.4.4",
    ("snakemake>=9,<10", "snakemake-storage-plugin-azure==0.4.4"),
)

# The baseline executor runs with our storage plugin, so the comparison isolates the
# executor: every pod stages through the same storage code on both sides.
KUBERNETES_EXECUTOR = BaselineEnv(
    "kubernetes-executor-0.5.1",
    (
        "snakemake>=9,<10",
        "snakemake-executor-plugin-kubernetes==0.5.1",
        "kubernetes<33",
        "--editable",
        str(REPO_ROOT / "storage-plugin"),
    ),
)


def ensure(env: BaselineEnv, log=print) -> BaselineEnv:
    """Create ``env`` if it is missing or was built from other requirements."""
    wanted = "\n".join(env.requirements)
    if env.python.exists() and env.marker.exists() and env.marker.read_text() == wanted:
        return env
    log(f"building baseline venv {env.path} ({', '.join(env.requirements)})")
    VENV_ROOT.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(env.path, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(env.path)], check=True)
    pip = [str(env.python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, *env.requirements], check=True)
    env.marker.write_text(wanted)
    return env


if __name__ == "__main__":
    for baseline in (AZURE_STORAGE, KUBERNETES_EXECUTOR):
        ensure(baseline)
        print(baseline.path)
