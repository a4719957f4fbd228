"""Description of the simulated nodes the node agent registers and schedules pods onto."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Taint:
    key: str
    effect: str  # NoSchedule | PreferNoSchedule | NoExecute
    value: str = ""


@dataclass(frozen=True)
class NodeSpec:
    """One simulated node. Quantities use Kubernetes notation ("4", "500m", "16Gi")."""

    name: str
    cpu: str = "2"
    memory: str = "8Gi"
    ephemeral_storage: str = "50Gi"
    gpus: int = 0
    # The kubelet's --max-pods; 250 is AKS's maximum with Azure CNI and lets load tests run wide.
    max_pods: int = 250
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    # What the kubelet reserves is missing from allocatable; empty means all of the capacity.
    allocatable: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeSpec:
        known = {
            "name",
            "cpu",
            "memory",
            "ephemeral_storage",
            "gpus",
            "max_pods",
            "labels",
            "taints",
            "allocatable",
        }
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"node {data.get('name')!r}: unknown keys {sorted(unknown)}")
        if not data.get("name"):
            raise ValueError("node entry without a 'name'")
        taints = tuple(
            Taint(key=t["key"], effect=t["effect"], value=t.get("value", ""))
            for t in data.get("taints", [])
        )
        return cls(
            name=str(data["name"]),
            cpu=str(data.get("cpu", "2")),
            memory=str(data.get("memory", "8Gi")),
            ephemeral_storage=str(data.get("ephemeral_storage", "50Gi")),
            gpus=int(data.get("gpus", 0)),
            max_pods=int(data.get("max_pods", 250)),
            labels={str(k): str(v) for k, v in data.get("labels", {}).items()},
            taints=taints,
            allocatable={str(k): str(v) for k, v in data.get("allocatable", {}).items()},
        )


DEFAULT_NODES: tuple[NodeSpec, ...] = (
    NodeSpec(name="node-1", labels={"kubernetes.azure.com/agentpool": "system"}),
    NodeSpec(name="node-2", labels={"kubernetes.azure.com/agentpool": "system"}),
)


def load_nodes(path: Path) -> list[NodeSpec]:
    """Read a JSON list of node dicts (keys as NodeSpec fields)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"--nodes {path}: cannot read node list: {error}") from error
    if not isinstance(data, list):
        raise ValueError(f"--nodes {path}: expected a JSON list of nodes")
    return [NodeSpec.from_dict(entry) for entry in data]
