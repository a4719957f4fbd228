"""The azblob storage provider: settings, credentials and clients shared by its objects."""

from __future__ import annotations

from typing import Any

from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_storage_plugins.common import Operation
from snakemake_interface_storage_plugins.storage_provider import (
    ExampleQuery,
    QueryType,
    StorageProviderBase,
    StorageQueryValidationResult,
)

from snakemake_storage_plugin_azblob.context import StorageContext
from snakemake_storage_plugin_azblob.query import (
    InvalidQuery,
    parse_query,
    redact,
    validate_query,
)

# Snakemake imports the provider's module to find the object class.
from snakemake_storage_plugin_azblob.storage_object import StorageObject

__all__ = ["StorageObject", "StorageProvider"]


class StorageProvider(StorageProviderBase):
    def __post_init__(self) -> None:
        self.context = StorageContext(self.settings, self.logger)
        # Tests and benchmarks count this provider's requests here.
        self.request_log = self.context.request_log

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
                query="abfss://my-container@myaccount.dfs.core.windows.net/data/reads.fq.gz",
                description="The Data Lake (Spark/Databricks) form of the same blob as "
                "https://myaccount.blob.core.windows.net/my-container/data/reads.fq.gz; "
                "abfs:// is accepted too.",
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
