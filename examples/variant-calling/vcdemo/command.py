"""The tutorial's run command, adapted to these plugins, and the environment it needs."""

from __future__ import annotations

import sys

# The tutorial passes the storage account and its credential to the pods with --envvars.
TUTORIAL_ENVVARS = ("AZ_BLOB_ACCOUNT_URL", "AZ_BLOB_CREDENTIAL")
BIO_IMAGE = "snakemake-k8s-azblob-bio:latest"


def snakemake_command(
    container: str,
    jobs: int = 3,
    image: str = BIO_IMAGE,
    extra: list[str] | None = None,
    python: str = sys.executable,
) -> list[str]:
    return [
        python,
        "-m",
        "snakemake",
        "--executor",
        "kubernetes",
        "--default-storage-provider",
        "azblob",
        "--default-storage-prefix",
        f"az://{container}",
        "--envvars",
        *TUTORIAL_ENVVARS,
        "--jobs",
        str(jobs),
        "--container-image",
        image,
        *(extra or []),
    ]


def snakemake_environment(
    base: dict[str, str], kubeconfig: str, endpoint_url: str, account_key: str
) -> dict[str, str]:
    """base plus the tutorial's variables; the plugin's own SNAKEMAKE_STORAGE_AZBLOB_* are
    dropped so that the run really goes through the tutorial's names."""
    env = {k: v for k, v in base.items() if not k.startswith("SNAKEMAKE_STORAGE_AZBLOB_")}
    env["KUBECONFIG"] = kubeconfig
    env["AZ_BLOB_ACCOUNT_URL"] = endpoint_url
    env["AZ_BLOB_CREDENTIAL"] = account_key
    return env
