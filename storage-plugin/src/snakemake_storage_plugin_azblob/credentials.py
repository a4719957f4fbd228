"""Work out which account and credential a query uses.

Sources, per value, in order: the plugin's settings, then the environment variables of
the Azure CLI (``AZURE_STORAGE_CONNECTION_STRING``, ``AZURE_STORAGE_ACCOUNT``,
``AZURE_STORAGE_KEY``, ``AZURE_STORAGE_SAS_TOKEN``), then those of Snakemake 7
(``AZ_BLOB_ACCOUNT_URL``, which may carry a SAS, and ``AZ_BLOB_CREDENTIAL``, a key or a
SAS). A SAS inside the configured account URL comes before ``AZURE_STORAGE_SAS_TOKEN``.
``credential_mode=auto`` picks an account key, then a SAS, then a connection string, then
a managed/workload identity. Secret values never appear in messages; only the names of
the settings or variables they came from do.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from snakemake_interface_common.exceptions import WorkflowError

from snakemake_storage_plugin_azblob.query import (
    EMULATOR_ACCOUNT,
    BlobQuery,
    InvalidQuery,
    check_account_name,
)
from snakemake_storage_plugin_azblob.settings import (
    CREDENTIAL_MODES,
    CredentialMode,
    StorageProviderSettings,
)

EMULATOR_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def make_identity_credential(client_id: str | None) -> Any:
    """Build the token credential used by ``credential_mode=identity``.

    The single place where an Azure identity credential is constructed, so tests can
    replace it (they must never reach the instance metadata service).
    """
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(
        managed_identity_client_id=client_id,
        workload_identity_client_id=client_id,
        exclude_interactive_browser_credential=True,
    )


@dataclass(frozen=True)
class Sourced:
    """A configured value and the name of the setting or variable it came from."""

    value: str = field(repr=False)
    source: str


@dataclass(frozen=True)
class Endpoint:
    url: str
    account_name: str | None
    sas: Sourced | None
    source: str


@dataclass(frozen=True)
class AccountConfig:
    """What settings and environment say about the default account."""

    mode: CredentialMode
    endpoint: Endpoint | None
    account_name: Sourced | None
    account_key: Sourced | None
    sas: Sourced | None
    connection_string: dict[str, str] | None = field(repr=False)
    connection_string_source: str | None
    client_id: str | None


@dataclass(frozen=True)
class ResolvedAuth:
    """The account URL and credential one query is served with."""

    mode: CredentialMode
    account_url: str
    account_name: str
    sources: tuple[str, ...]
    credential: Any = field(repr=False, compare=False)
    notes: tuple[str, ...] = ()

    @property
    def client_key(self) -> tuple:
        # Distinct credentials (e.g. two SAS tokens for one account) need distinct clients.
        return (self.account_url, self.mode, self.sources, id(self.credential))

    def describe(self) -> str:
        used = ", ".join(self.sources) if self.sources else "no configured secret"
        notes = "".join(f"; {note}" for note in self.notes)
        return (
            f"credential mode '{self.mode}' for account '{self.account_name}' at "
            f"{self.account_url} (using {used}{notes})"
        )


def setting_source(name: str) -> str:
    return f"setting {name} (--storage-azblob-{name.replace('_', '-')})"


def env_source(name: str) -> str:
    return f"environment variable {name}"


def load_account_config(
    settings: StorageProviderSettings | None, environ: Mapping[str, str] | None = None
) -> AccountConfig:
    """Collect the default account's configuration; raise WorkflowError on bad values."""
    settings = settings or StorageProviderSettings()
    env = os.environ if environ is None else environ
    try:
        mode = CredentialMode((settings.credential_mode or "auto").strip().lower())
    except ValueError:
        raise WorkflowError(
            f"azblob setting credential_mode has invalid value '{settings.credential_mode}': "
            f"choose one of {', '.join(CREDENTIAL_MODES)}"
        ) from None

    conn, conn_source = None, None
    if settings.connection_string:
        conn, conn_source = settings.connection_string, setting_source("connection_string")
    elif env.get("AZURE_STORAGE_CONNECTION_STRING"):
        conn = env["AZURE_STORAGE_CONNECTION_STRING"]
        conn_source = env_source("AZURE_STORAGE_CONNECTION_STRING")
    conn_fields = parse_connection_string(conn, conn_source) if conn else None

    endpoint = None
    if settings.endpoint_url:
        endpoint = parse_endpoint(settings.endpoint_url, setting_source("endpoint_url"))
    elif env.get("AZ_BLOB_ACCOUNT_URL"):
        endpoint = parse_endpoint(env["AZ_BLOB_ACCOUNT_URL"], env_source("AZ_BLOB_ACCOUNT_URL"))

    legacy_credential = env.get("AZ_BLOB_CREDENTIAL") or None
    legacy_is_sas = bool(legacy_credential and "sig=" in legacy_credential)

    key = None
    if settings.account_key:
        key = Sourced(settings.account_key, setting_source("account_key"))
    elif env.get("AZURE_STORAGE_KEY"):
        key = Sourced(env["AZURE_STORAGE_KEY"], env_source("AZURE_STORAGE_KEY"))
    elif legacy_credential and not legacy_is_sas:
        key = Sourced(legacy_credential, env_source("AZ_BLOB_CREDENTIAL"))
    if key is not None:
        check_account_key(key)

    sas = None
    if settings.sas_token:
        sas = Sourced(settings.sas_token.lstrip("?"), setting_source("sas_token"))
    elif endpoint is not None and endpoint.sas is not None:
        sas = endpoint.sas
    elif env.get("AZURE_STORAGE_SAS_TOKEN"):
        sas = Sourced(
            env["AZURE_STORAGE_SAS_TOKEN"].lstrip("?"), env_source("AZURE_STORAGE_SAS_TOKEN")
        )
    elif legacy_is_sas:
        sas = Sourced(legacy_credential.lstrip("?"), env_source("AZ_BLOB_CREDENTIAL"))

    account_name = None
    if settings.account_name:
        account_name = Sourced(settings.account_name, setting_source("account_name"))
    elif endpoint is not None and endpoint.account_name:
        account_name = Sourced(endpoint.account_name, endpoint.source)
    elif env.get("AZURE_STORAGE_ACCOUNT"):
        account_name = Sourced(env["AZURE_STORAGE_ACCOUNT"], env_source("AZURE_STORAGE_ACCOUNT"))
    if account_name is not None:
        try:
            check_account_name(account_name.value)
        except InvalidQuery as e:
            raise WorkflowError(f"azblob {account_name.source}: {e}") from None
        if (
            endpoint is not None
            and endpoint.account_name
            and endpoint.account_name != account_name.value
        ):
            raise WorkflowError(
                f"azblob {account_name.source} names account '{account_name.value}' but "
                f"{endpoint.source} points at account '{endpoint.account_name}'"
            )

    return AccountConfig(
        mode=mode,
        endpoint=endpoint,
        account_name=account_name,
        account_key=key,
        sas=sas,
        connection_string=conn_fields,
        connection_string_source=conn_source,
        client_id=settings.client_id,
    )


