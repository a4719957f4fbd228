"""File locations shared by the API server and the node agent inside a cluster's state dir."""

from __future__ import annotations

from pathlib import Path


def log_path(state_dir: Path, namespace: str, pod: str, container: str) -> Path:
    """Where the node agent writes a container's combined stdout/stderr."""
    return Path(state_dir) / "pods" / namespace / pod / f"{container}.log"


def kubeconfig_path(state_dir: Path) -> Path:
    return Path(state_dir) / "kubeconfig"


def executor_kubeconfig_path(state_dir: Path) -> Path:
    """A kubeconfig for the executor's least-privilege ServiceAccount (devenv writes it)."""
    return Path(state_dir) / "executor.kubeconfig"


def cluster_info_path(state_dir: Path) -> Path:
    return Path(state_dir) / "cluster.json"
