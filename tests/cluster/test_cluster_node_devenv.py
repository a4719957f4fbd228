"""`nox -s up` / `nox -s down` (the `localcluster up|down` command): start, reuse, env.sh, stop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient
from kubernetes import client, config

from localcluster.nodeagent import testkit

# `localcluster up` builds an image and starts a cluster and Azurite of their own.
pytestmark = [pytest.mark.cluster, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def _devenv(*args: str, dev_dir: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("KUBECONFIG", None)
    env.pop("LOCALCLUSTER_PLUGIN_SOURCES", None)  # the command line names them
    # The console script the localcluster package installs beside this interpreter.
    command = [str(Path(sys.executable).parent / "localcluster"), *args]
    command += ["--root", str(REPO), "--dev-dir", str(dev_dir), "--images", "base"]
    for plugin in ("storage-plugin", "executor-plugin"):
        command += ["--plugin-source", str(REPO / plugin)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


def _sourced_env(env_sh: Path) -> dict[str, str]:
    script = f". {env_sh} && env -0"
    output = subprocess.run(
        ["sh", "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    ).stdout
    return dict(item.split("=", 1) for item in output.split("\0") if "=" in item)


def test_up_writes_a_usable_env_reuses_running_services_and_down_removes_them(
    tmp_path: Path,
) -> None:
    dev_dir = tmp_path / "dev"
    first = _devenv("up", dev_dir=dev_dir)
    assert first.returncode == 0, first.stderr + first.stdout
    state = json.loads((dev_dir / "state.json").read_text())
    try:
        assert "started Azurite" in first.stdout and "started the local cluster" in first.stdout
        env = _sourced_env(dev_dir / "env.sh")
        assert env["PATH"].split(":")[0] == str(dev_dir / "bin")
        # `snakemake` from PATH is the image's, with both plugins.
        plugins = subprocess.run(
            ["snakemake", "--help"], capture_output=True, text=True, env=env, check=True
        )
        assert "--kubernetes-namespace" in plugins.stdout
        assert "--storage-azblob-endpoint-url" in plugins.stdout

        admin = config.new_client_from_config(config_file=env["LOCALCLUSTER_ADMIN_KUBECONFIG"])
        admin_core = client.CoreV1Api(admin)
        pools = {
            n.metadata.labels["kubernetes.azure.com/agentpool"]: n.metadata.labels[
                "node.kubernetes.io/instance-type"
            ]
            for n in admin_core.list_node().items
        }
        admin_nodes = {n.metadata.name for n in admin_core.list_node().items}
        # The seed tutorial's cluster: one node of nodepool1 (min 1, max 3) and a system pool.
        assert pools == {"system": "Standard_D2s_v3", "nodepool1": "Standard_D3_v2"}
        status = admin_core.read_namespaced_config_map("cluster-autoscaler-status", "kube-system")
        assert "maxSize: 3" in status.data["status"]
        admin.close()
        # KUBECONFIG is the executor's least-privilege account: its namespace, plus the
        # optional diagnosis reads (nodes, the autoscaler's status), nothing more.
        executor = config.new_client_from_config(config_file=env["KUBECONFIG"])
        core = client.CoreV1Api(executor)
        assert core.list_namespaced_pod("default").kind == "PodList"
        assert core.list_node().items
        assert core.read_namespaced_config_map("cluster-autoscaler-status", "kube-system").data
        refusals = []
        for forbidden in (
            lambda: core.list_namespaced_pod("kube-system"),
            lambda: core.list_namespaced_config_map("kube-system"),
            lambda: core.read_node(next(iter(admin_nodes))),
        ):
            with pytest.raises(client.ApiException) as refused:
                forbidden()
            refusals.append(refused.value.status)
        executor.close()
        assert refusals == [403, 403, 403]
        endpoint = env["SNAKEMAKE_STORAGE_AZBLOB_ENDPOINT_URL"]
        assert endpoint.startswith("http://127.0.0.1:")
        blob = BlobServiceClient(
            endpoint,
            credential={
                "account_name": "devstoreaccount1",
                "account_key": env["SNAKEMAKE_STORAGE_AZBLOB_ACCOUNT_KEY"],
            },
        )
        blob.create_container("devenv-probe")
        assert [c.name for c in blob.list_containers()] == ["devenv-probe"]

        again = _devenv("up", dev_dir=dev_dir)
        assert again.returncode == 0, again.stderr
        assert "reusing Azurite" in again.stdout and "reusing the local cluster" in again.stdout
        assert json.loads((dev_dir / "state.json").read_text()) == state
    finally:
        stopped = _devenv("down", dev_dir=dev_dir)
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped local cluster, Azurite" in stopped.stdout
    assert not dev_dir.exists()
    for service in ("azurite", "cluster"):
        testkit.wait_gone(state[service]["pid"])
    idle = _devenv("down", dev_dir=dev_dir)
    assert idle.returncode == 0 and "nothing (not running)" in idle.stdout
