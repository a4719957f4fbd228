"""Helpers for the node agent's tests: a cluster with a known node set, pods, waits."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from localcluster.launcher import RunningCluster, start_cluster
from localcluster.nodeagent.images import ImageCatalog
from localcluster.testing import wait_until

IMAGE = "snakemake/snakemake:v9.27.1"
LEAK_MARKER = "NODEAGENT_TEST_HOST_ONLY"
SPOT_TAINT = {
    "key": "kubernetes.azure.com/scalesetpriority",
    "value": "spot",
    "effect": "NoSchedule",
}
GPU_TAINT = {"key": "sku", "value": "gpu", "effect": "NoSchedule"}

NODES: list[dict[str, Any]] = [
    {"name": "general-a", "cpu": "2", "memory": "4Gi", "labels": {"pool": "general", "zone": "a"}},
    {"name": "general-b", "cpu": "2", "memory": "4Gi", "labels": {"pool": "general", "zone": "b"}},
    {
        "name": "spot-1",
        "cpu": "4",
        "memory": "8Gi",
        "labels": {"pool": "spot", "kubernetes.azure.com/scalesetpriority": "spot"},
        "taints": [SPOT_TAINT],
    },
    {
        "name": "gpu-1",
        "cpu": "4",
        "memory": "16Gi",
        "gpus": 1,
        "labels": {"pool": "gpu", "generation": "5"},
        "taints": [GPU_TAINT],
    },
]


def node_cluster_fixture() -> Callable[..., Iterator[RunningCluster]]:
    """A module-scoped fixture: a local cluster with NODES, whatever KUBECONFIG says."""

    @pytest.fixture(scope="module")
    def node_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCluster]:
        # Once per session (cached); not part of any pod's wait.
        ImageCatalog.from_environment().build("base")
        env = {**os.environ, LEAK_MARKER: "must-not-reach-pods"}
        cluster = start_cluster(tmp_path_factory.mktemp("nodecluster"), nodes=NODES, env=env)
        try:
            yield cluster
        finally:
            cluster.stop()

    return node_cluster


def core_api(cluster: RunningCluster) -> client.CoreV1Api:
    return client.CoreV1Api(cluster.api_client())


def new_namespace(core: client.CoreV1Api) -> str:
    name = f"n-{uuid.uuid4().hex[:10]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    return name


def shell_container(script: str, name: str = "main", **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": IMAGE, "command": ["sh", "-c", script], **extra}


def pod(name: str, *containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "containers": list(containers), **spec},
    }


def read_pod(core: client.CoreV1Api, namespace: str, name: str) -> dict[str, Any]:
    """The pod as plain JSON (camelCase keys, as on the wire)."""
    return core.api_client.sanitize_for_serialization(core.read_namespaced_pod(name, namespace))


def wait_pod(
    core: client.CoreV1Api,
    namespace: str,
    name: str,
    check: Callable[[dict[str, Any]], bool],
    what: str,
    timeout: float = 60.0,
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        current = read_pod(core, namespace, name)
        return current if check(current) else None

    return wait_until(probe, f"pod {namespace}/{name}: {what}", timeout=timeout, interval=0.1)


def phase_is(*phases: str) -> Callable[[dict[str, Any]], bool]:
    return lambda p: p.get("status", {}).get("phase") in phases


def waiting_reason(pod_json: dict[str, Any], container: str = "main") -> str | None:
    for status in pod_json.get("status", {}).get("containerStatuses") or []:
        if status["name"] == container:
            return (status["state"].get("waiting") or {}).get("reason")
    return None


def container_state(pod_json: dict[str, Any], container: str = "main") -> dict[str, Any]:
    for status in pod_json["status"]["containerStatuses"]:
        if status["name"] == container:
            return status["state"]
    raise AssertionError(f"no status for container {container}: {pod_json['status']}")


def condition(pod_json: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for item in pod_json.get("status", {}).get("conditions") or []:
        if item["type"] == kind:
            return item
    return None


def events_of(core: client.CoreV1Api, namespace: str, name: str) -> list[tuple[str, str, str, str]]:
    """(type, reason, component, message) of the pod's events, oldest first."""
    items = core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name}"
    ).items
    items.sort(key=lambda e: (e.first_timestamp or e.event_time, e.metadata.resource_version))
    return [(e.type, e.reason, e.source.component, e.message) for e in items]


def logs(core: client.CoreV1Api, namespace: str, name: str) -> str:
    return core.read_namespaced_pod_log(name, namespace)


def process_alive(pid: int) -> bool:
    """Running (a zombie awaiting its reaper counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def wait_gone(pid: int, timeout: float = 20.0) -> None:
    wait_until(lambda: not process_alive(pid), f"process {pid} to end", timeout=timeout)
