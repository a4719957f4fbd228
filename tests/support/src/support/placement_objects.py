"""Pending pods, autoscaler events and AKS nodes as a cluster reports them, for the executor's
scheduling-diagnosis tests (wording of kubernetes/autoscaler
processors/status/eventing_scale_up_processor.go)."""

from __future__ import annotations

from typing import Any

GROUP = "aks-nodepool1-12345678-vmss"
NAME = "job-a-xyz"


def unschedulable_pod(requests: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    container = {"name": "snakemake", "resources": {"requests": requests or {"cpu": "30400m"}}}
    return {
        "metadata": {"name": NAME, "labels": {"job-name": "job-a"}},
        "spec": {"containers": [container], **spec},
        "status": {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had "
                    "untolerated taint {CriticalAddonsOnly: true}. preemption: 0/2 nodes are "
                    "available: 1 No preemption victims found for incoming pod, 1 Preemption "
                    "is not helpful for scheduling.",
                }
            ],
        },
    }


def event(reason: str, message: str, stamp: str = "2026-01-01T00:00:01Z") -> dict[str, Any]:
    return {"reason": reason, "message": message, "lastTimestamp": stamp, "metadata": {}}


def aks_node(name: str, pool: str, size: str, cpu: str, **allocatable: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.azure.com/agentpool": pool,
                "node.kubernetes.io/instance-type": size,
            },
        },
        "spec": {},
        "status": {"allocatable": {"cpu": cpu, "memory": "10Gi", "pods": "110", **allocatable}},
    }


D3 = aks_node(f"{GROUP}000000", "nodepool1", "Standard_D3_v2", "3860m")
SYSTEM = aks_node("aks-system-87654321-vmss000000", "system", "Standard_D2s_v3", "1900m")
SYSTEM["spec"]["taints"] = [{"key": "CriticalAddonsOnly", "value": "true", "effect": "NoSchedule"}]