def check_account_key(key: Sourced) -> None:
    try:
        base64.b64decode(key.value, validate=True)
    except (binascii.Error, ValueError):
        raise WorkflowError(
            f"azblob account key from {key.source} is not valid base64 (value not shown)"
        ) from None


def parse_endpoint(url: str, source: str) -> Endpoint:
    """Split an account URL into base URL, account name and SAS."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WorkflowError(
            f"azblob {source} must be an http(s) account URL such as "
            "https://ACCOUNT.blob.core.windows.net"
        )
    host = parts.hostname.lower()
    path = parts.path.strip("/")
    # Never echo parts of the URL here: a SAS pasted without its '?' lands in the path.
    if ".blob." in f".{host}.":
        if path:
            raise WorkflowError(
                f"azblob {source} must be an account URL without a container or blob path "
                "(a SAS must follow a '?'; value not shown)"
            )
        account: str | None = host.split(".", 1)[0]
    elif not path:
        account = None
    elif "/" in path:
        raise WorkflowError(
            f"azblob {source} must be an account URL without a container or blob path "
            "(value not shown)"
        )
    else:
        account = path
    if account is not None:
        try:
            check_account_name(account)
        except InvalidQuery:
            raise WorkflowError(
                f"azblob {source} does not name a valid storage account (3-24 lowercase "
                "letters and digits; a SAS must follow a '?'; value not shown)"
            ) from None
    netloc = parts.netloc.rpartition("@")[2]
    base = f"{parts.scheme}://{netloc}" + (f"/{path}" if path else "")
    sas = Sourced(parts.query, source) if parts.query else None
    return Endpoint(url=base, account_name=account, sas=sas, source=source)


def parse_connection_string(text: str, source: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for item in text.strip().split(";"):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        if not sep:
            raise WorkflowError(
                f"azblob connection string from {source} is malformed: expected "
                "Name=Value pairs separated by ';' (value not shown)"
            )
        fields[name.strip().lower()] = value.strip()
    if fields.get("usedevelopmentstorage", "").lower() == "true":
        fields.setdefault("accountname", EMULATOR_ACCOUNT)
        fields.setdefault("accountkey", EMULATOR_KEY)
        fields.setdefault("blobendpoint", f"http://127.0.0.1:10000/{EMULATOR_ACCOUNT}")
    if not fields.get("blobendpoint") and not fields.get("accountname"):
        raise WorkflowError(
            f"azblob connection string from {source} has neither AccountName nor "
            "BlobEndpoint (value not shown)"
        )
    if not fields.get("accountkey") and not fields.get("sharedaccesssignature"):
        raise WorkflowError(
            f"azblob connection string from {source} has neither AccountKey nor "
            "SharedAccessSignature (value not shown)"
        )
    if fields.get("accountkey"):
        check_account_key(Sourced(fields["accountkey"], f"the connection string from {source}"))
    return fields


def resolve_default(config: AccountConfig) -> ResolvedAuth:
    """Account URL and credential for ``az://`` queries."""
    mode = _auto_mode(config) if config.mode is CredentialMode.AUTO else config.mode
    if mode is CredentialMode.CONNECTION_STRING:
        return _from_connection_string(config)
    url, name, sources = _default_account(config)
    return _build(config, mode, url, name, sources)


