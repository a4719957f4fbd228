"""Run a small workflow (the e2e tests' ``workflows/``) on the local cluster with Azurite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from localcluster.azurite import Azurite


def run_snakemake(
    workdir: Path, container: str, azurite: Azurite, kubeconfig: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable, "-m", "snakemake",
        "--executor", "kubernetes",
        "--default-storage-provider", "azblob",
        "--default-storage-prefix", f"az://{container}",
        "--jobs", "2",
        "--container-image", "snakemake-k8s-azblob:latest",
        "--seconds-between-status-checks", "2",
        *extra,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAKEMAKE_STORAGE_AZBLOB_")}
    env |= {
        "KUBECONFIG": str(kubeconfig),
        "SNAKEMAKE_STORAGE_AZBLOB_ENDPOINT_URL": azurite.blob_endpoint,
        "SNAKEMAKE_STORAGE_AZBLOB_ACCOUNT_KEY": azurite.account_key,
    }
    return subprocess.run(
        command, cwd=workdir, env=env, capture_output=True, text=True, timeout=600
    )
