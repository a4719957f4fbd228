"""The azblob storage provider: settings, credentials and clients shared by its objects."""

from __future__ import annotations

import threading
from typing import Any

from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_storage_plugins.common import Operation
from snakemake_interface_storage_plugins.storage_provider import (
    ExampleQuery,
    QueryType,
    StorageProviderBase,
    StorageQueryValidationResult,
)

from snakemake_storage_plugin_azblob.clients import ClientPool, TransferOptions
from snakemake_storage_plugin_azblob.credentials import (
    AccountConfig,
    ResolvedAuth,
    load_account_config,
    resolve_default,
    resolve_for_url,
)
from snakemake_storage_plugin_azblob.listing import ListingMemo
from snakemake_storage_plugin_azblob.query import (
    BlobQuery,
    InvalidQuery,
    parse_query,
    redact,
    validate_query,
)
from snakemake_storage_plugin_azblob.requestlog import RequestLog
from snakemake_storage_plugin_azblob.siblings import SiblingListings

# Snakemake imports the provider's module to find the object class.
from snakemake_storage_plugin_azblob.storage_object import StorageObject

__all__ = ["StorageObject", "StorageProvider"]


class StorageProvider(StorageProviderBase):
    def __post_init__(self) -> None:
        self.options = TransferOptions.from_settings(self.settings)
        self.account_config: AccountConfig = load_account_config(self.settings)
        self.request_log = RequestLog()
        self.request_log.write_at_exit_if_requested()
        self.clients = ClientPool(self.options, self.request_log)
        self.listings = ListingMemo()
        self.siblings = SiblingListings()
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

    @classmethod
    def example_queries(cls) -> list[ExampleQuery]:
        return [
            ExampleQuery(
                query="az://my-container/results/sample1.bam",
                description="A blob in the account given by the settings "
                "(account_name/endpoint_url or a connection string).",
                type=QueryType.ANY,
            ),
            ExampleQuery(
                query="https://myaccount.blob.core.windows.net/my-container/data/reads.fq.gz",
                description="A blob named by its full URL (any Azure cloud's endpoint "
                "suffix); a SAS may follow after '?'.",
                type=QueryType.ANY,
            ),
            ExampleQuery(
                query="http://127.0.0.1:10000/devstoreaccount1/my-container/data/x.txt",
                description="A blob on a local emulator such as Azurite (path-style URL).",
                type=QueryType.ANY,
            ),
        ]

    def rate_limiter_key(self, query: str, operation: Operation) -> Any:
        try:
            parsed = parse_query(query)
        except InvalidQuery:
            return "invalid"
        return parsed.account_url or "az://"

    def default_max_requests_per_second(self) -> float:
        # Far below an account's limit (20,000/s) but enough for any DAG check.
        return 500.0

    def use_rate_limiter(self) -> bool:
        return True

    @classmethod
    def is_valid_query(cls, query: str) -> StorageQueryValidationResult:
        reason = validate_query(query)
        return StorageQueryValidationResult(
            query=redact(query) if isinstance(query, str) else repr(query),
            valid=reason is None,
            reason=reason,
        )

    def safe_print(self, query: str) -> str:
        return redact(query)

    def postprocess_query(self, query: str) -> str:
        return query

    def object(self, query: str, *args, **kwargs):
        reason = validate_query(query) if isinstance(query, str) else "not a string"
        if reason is not None:
            raise WorkflowError(f"invalid azblob query {redact(str(query))}: {reason}")
        return super().object(query, *args, **kwargs)
