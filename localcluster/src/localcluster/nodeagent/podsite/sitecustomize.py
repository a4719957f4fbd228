"""Loaded by every Python process in a local-cluster pod: report the node's CPU count.

A container on a real node sees the node's CPUs (a CPU limit is a CFS quota, not fewer
CPUs), so `snakemake --cores all` in a pod on a 4-vCPU node has 4 cores and runs a
`threads: 3` rule with 3 threads. Local-cluster pods run on the host, which may have fewer
CPUs than the node they are bound to. The kubelet sets LOCALCLUSTER_NODE_CPUS to the node's
capacity, and each image lists this folder in a .pth file; this module makes os.cpu_count(),
os.sched_getaffinity() (and so multiprocessing.cpu_count()) and Snakemake's
available_cpu_count(), which also counts the Cpus_allowed mask in /proc/self/status, report
it. Only the count changes: the processes still share the host's CPUs.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
from types import ModuleType
from typing import Any


def _node_cpus() -> int | None:
    try:
        count = int(os.environ.get("LOCALCLUSTER_NODE_CPUS", ""))
    except ValueError:
        return None
    return count if count > 0 else None


class _PatchAfterImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Lets snakemake.utils load normally, then replaces available_cpu_count in it."""

    def __init__(self, module: str, count: int) -> None:
        self.module = module
        self.count = count
        self._inner: importlib.abc.Loader | None = None

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != self.module:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return None
        self._inner = spec.loader
        spec.loader = self
        return spec

    def create_module(self, spec: Any) -> ModuleType | None:
        assert self._inner is not None
        return self._inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        assert self._inner is not None
        self._inner.exec_module(module)
        count = self.count
        module.available_cpu_count = lambda: count  # type: ignore[attr-defined]


def _install(count: int) -> None:
    os.cpu_count = lambda: count
    if hasattr(os, "process_cpu_count"):
        os.process_cpu_count = lambda: count
    if hasattr(os, "sched_getaffinity"):
        os.sched_getaffinity = lambda pid: set(range(count))
    sys.meta_path.insert(0, _PatchAfterImport("snakemake.utils", count))


_count = _node_cpus()
if _count is not None:
    _install(_count)
