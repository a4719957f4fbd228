"""One BlobServiceClient per account and credential, configured from the settings.

Retries: azure-core's RetryPolicy retries 408, 429 and 5xx answers (except 501/505) and
connection/read errors, and sleeps for the Retry-After the service asks for. 401/403
are never retried. Every attempt is counted in the provider's RequestLog.

The storage SDK builds its pipeline itself and takes no ``per_call_policies`` or
``per_retry_policies``; its one public seam there is ``retry_policy``. We fill that slot
with a chain of policies (see :func:`retry_chain`): the SDK's own storage retry policy
with no retries left, which consumes the options the SDK's other policies leave for it
and labels the answer as the SDK expects, then azure-core's RetryPolicy, which does the
retrying, then the request counter, which so sees every attempt.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import HTTPPolicy, RetryPolicy
from azure.core.pipeline.transport import RequestsTransport
from azure.storage.blob import BlobServiceClient, ExponentialRetry, StandardBlobTier
from snakemake_interface_common.exceptions import WorkflowError

from snakemake_storage_plugin_azblob.credentials import ResolvedAuth
from snakemake_storage_plugin_azblob.directories import member_threads
from snakemake_storage_plugin_azblob.requestlog import RequestLog
from snakemake_storage_plugin_azblob.settings import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_RETRIES,
    DEFAULT_RETRY_BACKOFF,
    StorageProviderSettings,
)

MIB = 1024 * 1024
RESPONSE_READ_SIZE = 256 * 1024
UPLOAD_TIERS = (StandardBlobTier.HOT, StandardBlobTier.COOL, StandardBlobTier.COLD)


@dataclass(frozen=True)
class TransferOptions:
    """Numbers taken from the settings, with defaults filled in."""

    max_concurrency: int
    block_size: int | None
    retries: int
    retry_backoff: float
    connect_timeout: float
    read_timeout: float
    access_tier: StandardBlobTier | None = None

    @classmethod
    def from_settings(cls, settings: StorageProviderSettings | None) -> TransferOptions:
        s = settings or StorageProviderSettings()

        def pick(name: str, default, minimum):
            value = getattr(s, name)
            if value is None:
                return default
            if value < minimum:
                raise WorkflowError(
                    f"azblob setting {name} must be at least {minimum}, got {value!r}"
                )
            return value

        block_size = pick("block_size", 0, 0) or None
        if block_size is not None and block_size > 4000 * MIB:
            raise WorkflowError(
                f"azblob setting block_size must be at most {4000 * MIB} bytes (4000 MiB), "
                f"got {block_size}"
            )
        return cls(
            max_concurrency=int(pick("max_concurrency", DEFAULT_MAX_CONCURRENCY, 1)),
            block_size=block_size,
            retries=int(pick("retries", DEFAULT_RETRIES, 0)),
            retry_backoff=float(pick("retry_backoff", DEFAULT_RETRY_BACKOFF, 0)),
            connect_timeout=float(pick("connect_timeout", DEFAULT_CONNECT_TIMEOUT, 0.001)),
            read_timeout=float(pick("read_timeout", DEFAULT_READ_TIMEOUT, 0.001)),
            access_tier=upload_tier(s.access_tier),
        )


def upload_tier(value: str | None) -> StandardBlobTier | None:
    """The access_tier setting as the SDK's tier, any case; None keeps the account's."""
    if value is None or not value.strip():
        return None
    by_name = {tier.value.lower(): tier for tier in UPLOAD_TIERS}
    tier = by_name.get(value.strip().lower())
    if tier is None:
        archive = value.strip().lower() == StandardBlobTier.ARCHIVE.value.lower()
        reason = (
            ": blobs in the Archive tier cannot be read until rehydrated, so jobs could not "
            "read their inputs"
            if archive
            else ""
        )
        raise WorkflowError(
            f"azblob setting access_tier has invalid value '{value}'{reason}; choose one of "
            f"{', '.join(tier.value for tier in UPLOAD_TIERS)}"
        )
    return tier


class RequestCountingPolicy(HTTPPolicy):
    """Records every request it passes on; placed after the retry policy, it sees each
    attempt."""

    def __init__(self, request_log: RequestLog) -> None:
        super().__init__()
        self._request_log = request_log

    def send(self, request: PipelineRequest) -> PipelineResponse:
        http_request = request.http_request
        self._request_log.record(http_request.method, urlsplit(http_request.url).query)
        return self.next.send(request)


class PolicyChain(HTTPPolicy):
    """Several policies standing in one slot of a pipeline, run in the given order."""

    def __init__(self, *policies: HTTPPolicy) -> None:
        self._policies = policies
        for policy, after in itertools.pairwise(policies):
            policy.next = after
        super().__init__()

    # The pipeline sets ``next`` on the policy in its slot: hand it to the last of ours.
    @property
    def next(self):  # type: ignore[override]
        return self._policies[-1].next

    @next.setter
    def next(self, value) -> None:
        self._policies[-1].next = value

    def send(self, request: PipelineRequest) -> PipelineResponse:
        return self._policies[0].send(request)


def retry_chain(options: TransferOptions, request_log: RequestLog) -> PolicyChain:
    retry = RetryPolicy(
        retry_total=options.retries,
        retry_connect=options.retries,
        retry_read=options.retries,
        retry_status=options.retries,
        retry_backoff_factor=options.retry_backoff,
        retry_backoff_max=60,
    )
    return PolicyChain(ExponentialRetry(retry_total=0), retry, RequestCountingPolicy(request_log))


class ClientPool:
    """Creates and keeps one BlobServiceClient per (account URL, credential)."""

    def __init__(self, options: TransferOptions, request_log: RequestLog) -> None:
        self.options = options
        self.request_log = request_log
        self._clients: dict[tuple, BlobServiceClient] = {}
        self._lock = threading.Lock()

    def get(self, auth: ResolvedAuth) -> BlobServiceClient:
        with self._lock:
            client = self._clients.get(auth.client_key)
            if client is None:
                client = self._create(auth)
                self._clients[auth.client_key] = client
            return client

    def _create(self, auth: ResolvedAuth) -> BlobServiceClient:
        o = self.options
        session = requests.Session()
        # Directory transfers run up to member_threads() small files at once; keep a
        # connection for each.
        pool_size = max(10, member_threads(o.max_concurrency) + 2)
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        transport = RequestsTransport(
            session=session,
            session_owner=True,
            connection_timeout=o.connect_timeout,
            read_timeout=o.read_timeout,
            # The storage SDK reads response bodies in 256 KiB pieces when it builds its own
            # transport; azure-core's default of 4 KiB halves download throughput.
            connection_data_block_size=RESPONSE_READ_SIZE,
        )
        chunk = o.block_size or 8 * MIB
        return BlobServiceClient(
            auth.account_url,
            credential=auth.credential,
            transport=transport,
            retry_policy=retry_chain(o, self.request_log),
            max_chunk_get_size=chunk,
            max_single_get_size=chunk,
        )

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
