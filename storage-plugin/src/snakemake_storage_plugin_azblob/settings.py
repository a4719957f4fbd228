"""Settings of the azblob storage provider.

Snakemake exposes each field as ``--storage-azblob-<name-with-dashes>``; fields marked
``env_var`` are also read from ``SNAKEMAKE_STORAGE_AZBLOB_<NAME>`` and are passed to
remote jobs through the environment instead of the command line.
"""

from dataclasses import dataclass, field
from enum import StrEnum

from snakemake_interface_storage_plugins.settings import StorageProviderSettingsBase


class CredentialMode(StrEnum):
    """Values of the credential_mode setting."""

    AUTO = "auto"
    KEY = "key"
    SAS = "sas"
    CONNECTION_STRING = "connection-string"
    IDENTITY = "identity"
    ANONYMOUS = "anonymous"


CREDENTIAL_MODES = tuple(mode.value for mode in CredentialMode)

DEFAULT_MAX_CONCURRENCY = 8
DEFAULT_RETRIES = 5
DEFAULT_RETRY_BACKOFF = 0.8
DEFAULT_CONNECT_TIMEOUT = 20.0
DEFAULT_READ_TIMEOUT = 120.0


def _secret(help_text: str) -> dict:
    return {"help": help_text, "env_var": True, "required": False}


@dataclass
class StorageProviderSettings(StorageProviderSettingsBase):
    account_name: str | None = field(
        default=None,
        metadata={
            "help": "Storage account name (also taken from endpoint_url, the connection "
            "string or AZURE_STORAGE_ACCOUNT).",
            "env_var": False,
            "required": False,
        },
    )
    endpoint_url: str | None = field(
        default=None,
        repr=False,
        metadata=_secret(
            "Account URL, e.g. https://ACCOUNT.blob.core.windows.net or "
            "http://127.0.0.1:10000/devstoreaccount1; may carry a SAS query string."
        ),
    )
    account_key: str | None = field(
        default=None, repr=False, metadata=_secret("Storage account key (shared key auth).")
    )
    sas_token: str | None = field(
        default=None, repr=False, metadata=_secret("Shared access signature (without '?').")
    )
    connection_string: str | None = field(
        default=None, repr=False, metadata=_secret("Storage account connection string.")
    )
    client_id: str | None = field(
        default=None,
        metadata={
            "help": "Client id of the managed or workload identity to authenticate with.",
            "env_var": False,
            "required": False,
        },
    )
    credential_mode: str = field(
        default="auto",
        metadata={
            "help": "How to authenticate: auto (account key, then SAS, then connection "
            "string, then managed/workload identity), key, sas, connection-string, identity "
            "or anonymous.",
            "env_var": False,
            "required": False,
        },
    )
    access_tier: str | None = field(
        default=None,
        metadata={
            "help": "Access tier of uploaded blobs: Hot, Cool or Cold (default: the "
            "account's default tier). Archive is refused: jobs could not read their inputs.",
            "env_var": False,
            "required": False,
        },
    )
    max_concurrency: int | None = field(
        default=None,
        metadata={
            "help": "Parallel connections per file transfer (default "
            f"{DEFAULT_MAX_CONCURRENCY}); directory transfers move as many large files "
            "(twice as many on download), or up to 4 times as many small ones, at once.",
            "env_var": False,
            "required": False,
            "type": int,
        },
    )
    block_size: int | None = field(
        default=None,
        metadata={
            "help": "Block size in bytes for uploads and ranged downloads; 0 or unset chooses "
            "one per file (raised if needed to stay within 50,000 blocks).",
            "env_var": False,
            "required": False,
            "type": int,
        },
    )
    retries: int | None = field(
        default=None,
        metadata={
            "help": "Retries per request on 408/429/5xx and connection errors "
            f"(default {DEFAULT_RETRIES}); Retry-After is honoured.",
            "env_var": False,
            "required": False,
            "type": int,
        },
    )
    retry_backoff: float | None = field(
        default=None,
        metadata={
            "help": "Base of the exponential back-off between retries in seconds "
            f"(default {DEFAULT_RETRY_BACKOFF}).",
            "env_var": False,
            "required": False,
            "type": float,
        },
    )
    connect_timeout: float | None = field(
        default=None,
        metadata={
            "help": f"Connection timeout in seconds (default {DEFAULT_CONNECT_TIMEOUT:g}).",
            "env_var": False,
            "required": False,
            "type": float,
        },
    )
    read_timeout: float | None = field(
        default=None,
        metadata={
            "help": f"Read timeout in seconds per socket read (default {DEFAULT_READ_TIMEOUT:g}).",
            "env_var": False,
            "required": False,
            "type": float,
        },
    )
