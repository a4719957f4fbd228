"""core/v1 Node objects for the simulated nodes."""

from __future__ import annotations

import platform
from datetime import UTC, datetime
from typing import Any

from localcluster.nodes import NodeSpec

KUBELET_VERSION = "v1.31.0"


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _architecture() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def capacity_of(spec: NodeSpec) -> dict[str, str]:
    capacity = {
        "cpu": spec.cpu,
        "memory": spec.memory,
        "ephemeral-storage": spec.ephemeral_storage,
        "pods": str(spec.max_pods),
    }
    if spec.gpus:
        capacity["nvidia.com/gpu"] = str(spec.gpus)
    return capacity


def ready_condition(ready: bool, message: str) -> dict[str, Any]:
    stamp = now_rfc3339()
    return {
        "type": "Ready",
        "status": "True" if ready else "Unknown",
        "reason": "KubeletReady" if ready else "NodeStatusUnknown",
        "message": message,
        "lastHeartbeatTime": stamp,
        "lastTransitionTime": stamp,
    }


def node_object(spec: NodeSpec) -> dict[str, Any]:
    labels = {
        "kubernetes.io/hostname": spec.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": _architecture(),
        "node.kubernetes.io/instance-type": "localcluster",
        **spec.labels,
    }
    node: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": spec.name, "labels": labels},
        "spec": {},
        "status": {
            "capacity": capacity_of(spec),
            "allocatable": {**capacity_of(spec), **spec.allocatable},
            "conditions": [ready_condition(True, "kubelet is posting ready status")],
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": spec.name},
            ],
            "nodeInfo": {
                "architecture": _architecture(),
                "operatingSystem": "linux",
                "osImage": "localcluster (processes on the host)",
                "kernelVersion": platform.release(),
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": KUBELET_VERSION,
                "containerRuntimeVersion": "localcluster://1",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        },
    }
    if spec.taints:
        node["spec"]["taints"] = [
            {"key": taint.key, "value": taint.value, "effect": taint.effect}
            if taint.value
            else {"key": taint.key, "effect": taint.effect}
            for taint in spec.taints
        ]
    return node
