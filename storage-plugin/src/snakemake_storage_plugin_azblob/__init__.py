"""Snakemake storage plugin for Azure Blob Storage (`--default-storage-provider azblob`).

Queries: ``az://CONTAINER/PATH`` (account from the settings),
``https://ACCOUNT.blob.core.windows.net/CONTAINER/PATH``,
``abfss://CONTAINER@ACCOUNT.dfs.core.windows.net/PATH`` and, for local emulators,
``http://127.0.0.1:PORT/ACCOUNT/CONTAINER/PATH``.
"""

from snakemake_storage_plugin_azblob.provider import StorageObject, StorageProvider
from snakemake_storage_plugin_azblob.settings import StorageProviderSettings

__all__ = ["StorageObject", "StorageProvider", "StorageProviderSettings"]
