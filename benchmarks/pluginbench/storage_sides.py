"""How to drive each storage implementation under test against one Azurite account.

A side names the Python to run (ours: the current venv; the azure plugin: its own
baseline venv), the plugin's settings for a direct StorageProvider, the Snakemake
command-line flags, and the environment variables it needs. Every side points at an
explicit 127.0.0.1 endpoint with an explicit key, so none builds an identity credential.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from pluginbench.venvs import AZURE_STORAGE

# Variables that could steer a plugin to another account or credential.
_FOREIGN_PREFIXES = ("SNAKEMAKE_STORAGE_", "AZ_BLOB_", "AZURE_", "AZURITE_")


@dataclass(frozen=True)
class StorageSide:
    label: str
    python: Path
    plugin: str
    settings: dict[str, object]
    cli: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)

    def environment(self) -> dict[str, str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN_PREFIXES)}
        return clean | self.env


def ours(account_url: str, account_key: str) -> StorageSide:
    return StorageSide(
        label="ours (azblob)",
        python=Path(sys.executable),
        plugin="azblob",
        settings={"endpoint_url": account_url, "account_key": account_key},
        cli=("--storage-azblob-endpoint-url", account_url),
        env={"SNAKEMAKE_STORAGE_AZBLOB_ACCOUNT_KEY": account_key},
    )


def azure_plugin(account_url: str, account_name: str, account_key: str) -> StorageSide:
    """snakemake-storage-plugin-azure 0.4.4: it takes the account name as its only
    setting and, for emulators, a connection string from AZURITE_CONNECTION_STRING
    (without it, it would chain Azure CLI and managed identity credentials)."""
    connection_string = (
        f"DefaultEndpointsProtocol=http;AccountName={account_name};"
        f"AccountKey={account_key};BlobEndpoint={account_url};"
    )
    return StorageSide(
        label="azure 0.4.4",
        python=AZURE_STORAGE.python,
        plugin="azure",
        settings={"account_name": account_name},
        cli=("--storage-azure-account-name", account_name),
        env={"AZURITE_CONNECTION_STRING": connection_string},
    )


def our_plugin_problem() -> str | None:
    """Why our storage plugin cannot be measured yet, or None when it can."""
    try:
        import snakemake_storage_plugin_azblob as plugin
    except ImportError as error:
        return f"our storage plugin does not import: {error}"
    if not hasattr(plugin, "StorageProvider") or not hasattr(plugin, "StorageProviderSettings"):
        return "our storage plugin has no StorageProvider/StorageProviderSettings yet"
    return None
