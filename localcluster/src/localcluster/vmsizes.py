"""A small catalogue of real Azure VM sizes and what AKS leaves allocatable on them.

Capacities are the published sizes (vCPUs, GiB of memory, GPUs). Allocatable follows AKS's
node resource reservations for Kubernetes 1.29 and later
(https://learn.microsoft.com/azure/aks/node-resource-reservations):

- kube-reserved CPU: 60m for the first core, 40m for the second, 20m for each of cores 3-4
  and 10m for every core above 4 (the documented table: 1 core 60m, 2: 100m, 4: 140m,
  8: 180m, 16: 260m, 32: 420m, 64: 740m);
- kube-reserved memory: the smaller of 20 MiB per pod the node allows + 50 MiB, and 25% of
  the VM's memory;
- the kubelet's eviction threshold ``memory.available<100Mi``, also taken from allocatable.
"""

from __future__ import annotations

from dataclasses import dataclass

EVICTION_THRESHOLD_MIB = 100


@dataclass(frozen=True)
class VmSize:
    name: str
    vcpus: int
    memory_gib: int
    gpus: int = 0

    def capacity(self) -> dict[str, str]:
        capacity = {"cpu": str(self.vcpus), "memory": f"{self.memory_gib}Gi"}
        if self.gpus:
            capacity["nvidia.com/gpu"] = str(self.gpus)
        return capacity

    def allocatable(self, max_pods: int) -> dict[str, str]:
        cpu_millis = self.vcpus * 1000 - kube_reserved_cpu_millis(self.vcpus)
        memory_mib = (
            self.memory_gib * 1024
            - kube_reserved_memory_mib(self.memory_gib * 1024, max_pods)
            - EVICTION_THRESHOLD_MIB
        )
        allocatable = {"cpu": f"{cpu_millis}m", "memory": f"{memory_mib}Mi"}
        if self.gpus:
            allocatable["nvidia.com/gpu"] = str(self.gpus)
        return allocatable


def kube_reserved_cpu_millis(vcpus: int) -> int:
    reserved = 0
    for core in range(1, vcpus + 1):
        reserved += 60 if core == 1 else 40 if core == 2 else 20 if core <= 4 else 10
    return reserved


def kube_reserved_memory_mib(memory_mib: int, max_pods: int) -> int:
    return min(20 * max_pods + 50, memory_mib // 4)


CATALOGUE: dict[str, VmSize] = {
    size.name: size
    for size in (
        VmSize("Standard_B2s", 2, 4),
        VmSize("Standard_D2s_v3", 2, 8),
        VmSize("Standard_D4s_v3", 4, 16),
        VmSize("Standard_D3_v2", 4, 14),
        VmSize("Standard_D4s_v5", 4, 16),
        VmSize("Standard_D8s_v5", 8, 32),
        VmSize("Standard_D16s_v5", 16, 64),
        VmSize("Standard_E8s_v5", 8, 64),
        VmSize("Standard_NC6s_v3", 6, 112, gpus=1),
    )
}


def vm_size(name: str) -> VmSize:
    try:
        return CATALOGUE[name]
    except KeyError:
        known = ", ".join(sorted(CATALOGUE))
        raise ValueError(
            f"VM size {name!r} is not in the local cluster's catalogue ({known})"
        ) from None