def resolve_for_url(config: AccountConfig, query: BlobQuery) -> ResolvedAuth:
    """Account URL and credential for an https/http query naming its own account."""
    assert query.account_url is not None and query.account_name is not None
    if query.sas:
        return ResolvedAuth(
            mode=CredentialMode.SAS,
            account_url=query.account_url,
            account_name=query.account_name,
            sources=("SAS in the query URL",),
            credential=_sas_credential(query.sas),
            notes=sas_notes(query.sas),
        )
    default_name = _default_account_name(config)
    if default_name == query.account_name:
        auth = resolve_default(config)
        if auth.account_url == query.account_url:
            return auth
        return ResolvedAuth(
            auth.mode,
            query.account_url,
            query.account_name,
            auth.sources,
            auth.credential,
            auth.notes,
        )
    if config.mode in (CredentialMode.AUTO, CredentialMode.IDENTITY):
        return _build(config, CredentialMode.IDENTITY, query.account_url, query.account_name, ())
    if config.mode is CredentialMode.ANONYMOUS:
        return _build(config, CredentialMode.ANONYMOUS, query.account_url, query.account_name, ())
    raise WorkflowError(
        f"azblob credential_mode '{config.mode}' is configured for account "
        f"'{default_name}', but the query names account '{query.account_name}': add a SAS "
        "to the URL or use credential_mode identity"
    )


def _auto_mode(config: AccountConfig) -> CredentialMode:
    if config.account_key is not None:
        return CredentialMode.KEY
    if config.sas is not None:
        return CredentialMode.SAS
    if config.connection_string is not None:
        return CredentialMode.CONNECTION_STRING
    return CredentialMode.IDENTITY


def _default_account_name(config: AccountConfig) -> str | None:
    if config.account_name is not None:
        return config.account_name.value
    if config.connection_string is not None:
        if config.connection_string.get("accountname"):
            return config.connection_string["accountname"]
        endpoint = parse_endpoint(
            config.connection_string["blobendpoint"], config.connection_string_source or ""
        )
        return endpoint.account_name
    return None


def _default_account(config: AccountConfig) -> tuple[str, str, list[str]]:
    sources: list[str] = []
    name = config.account_name.value if config.account_name else None
    if config.endpoint is not None:
        sources.append(config.endpoint.source)
        url = config.endpoint.url
        if name is None:
            raise WorkflowError(
                f"azblob cannot tell the account name from {config.endpoint.source}: "
                "set account_name"
            )
        if config.account_name and config.account_name.source != config.endpoint.source:
            sources.append(config.account_name.source)
        return url, name, sources
    if name is None:
        raise WorkflowError(
            "azblob has no storage account for az:// queries: set account_name or "
            "endpoint_url (--storage-azblob-account-name / --storage-azblob-endpoint-url), "
            "a connection string, or AZURE_STORAGE_ACCOUNT"
        )
    sources.append(config.account_name.source)
    return f"https://{name}.blob.core.windows.net", name, sources


# What a mode's credential is made of: (credential, sources it used, notes).
CredentialParts = tuple[Any, list[str], tuple[str, ...]]


