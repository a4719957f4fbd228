"""Both plugins as a user and the plugin catalog see them: version, metadata, and every
setting with its help text in `snakemake --help`."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from snakemake_executor_plugin_kubernetes import ExecutorSettings
from snakemake_storage_plugin_azblob import StorageProviderSettings

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "snakemake-executor-plugin-kubernetes": ("--kubernetes-", ExecutorSettings),
    "snakemake-storage-plugin-azblob": ("--storage-azblob-", StorageProviderSettings),
}


@pytest.fixture(scope="module")
def snakemake_help() -> str:
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout


@pytest.mark.parametrize("distribution", sorted(PACKAGES))
def test_metadata_fits_the_plugin_catalog(distribution: str):
    meta = importlib.metadata.metadata(distribution)
    # The upstream executor is 0.5.1 on PyPI: ours succeeds it.
    assert Version(meta["Version"]) >= Version("1.0.0")
    assert len(meta["Summary"]) > 20
    assert meta["License-Expression"] == "MIT"
    classifiers = meta.get_all("Classifier") or []
    assert "Programming Language :: Python :: 3.11" in classifiers
    assert any(c.startswith("Development Status ::") for c in classifiers)
    urls = dict(url.split(", ", 1) for url in meta.get_all("Project-URL") or [])
    assert {"Homepage", "Documentation", "Source", "Issues"} <= set(urls)
    assert all(url.startswith("https://") for url in urls.values())
    requirements = {Requirement(r).name: Requirement(r) for r in meta.get_all("Requires-Dist")}
    snakemake = requirements["snakemake"]
    assert snakemake.specifier.contains("9.0") and not snakemake.specifier.contains("8.30")


@pytest.mark.parametrize("distribution", sorted(PACKAGES))
def test_help_shows_every_setting_with_its_help_text(distribution: str, snakemake_help: str):
    prefix, settings_cls = PACKAGES[distribution]
    for field in dataclasses.fields(settings_cls):
        flag = prefix + field.name.replace("_", "-")
        # The flag's own line in the options list, then its help text (same or next line).
        match = re.search(rf"^  {re.escape(flag)}\b[^\n]*\n?\s*(\S[^\n]*)", snakemake_help, re.M)
        assert match, f"{flag} is not listed in snakemake --help"
        first_words = field.metadata["help"].split()[:3]
        block = snakemake_help[match.start() : match.start() + 600]
        assert " ".join(first_words) in " ".join(block.split()), (
            f"{flag}: its help text is not shown"
        )


def test_documented_one_liner_says_this_plugin_is_loaded():
    """docs/executor/intro.md's check of which plugin Snakemake loads, run as written."""
    intro = (ROOT / "docs" / "executor" / "intro.md").read_text()
    (line,) = [x for x in intro.splitlines() if x.startswith('python -c "import importlib')]
    code = shlex.split(line)[2]
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    version, module, path = result.stdout.split()
    assert Version(version) >= Version("1.0.0")
    assert module == "snakemake_executor_plugin_kubernetes.executor"
    assert path.endswith("snakemake_executor_plugin_kubernetes/__init__.py")
