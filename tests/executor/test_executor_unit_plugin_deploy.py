"""Storage plugins in job pods (--kubernetes-auto-deploy-storage-plugins): the setting's
values, which plugins a run needs, and the pod's install-when-missing command run for real
with pip against a local wheel directory (no package index)."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from snakemake_interface_common.exceptions import WorkflowError

from snakemake_executor_plugin_kubernetes.plugin_deploy import (
    PluginDeployment,
    install_missing_command,
    parse_plugin_deployment,
    storage_plugin_modules,
)

FAKE = "snakemake_storage_plugin_zzfake"
LOG_MARK = "snakemake-executor-plugin-kubernetes: installing"


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        ("auto", PluginDeployment.AUTO),
        ("Always", PluginDeployment.ALWAYS),
        ("never", PluginDeployment.NEVER),
        # the on/off flag of earlier releases, as a profile or environment variable gives it
        ("true", PluginDeployment.ALWAYS),
        ("False", PluginDeployment.NEVER),
        (True, PluginDeployment.ALWAYS),
        (False, PluginDeployment.NEVER),
    ],
)
def test_setting_values(text, mode):
    assert parse_plugin_deployment(text) is mode


def test_bad_setting_value_names_the_setting():
    with pytest.raises(WorkflowError, match="--kubernetes-auto-deploy-storage-plugins"):
        parse_plugin_deployment("sometimes")


class AzblobProvider:
    pass


AzblobProvider.__module__ = "snakemake_storage_plugin_azblob.provider"


class HttpProvider:
    pass


HttpProvider.__module__ = "snakemake_storage_plugin_http"


def test_modules_are_the_default_provider_and_the_registered_ones():
    workflow = SimpleNamespace(
        storage_settings=SimpleNamespace(default_storage_provider="azblob"),
        storage_registry=SimpleNamespace(
            _storages={"azblob": AzblobProvider(), "http": HttpProvider(), "tagged": HttpProvider()}
        ),
    )
    assert storage_plugin_modules(workflow) == [
        "snakemake_storage_plugin_azblob",
        "snakemake_storage_plugin_http",
    ]


def test_no_storage_no_modules_no_command():
    workflow = SimpleNamespace(storage_settings=SimpleNamespace(shared_fs_usage=set()))
    assert storage_plugin_modules(workflow) == []
    assert install_missing_command([]) == ""


def test_only_plugin_modules_reach_the_command():
    with pytest.raises(ValueError):
        install_missing_command(["os; rm -rf /"])


def write_wheel(directory: Path, module: str, version: str = "0.1") -> Path:
    """A minimal pure-Python wheel of `module` (what PyPI would serve)."""
    dist = module.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": "MARK = 'installed by pip'\n",
        f"{info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: {version}\n"
        ),
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{name},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = "\n".join(record) + "\n"
    wheel = directory / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return wheel


def run_in_pod_workdir(command: str, workdir: Path, wheels: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(wheels),
        "PIP_CONFIG_FILE": os.devnull,
    }
    return subprocess.run(
        ["/bin/sh", "-c", command],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_plugins_in_the_image_are_not_installed(tmp_path):
    # The test environment is an image with our storage plugin.
    command = install_missing_command(["snakemake_storage_plugin_azblob"], sys.executable)
    done = run_in_pod_workdir(command, tmp_path, tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert not (tmp_path / ".snakemake").exists()


@pytest.mark.slow
def test_a_missing_plugin_is_installed_once_and_found_where_snakemake_looks(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    write_wheel(wheels, FAKE)
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    command = install_missing_command(["snakemake_storage_plugin_azblob", FAKE], sys.executable)
    done = run_in_pod_workdir(command, workdir, wheels)
    assert done.returncode == 0, done.stderr
    (line,) = [line for line in done.stderr.splitlines() if LOG_MARK in line]
    # Only the missing one, and why.
    assert "snakemake-storage-plugin-zzfake into .snakemake/pip-deployments" in line
    assert "azblob" not in line and "the image lacks them" in line
    assert (workdir / ".snakemake" / "pip-deployments" / FAKE / "__init__.py").is_file()

    # The pod's Snakemake appends that folder to sys.path (snakemake/__init__.py).
    probe = f"import snakemake, {FAKE} as m; print(m.MARK)"
    found = subprocess.run(
        [sys.executable, "-c", probe], cwd=workdir, capture_output=True, text=True, check=True
    )
    assert found.stdout.strip() == "installed by pip"

    # A second job in the same place: nothing to install.
    again = run_in_pod_workdir(command, workdir, wheels)
    assert (again.returncode, again.stderr) == (0, "")


@pytest.mark.slow
def test_a_failed_install_fails_the_command_with_the_reason(tmp_path):
    command = install_missing_command([FAKE], sys.executable)
    done = run_in_pod_workdir(command, tmp_path, tmp_path)
    assert done.returncode != 0
    assert LOG_MARK in done.stderr
    assert "No matching distribution found for snakemake-storage-plugin-zzfake" in done.stderr