def _key_credential(config: AccountConfig, name: str) -> CredentialParts:
    if config.account_key is None:
        raise WorkflowError(
            "azblob credential_mode 'key' needs an account key: set account_key "
            "(--storage-azblob-account-key or SNAKEMAKE_STORAGE_AZBLOB_ACCOUNT_KEY) or "
            "AZURE_STORAGE_KEY"
        )
    from azure.core.credentials import AzureNamedKeyCredential

    credential = AzureNamedKeyCredential(name, config.account_key.value)
    return credential, [config.account_key.source], ()


def _sas_credential_parts(config: AccountConfig, name: str) -> CredentialParts:
    if config.sas is None:
        raise WorkflowError(
            "azblob credential_mode 'sas' needs a SAS: set sas_token "
            "(--storage-azblob-sas-token or SNAKEMAKE_STORAGE_AZBLOB_SAS_TOKEN) or "
            "AZURE_STORAGE_SAS_TOKEN, or put it in endpoint_url"
        )
    return _sas_credential(config.sas.value), [config.sas.source], sas_notes(config.sas.value)


def _identity_credential(config: AccountConfig, name: str) -> CredentialParts:
    sources = [f"client id from {setting_source('client_id')}"] if config.client_id else []
    return make_identity_credential(config.client_id), sources, ()


def _no_credential(config: AccountConfig, name: str) -> CredentialParts:
    return None, [], ()


# Modes with a credential of their own; auto and connection-string are resolved first.
CREDENTIAL_BUILDERS: dict[CredentialMode, Callable[[AccountConfig, str], CredentialParts]] = {
    CredentialMode.KEY: _key_credential,
    CredentialMode.SAS: _sas_credential_parts,
    CredentialMode.IDENTITY: _identity_credential,
    CredentialMode.ANONYMOUS: _no_credential,
}


def _build(
    config: AccountConfig, mode: CredentialMode, url: str, name: str, sources: list[str] | tuple
) -> ResolvedAuth:
    credential, used, notes = CREDENTIAL_BUILDERS[mode](config, name)
    all_sources = list(sources)
    all_sources += [source for source in used if source not in all_sources]
    return ResolvedAuth(mode, url, name, tuple(all_sources), credential, notes)


def _from_connection_string(config: AccountConfig) -> ResolvedAuth:
    fields = config.connection_string
    source = config.connection_string_source or "connection string"
    if fields is None:
        raise WorkflowError(
            "azblob credential_mode 'connection-string' needs a connection string: set "
            "connection_string (SNAKEMAKE_STORAGE_AZBLOB_CONNECTION_STRING) or "
            "AZURE_STORAGE_CONNECTION_STRING"
        )
    if config.endpoint is not None:
        url, sources = config.endpoint.url, [config.endpoint.source, source]
    elif fields.get("blobendpoint"):
        url, sources = parse_endpoint(fields["blobendpoint"], source).url, [source]
    else:
        protocol = fields.get("defaultendpointsprotocol", "https")
        suffix = fields.get("endpointsuffix", "core.windows.net")
        url, sources = f"{protocol}://{fields['accountname']}.blob.{suffix}", [source]
    name = fields.get("accountname") or parse_endpoint(url, source).account_name
    if not name:
        raise WorkflowError(f"azblob cannot tell the account name from {source}")
    if fields.get("accountkey"):
        from azure.core.credentials import AzureNamedKeyCredential

        credential: Any = AzureNamedKeyCredential(name, fields["accountkey"])
        notes: tuple[str, ...] = ()
    else:
        credential = _sas_credential(fields["sharedaccesssignature"])
        notes = sas_notes(fields["sharedaccesssignature"])
    return ResolvedAuth(
        CredentialMode.CONNECTION_STRING, url, name, tuple(sources), credential, notes
    )


def sas_notes(sas: str) -> tuple[str, ...]:
    """The SAS's expiry (not a secret), flagged if it has passed."""
    params = parse_qs(sas.lstrip("?"))
    expiry = (params.get("se") or [None])[0]
    if not expiry:
        return ()
    try:
        when = datetime.fromisoformat(expiry.replace("Z", "+00:00"))
    except ValueError:
        return (f"SAS expiry se={expiry}",)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if when <= datetime.now(UTC):
        return (f"the SAS expired at {expiry}",)
    return (f"SAS expires at {expiry}",)


def _sas_credential(sas: str) -> Any:
    from azure.core.credentials import AzureSasCredential

    return AzureSasCredential(sas.lstrip("?"))
