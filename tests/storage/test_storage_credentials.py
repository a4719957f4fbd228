"""Precedence of credential modes, settings and environment variables, resolved directly
through ``load_account_config(settings, environ=...)``: no service, no Azurite.

Each row gives the settings and the environment, and the mode, account and sources
(names of settings and variables, never values) that the default account resolves to.
The end-to-end counterpart, with real requests, is test_storage_auth.py.
"""

from __future__ import annotations

import pytest
from snakemake_interface_common.exceptions import WorkflowError

from snakemake_storage_plugin_azblob import credentials
from snakemake_storage_plugin_azblob.credentials import (
    env_source,
    load_account_config,
    resolve_default,
    setting_source,
)
from snakemake_storage_plugin_azblob.settings import CredentialMode, StorageProviderSettings

KEY = "a2V5LWZyb20tc2V0dGluZ3M="  # base64, as account keys are
OTHER_KEY = "b3RoZXIta2V5"
SAS = "sv=2022-11-02&sp=rl&se=2099-01-01T00:00:00Z&sig=c2lnbmF0dXJl"
OTHER_SAS = "sv=2022-11-02&sp=r&se=2099-01-01T00:00:00Z&sig=b3RoZXI"
PUBLIC = "https://acct.blob.core.windows.net"
CONN = f"AccountName=connacct;AccountKey={KEY};EndpointSuffix=core.windows.net"

S, E = setting_source, env_source


@pytest.fixture(autouse=True)
def no_identity_service(monkeypatch: pytest.MonkeyPatch) -> None:
    """Identity mode must never build a credential that calls a metadata service."""
    monkeypatch.setattr(credentials, "make_identity_credential", lambda client_id: "token")


