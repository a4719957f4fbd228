"""What the storage objects of one provider share: settings, credentials, clients,
the request log and the metadata cache.

The provider builds one :class:`StorageContext`; storage objects reach it through
``provider.context``. Neither storage_object.py nor this module imports provider.py,
so Snakemake's import of the provider finds no import cycle.
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

from snakemake_storage_plugin_azblob.clients import ClientPool, TransferOptions
from snakemake_storage_plugin_azblob.credentials import (
    AccountConfig,
    ResolvedAuth,
    load_account_config,
    resolve_default,
    resolve_for_url,
)
from snakemake_storage_plugin_azblob.metadata import MetadataCache
from snakemake_storage_plugin_azblob.query import BlobQuery
from snakemake_storage_plugin_azblob.requestlog import RequestLog
from snakemake_storage_plugin_azblob.settings import StorageProviderSettings


class StorageContext:
    def __init__(self, settings: StorageProviderSettings | None, logger: logging.Logger) -> None:
        self.logger = logger
        self.options = TransferOptions.from_settings(settings)
        self.account_config: AccountConfig = load_account_config(settings)
        self.request_log = RequestLog()
        self.request_log.write_at_exit_if_requested()
        self.clients = ClientPool(self.options, self.request_log)
        self.metadata = MetadataCache()
        self._auth_by_account: dict[tuple, ResolvedAuth] = {}
        self._auth_lock = threading.Lock()

    def auth_for(self, query: BlobQuery) -> ResolvedAuth:
        """Account URL and credential for ``query``, resolved once per account."""
        key = (query.account_url, query.account_name, query.sas)
        with self._auth_lock:
            auth = self._auth_by_account.get(key)
            if auth is None:
                if query.is_url:
                    auth = resolve_for_url(self.account_config, query)
                else:
                    auth = resolve_default(self.account_config)
                self._auth_by_account[key] = auth
            return auth


class HasStorageContext(Protocol):
    """The part of the provider its storage objects use."""

    context: StorageContext
