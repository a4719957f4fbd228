"""AKS node pools: declared like `az aks nodepool add`, turned into nodes that look like AKS's.

A pool has a name, a VM size from the catalogue (``localcluster.vmsizes``), a min and max
count for the cluster autoscaler and optionally spot priority. Its nodes are named
``aks-<pool>-<8 digits>-vmss<6 base-36 digits>`` as AKS names VM scale set instances, and carry
AKS's labels (``kubernetes.azure.com/agentpool``, ``node.kubernetes.io/instance-type``,
``topology.kubernetes.io/zone``, ...). Spot pools add ``kubernetes.azure.com/scalesetpriority=
spot`` as a label and as a NoSchedule taint, as AKS does.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localcluster.nodes import NodeSpec, Taint
from localcluster.vmsizes import vm_size

SPOT_KEY = "kubernetes.azure.com/scalesetpriority"
REGION = "westeurope"
# AKS's default maximum of pods per node with kubenet and Azure CNI Overlay is 250; with
# classic Azure CNI it is 30. 110 is the kubelet's own default and what `az aks create` gives
# kubenet clusters created before Overlay.
DEFAULT_MAX_PODS = 110
# AKS: Linux pool names are 1-12 lowercase alphanumerics, starting with a letter.
_POOL_NAME = re.compile(r"^[a-z][a-z0-9]{0,11}$")


@dataclass(frozen=True)
class NodePool:
    name: str
    vm_size: str
    min_count: int
    max_count: int
    spot: bool = False
    mode: str = "User"  # System | User
    zones: tuple[str, ...] = ("1", "2", "3")
    max_pods: int = DEFAULT_MAX_PODS
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    # `--enable-cluster-autoscaler`: without it the pool is no node group of the autoscaler
    # and keeps its fixed count (min_count, which must equal max_count).
    autoscale: bool = True

    def __post_init__(self) -> None:
        if not _POOL_NAME.match(self.name):
            raise ValueError(
                f"node pool {self.name!r}: a Linux pool name is 1-12 lowercase letters and "
                "digits, starting with a letter"
            )
        vm_size(self.vm_size)  # raises for an unknown size
        if not 0 <= self.min_count <= self.max_count or self.max_count < 1:
            raise ValueError(
                f"node pool {self.name}: need 0 <= min_count ({self.min_count}) <= "
                f"max_count ({self.max_count}) and max_count >= 1"
            )
        if not self.autoscale and self.min_count != self.max_count:
            raise ValueError(
                f"node pool {self.name}: without autoscaling a pool has a fixed node count; "
                f"set min_count = max_count (now {self.min_count} and {self.max_count})"
            )
        if self.mode not in ("System", "User"):
            raise ValueError(f"node pool {self.name}: mode {self.mode!r} is not System or User")
        if self.mode == "System" and self.spot:
            raise ValueError(f"node pool {self.name}: a System pool cannot be a spot pool")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodePool:
        known = {
            "name",
            "vm_size",
            "min_count",
            "max_count",
            "spot",
            "mode",
            "zones",
            "max_pods",
            "labels",
            "taints",
            "autoscale",
        }
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"node pool {data.get('name')!r}: unknown keys {sorted(unknown)}")
        missing = {"name", "vm_size", "min_count", "max_count"} - set(data)
        if missing:
            raise ValueError(f"node pool {data.get('name')!r}: missing keys {sorted(missing)}")
        return cls(
            name=str(data["name"]),
            vm_size=str(data["vm_size"]),
            min_count=int(data["min_count"]),
            max_count=int(data["max_count"]),
            spot=bool(data.get("spot", False)),
            mode=str(data.get("mode", "User")),
            zones=tuple(str(z) for z in data.get("zones", ("1", "2", "3"))),
            max_pods=int(data.get("max_pods", DEFAULT_MAX_PODS)),
            labels={str(k): str(v) for k, v in data.get("labels", {}).items()},
            taints=tuple(
                Taint(key=t["key"], effect=t["effect"], value=t.get("value", ""))
                for t in data.get("taints", [])
            ),
            autoscale=bool(data.get("autoscale", True)),
        )

    @property
    def scale_set(self) -> str:
        """The VM scale set's name, which is also the autoscaler's node group id on AKS."""
        digits = zlib.crc32(self.name.encode()) % 100_000_000
        return f"aks-{self.name}-{digits:08d}-vmss"

    def node_name(self, instance: int) -> str:
        return f"{self.scale_set}{_base36(instance):0>6}"

    def node_spec(self, instance: int) -> NodeSpec:
        """The node of scale set instance number ``instance`` (never reused within a pool)."""
        size = vm_size(self.vm_size)
        capacity = size.capacity()
        labels = {
            "kubernetes.azure.com/agentpool": self.name,
            "agentpool": self.name,
            "kubernetes.azure.com/mode": self.mode.lower(),
            "kubernetes.azure.com/role": "agent",
            "kubernetes.azure.com/os-sku": "Ubuntu",
            "node.kubernetes.io/instance-type": size.name,
            "beta.kubernetes.io/instance-type": size.name,
            "topology.kubernetes.io/region": REGION,
            "topology.kubernetes.io/zone": f"{REGION}-{self.zones[instance % len(self.zones)]}",
            "kubernetes.io/os": "linux",
        }
        taints = list(self.taints)
        if size.gpus:
            labels["kubernetes.azure.com/accelerator"] = "nvidia"
        if self.spot:
            labels[SPOT_KEY] = "spot"
            taints.append(Taint(key=SPOT_KEY, value="spot", effect="NoSchedule"))
        labels.update(self.labels)
        return NodeSpec(
            name=self.node_name(instance),
            cpu=capacity["cpu"],
            memory=capacity["memory"],
            ephemeral_storage="128Gi",  # AKS's default OS disk
            gpus=size.gpus,
            max_pods=self.max_pods,
            labels=labels,
            taints=tuple(taints),
            allocatable=size.allocatable(self.max_pods),
        )


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
        if number == 0:
            return text


# `nox -s up`: the seed tutorial's cluster. A small system pool of one node without
# autoscaling, tainted CriticalAddonsOnly as AKS recommends for a dedicated system pool, and
# one autoscaled user pool `nodepool1`.
DEV_POOLS: tuple[NodePool, ...] = (
    NodePool(
        name="system",
        vm_size="Standard_D2s_v3",
        min_count=1,
        max_count=1,
        mode="System",
        taints=(Taint(key="CriticalAddonsOnly", value="true", effect="NoSchedule"),),
        autoscale=False,
    ),
    NodePool(name="nodepool1", vm_size="Standard_D3_v2", min_count=1, max_count=3),
)


def load_pools(path: Path) -> list[NodePool]:
    """Read a JSON list of node pools (keys as NodePool fields)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"--node-pools {path}: cannot read the pool list: {error}") from error
    if not isinstance(data, list):
        raise ValueError(f"--node-pools {path}: expected a JSON list of node pools")
    pools = [NodePool.from_dict(entry) for entry in data]
    names = [pool.name for pool in pools]
    if len(set(names)) != len(names):
        raise ValueError(f"--node-pools {path}: pool names repeat: {names}")
    return pools


def pool_to_dict(pool: NodePool) -> dict[str, Any]:
    return {
        "name": pool.name,
        "vm_size": pool.vm_size,
        "min_count": pool.min_count,
        "max_count": pool.max_count,
        "spot": pool.spot,
        "mode": pool.mode,
        "zones": list(pool.zones),
        "max_pods": pool.max_pods,
        "labels": dict(pool.labels),
        "taints": [{"key": t.key, "value": t.value, "effect": t.effect} for t in pool.taints],
        "autoscale": pool.autoscale,
    }