ROWS = [
    # -- auto: key, then SAS, then connection string, then identity ----------------------
    pytest.param(
        {"account_name": "acct", "account_key": KEY, "sas_token": SAS}, {},
        CredentialMode.KEY, "acct", PUBLIC, (S("account_name"), S("account_key")),
        id="auto-key-beats-sas",
    ),
    pytest.param(
        {"account_name": "acct", "sas_token": SAS}, {},
        CredentialMode.SAS, "acct", PUBLIC, (S("account_name"), S("sas_token")),
        id="auto-sas",
    ),
    pytest.param(
        {}, {"AZURE_STORAGE_CONNECTION_STRING": CONN},
        CredentialMode.CONNECTION_STRING, "connacct", "https://connacct.blob.core.windows.net",
        (E("AZURE_STORAGE_CONNECTION_STRING"),),
        id="auto-connection-string-from-env",
    ),
    pytest.param(
        {"account_name": "acct", "sas_token": SAS}, {"AZURE_STORAGE_CONNECTION_STRING": CONN},
        CredentialMode.SAS, "acct", PUBLIC, (S("account_name"), S("sas_token")),
        id="auto-sas-beats-connection-string",
    ),
    pytest.param(
        {"account_name": "acct"}, {},
        CredentialMode.IDENTITY, "acct", PUBLIC, (S("account_name"),),
        id="auto-identity-when-no-secret",
    ),
    pytest.param(
        {"account_name": "acct", "client_id": "cid"}, {},
        CredentialMode.IDENTITY, "acct", PUBLIC,
        (S("account_name"), f"client id from {S('client_id')}"),
        id="auto-identity-with-client-id",
    ),
    # -- settings beat environment variables ---------------------------------------------
    pytest.param(
        {"account_name": "acct", "account_key": KEY},
        {"AZURE_STORAGE_ACCOUNT": "envacct", "AZURE_STORAGE_KEY": OTHER_KEY},
        CredentialMode.KEY, "acct", PUBLIC, (S("account_name"), S("account_key")),
        id="settings-beat-azure-cli-variables",
    ),
    pytest.param(
        {}, {"AZURE_STORAGE_ACCOUNT": "envacct", "AZURE_STORAGE_KEY": KEY},
        CredentialMode.KEY, "envacct", "https://envacct.blob.core.windows.net",
        (E("AZURE_STORAGE_ACCOUNT"), E("AZURE_STORAGE_KEY")),
        id="azure-cli-variables",
    ),
    pytest.param(
        {}, {"AZURE_STORAGE_ACCOUNT": "envacct", "AZURE_STORAGE_KEY": KEY,
             "AZ_BLOB_CREDENTIAL": OTHER_KEY},
        CredentialMode.KEY, "envacct", "https://envacct.blob.core.windows.net",
        (E("AZURE_STORAGE_ACCOUNT"), E("AZURE_STORAGE_KEY")),
        id="azure-storage-key-beats-az-blob-credential",
    ),
    pytest.param(
        {}, {"AZ_BLOB_ACCOUNT_URL": PUBLIC, "AZ_BLOB_CREDENTIAL": KEY},
        CredentialMode.KEY, "acct", PUBLIC,
        (E("AZ_BLOB_ACCOUNT_URL"), E("AZ_BLOB_CREDENTIAL")),
        id="snakemake7-url-and-key",
    ),
    pytest.param(
        {}, {"AZ_BLOB_ACCOUNT_URL": PUBLIC, "AZ_BLOB_CREDENTIAL": SAS},
        CredentialMode.SAS, "acct", PUBLIC,
        (E("AZ_BLOB_ACCOUNT_URL"), E("AZ_BLOB_CREDENTIAL")),
        id="snakemake7-credential-with-sig-is-a-sas",
    ),
    pytest.param(
        {}, {"AZ_BLOB_ACCOUNT_URL": f"{PUBLIC}?{SAS}"},
        CredentialMode.SAS, "acct", PUBLIC, (E("AZ_BLOB_ACCOUNT_URL"),),
        id="snakemake7-url-carrying-a-sas",
    ),
    pytest.param(
        {"endpoint_url": "https://other.blob.core.windows.net", "account_key": KEY},
        {"AZ_BLOB_ACCOUNT_URL": PUBLIC},
        CredentialMode.KEY, "other", "https://other.blob.core.windows.net",
        (S("endpoint_url"), S("account_key")),
        id="endpoint-setting-beats-az-blob-account-url",
    ),
    pytest.param(
        {"endpoint_url": f"{PUBLIC}?{OTHER_SAS}", "sas_token": SAS}, {},
        CredentialMode.SAS, "acct", PUBLIC, (S("endpoint_url"), S("sas_token")),
        id="sas-setting-beats-sas-in-endpoint",
    ),
    pytest.param(
        {"endpoint_url": f"{PUBLIC}?{SAS}"}, {"AZ_BLOB_CREDENTIAL": OTHER_SAS},
        CredentialMode.SAS, "acct", PUBLIC, (S("endpoint_url"),),
        id="sas-in-endpoint-beats-az-blob-credential",
    ),
    pytest.param(
        {"account_name": "acct"}, {"AZURE_STORAGE_SAS_TOKEN": f"?{SAS}"},
        CredentialMode.SAS, "acct", PUBLIC, (S("account_name"), E("AZURE_STORAGE_SAS_TOKEN")),
        id="azure-storage-sas-token",
    ),
    pytest.param(
        {"account_name": "acct", "sas_token": SAS}, {"AZURE_STORAGE_SAS_TOKEN": OTHER_SAS},
        CredentialMode.SAS, "acct", PUBLIC, (S("account_name"), S("sas_token")),
        id="sas-setting-beats-azure-storage-sas-token",
    ),
    pytest.param(
        {"endpoint_url": f"{PUBLIC}?{SAS}"}, {"AZURE_STORAGE_SAS_TOKEN": OTHER_SAS},
        CredentialMode.SAS, "acct", PUBLIC, (S("endpoint_url"),),
        id="sas-in-endpoint-beats-azure-storage-sas-token",
    ),
    pytest.param(
        {}, {"AZ_BLOB_ACCOUNT_URL": PUBLIC, "AZURE_STORAGE_SAS_TOKEN": SAS,
             "AZ_BLOB_CREDENTIAL": OTHER_SAS},
        CredentialMode.SAS, "acct", PUBLIC,
        (E("AZ_BLOB_ACCOUNT_URL"), E("AZURE_STORAGE_SAS_TOKEN")),
        id="azure-storage-sas-token-beats-az-blob-credential",
    ),
    pytest.param(
        {}, {"AZURE_STORAGE_ACCOUNT": "envacct", "AZURE_STORAGE_KEY": KEY,
             "AZURE_STORAGE_SAS_TOKEN": SAS},
        CredentialMode.KEY, "envacct", "https://envacct.blob.core.windows.net",
        (E("AZURE_STORAGE_ACCOUNT"), E("AZURE_STORAGE_KEY")),
        id="auto-azure-storage-key-beats-azure-storage-sas-token",
    ),
    pytest.param(
        {"connection_string": CONN},
        {"AZURE_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true"},
        CredentialMode.CONNECTION_STRING, "connacct", "https://connacct.blob.core.windows.net",
        (S("connection_string"),),
        id="connection-string-setting-beats-env",
    ),
    pytest.param(
        {}, {"AZURE_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true"},
        CredentialMode.CONNECTION_STRING, "devstoreaccount1",
        "http://127.0.0.1:10000/devstoreaccount1", (E("AZURE_STORAGE_CONNECTION_STRING"),),
        id="development-storage-shortcut",
    ),
    # -- an explicit mode uses only its own credential -----------------------------------
    pytest.param(
        {"account_name": "acct", "account_key": KEY, "sas_token": SAS, "credential_mode": "sas"},
        {}, CredentialMode.SAS, "acct", PUBLIC, (S("account_name"), S("sas_token")),
        id="mode-sas-with-key-present",
    ),
    pytest.param(
        {"account_name": "acct", "account_key": KEY, "credential_mode": "identity"}, {},
        CredentialMode.IDENTITY, "acct", PUBLIC, (S("account_name"),),
        id="mode-identity-with-key-present",
    ),
    pytest.param(
        {"account_name": "acct", "account_key": KEY, "credential_mode": " Anonymous "}, {},
        CredentialMode.ANONYMOUS, "acct", PUBLIC, (S("account_name"),),
        id="mode-anonymous-any-case",
    ),
    pytest.param(
        {"account_name": "acct", "account_key": KEY, "credential_mode": "connection-string"},
        {"AZURE_STORAGE_CONNECTION_STRING": CONN},
        CredentialMode.CONNECTION_STRING, "connacct", "https://connacct.blob.core.windows.net",
        (E("AZURE_STORAGE_CONNECTION_STRING"),),
        id="mode-connection-string-with-key-present",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("settings", "environ", "mode", "account", "url", "sources"), ROWS)
def test_the_default_account_resolves_by_precedence(
    settings: dict, environ: dict, mode: CredentialMode, account: str, url: str, sources: tuple
) -> None:
    config = load_account_config(StorageProviderSettings(**settings), environ=environ)

    auth = resolve_default(config)

    assert (auth.mode, auth.account_name, auth.account_url, auth.sources) == (
        mode,
        account,
        url,
        sources,
    )
    assert (auth.credential is None) == (mode is CredentialMode.ANONYMOUS)


ERRORS = [
    pytest.param({"credential_mode": "password"}, {}, "choose one of auto, key, sas", id="mode"),
    pytest.param(
        {"account_name": "acct", "credential_mode": "sas"}, {"AZURE_STORAGE_KEY": KEY},
        "'sas' needs a SAS: set sas_token", id="sas-mode-without-sas",
    ),
    pytest.param(
        {"account_name": "acct", "credential_mode": "key", "sas_token": SAS}, {},
        "'key' needs an account key", id="key-mode-without-key",
    ),
    pytest.param(
        {"credential_mode": "connection-string", "account_name": "acct"}, {},
        "'connection-string' needs a connection string", id="connection-string-mode-without-one",
    ),
    pytest.param({"account_key": KEY}, {}, "has no storage account", id="no-account"),
    pytest.param(
        {"account_name": "acct"}, {"AZ_BLOB_ACCOUNT_URL": "https://other.blob.core.windows.net"},
        "names account 'acct' but environment variable AZ_BLOB_ACCOUNT_URL points at "
        "account 'other'", id="account-name-and-url-disagree",
    ),
    pytest.param(
        {"account_name": "acct"}, {"AZURE_STORAGE_KEY": "not base64!"},
        "from environment variable AZURE_STORAGE_KEY is not valid base64", id="bad-key",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("settings", "environ", "message"), ERRORS)
def test_bad_configurations_name_what_to_fix(settings: dict, environ: dict, message: str) -> None:
    with pytest.raises(WorkflowError, match="azblob") as raised:
        resolve_default(load_account_config(StorageProviderSettings(**settings), environ=environ))

    assert message in str(raised.value)
    for secret in (KEY, SAS, "not base64!"):
        assert secret not in str(raised.value)


def test_the_process_environment_is_not_read_when_environ_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AZURE_STORAGE_KEY", KEY)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT", "envacct")

    config = load_account_config(StorageProviderSettings(), environ={})

    assert (config.account_key, config.account_name) == (None, None)
