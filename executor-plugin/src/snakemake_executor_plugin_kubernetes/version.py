"""Which executor plugin this is: two distributions install this same module name."""

import importlib.metadata
from pathlib import Path

DISTRIBUTION = "snakemake-executor-plugin-kubernetes"
# Upstream releases (0.x) are the other plugin of this name; ours starts at 1.0.0.
PROJECT = "snakemake-k8s-azblob"


def plugin_version() -> str:
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed as a distribution)"


def plugin_banner() -> str:
    return (
        f"Kubernetes executor: {DISTRIBUTION} {plugin_version()} ({PROJECT}), "
        f"loaded from {Path(__file__).parent}."
    )
