"""Every credential mode of the azblob plugin against Azurite.

Each test stores a file, checks the stored bytes through an independent SDK client,
then asks the plugin for existence/size and retrieves it again; the request recorder
proves which credential kind (shared key, SAS, bearer, none) actually went over the
wire. Bearer tokens need Azurite with ``--oauth basic`` over https: a module fixture
starts one with a throwaway trustme CA, and the identity credential factory is
monkeypatched to hand out well-formed unsigned tokens (nothing here talks to Azure AD).
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.storage.blob import (
    AccountSasPermissions,
    ContainerSasPermissions,
    ResourceTypes,
    generate_account_sas,
    generate_container_sas,
)
from snakemake_interface_common.exceptions import WorkflowError

from localcluster.azurite import DEV_ACCOUNT_KEY, DEV_ACCOUNT_NAME, Azurite, start_azurite
from snakemake_storage_plugin_azblob import StorageProvider, StorageProviderSettings, credentials
from support.tls import TlsFiles, make_server_tls
from support.tokens import STORAGE_SCOPE, FakeTokenCredential, RequestRecorder

pytestmark = pytest.mark.timeout(120)

CREDENTIAL_ENV_PREFIXES = ("SNAKEMAKE_STORAGE_AZBLOB_", "AZ_BLOB_", "AZURE_STORAGE_")
IDENTITY_ENV = ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE")


# -- plumbing ---------------------------------------------------------------------------------
@dataclass
class FakeIdentityFactory:
    """Stands in for credentials.make_identity_credential and records what it was asked."""

    monkeypatch: pytest.MonkeyPatch
    client_ids: list[str | None] = field(default_factory=list)
    credentials: list[FakeTokenCredential] = field(default_factory=list)

    def forbid(self) -> None:
        def forbidden(client_id: str | None = None) -> object:
            raise AssertionError(f"identity credential requested (client_id={client_id!r})")

        self._install(forbidden)

    def hand_out_tokens(self, lifetime: int = 3600) -> None:
        def fake(client_id: str | None = None) -> FakeTokenCredential:
            self.client_ids.append(client_id)
            credential = FakeTokenCredential(lifetime=lifetime)
            self.credentials.append(credential)
            return credential

        self._install(fake)

    def requested_scopes(self) -> set[str]:
        return {s for c in self.credentials for call in c.requested_scopes for s in call}

    def _install(self, factory: Callable[[str | None], object]) -> None:
        self.monkeypatch.setattr(credentials, "make_identity_credential", factory)


@pytest.fixture(autouse=True)
def clean_credential_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(CREDENTIAL_ENV_PREFIXES) or name in IDENTITY_ENV:
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def identity_factory(monkeypatch: pytest.MonkeyPatch) -> FakeIdentityFactory:
    """No test may build a real identity credential; those expecting tokens opt in."""
    factory = FakeIdentityFactory(monkeypatch)
    factory.forbid()
    return factory


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> RequestRecorder:
    return RequestRecorder().install(monkeypatch)


def build_provider(tmp_path: Path, **settings: object):
    return StorageProvider(
        local_prefix=tmp_path / "staging",
        logger=logging.getLogger("test_storage_auth"),
        settings=StorageProviderSettings(**settings),
        is_default=True,
    )


def assert_round_trip(provider, service, container: str, recorder: RequestRecorder) -> None:
    """Store, verify independently, stat and retrieve one small file through the plugin,
    using the managed_* entry points Snakemake calls."""
    name = f"auth/{uuid.uuid4().hex[:8]}.txt"
    payload = f"stored through {name}\n".encode()
    obj = provider.object(f"az://{container}/{name}")
    local = obj.local_path()
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_bytes(payload)

    asyncio.run(obj.managed_store())
    with recorder.paused():
        assert service.get_blob_client(container, name).download_blob().readall() == payload

    local.unlink()
    assert asyncio.run(obj.managed_exists())
    assert asyncio.run(obj.managed_size()) == len(payload)
    asyncio.run(obj.managed_retrieve())
    assert local.read_bytes() == payload


def account_sas(azurite: Azurite, *, expiry: timedelta = timedelta(hours=1), **perms: bool) -> str:
    permission = AccountSasPermissions(**(perms or _all_permissions()))
    return generate_account_sas(
        azurite.account_name,
        azurite.account_key,
        resource_types=ResourceTypes(service=True, container=True, object=True),
        permission=permission,
        expiry=datetime.now(UTC) + expiry,
    )


def container_sas(azurite: Azurite, container: str, **perms: bool) -> str:
    return generate_container_sas(
        azurite.account_name,
        container,
        account_key=azurite.account_key,
        permission=ContainerSasPermissions(**(perms or _all_permissions())),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )


def _all_permissions() -> dict[str, bool]:
    return dict(read=True, write=True, delete=True, list=True, add=True, create=True)


# -- shared key, SAS, connection strings, legacy variables ------------------------------------
ModeSetup = Callable[[Azurite, str], tuple[dict[str, object], dict[str, str]]]


def _key(az: Azurite, _c: str):
    return {"endpoint_url": az.blob_endpoint, "account_key": az.account_key}, {}


def _key_explicit_mode_beats_sas(az: Azurite, c: str):
    sas = container_sas(az, c, read=True, list=True)
    return {
        "endpoint_url": az.blob_endpoint,
        "account_key": az.account_key,
        "sas_token": sas,
        "credential_mode": "key",
    }, {}


def _auto_prefers_key_over_sas(az: Azurite, c: str):
    sas = container_sas(az, c, read=True, list=True)
    return {"endpoint_url": az.blob_endpoint, "account_key": az.account_key, "sas_token": sas}, {}


def _account_sas(az: Azurite, _c: str):
    return {"endpoint_url": az.blob_endpoint, "sas_token": account_sas(az)}, {}


def _account_sas_with_question_mark(az: Azurite, _c: str):
    return {"endpoint_url": az.blob_endpoint, "sas_token": "?" + account_sas(az)}, {}


def _container_sas(az: Azurite, c: str):
    return {"endpoint_url": az.blob_endpoint, "sas_token": container_sas(az, c)}, {}


def _sas_in_endpoint_url(az: Azurite, _c: str):
    return {"endpoint_url": f"{az.blob_endpoint}?{account_sas(az)}"}, {}


def _connection_string(az: Azurite, _c: str):
    return {"connection_string": az.connection_string}, {}


def _connection_string_with_sas(az: Azurite, _c: str):
    value = f"BlobEndpoint={az.blob_endpoint};SharedAccessSignature={account_sas(az)}"
    return {"connection_string": value}, {}


def _auto_prefers_sas_over_connection_string(az: Azurite, _c: str):
    settings = {"endpoint_url": az.blob_endpoint, "sas_token": account_sas(az)}
    return {**settings, "connection_string": az.connection_string}, {}


def _legacy_url_and_key(az: Azurite, _c: str):
    return {}, {"AZ_BLOB_ACCOUNT_URL": az.blob_endpoint, "AZ_BLOB_CREDENTIAL": az.account_key}


def _legacy_url_with_sas(az: Azurite, _c: str):
    return {}, {"AZ_BLOB_ACCOUNT_URL": f"{az.blob_endpoint}?{account_sas(az)}"}


def _legacy_url_slash_question_sas(az: Azurite, _c: str):
    return {}, {"AZ_BLOB_ACCOUNT_URL": f"{az.blob_endpoint}/?{account_sas(az)}"}


def _legacy_url_and_sas_credential(az: Azurite, _c: str):
    return {}, {"AZ_BLOB_ACCOUNT_URL": az.blob_endpoint, "AZ_BLOB_CREDENTIAL": account_sas(az)}


def _azure_connection_string_env(az: Azurite, _c: str):
    return {}, {"AZURE_STORAGE_CONNECTION_STRING": az.connection_string}


def _azure_account_and_key_env(az: Azurite, _c: str):
    env = {"AZURE_STORAGE_ACCOUNT": az.account_name, "AZURE_STORAGE_KEY": az.account_key}
    return {"endpoint_url": az.blob_endpoint}, env


def _azure_sas_token_env(az: Azurite, c: str):
    env = {"AZURE_STORAGE_SAS_TOKEN": "?" + container_sas(az, c)}
    return {"endpoint_url": az.blob_endpoint}, env


def _settings_beat_legacy_env(az: Azurite, _c: str):
    wrong = "d3Jvbmcta2V5LWZyb20tYW4tb2xkLWVudmlyb25tZW50LXZhcmlhYmxlLTAwMDAwMDAwMA=="
    return _key(az, _c)[0], {"AZ_BLOB_CREDENTIAL": wrong, "AZURE_STORAGE_KEY": wrong}


MODES: list = [
    pytest.param(_key, "shared-key", id="account-key"),
    pytest.param(_key_explicit_mode_beats_sas, "shared-key", id="mode-key-with-sas-present"),
    pytest.param(_auto_prefers_key_over_sas, "shared-key", id="auto-key-before-sas"),
    pytest.param(_account_sas, "sas", id="account-sas"),
    pytest.param(_account_sas_with_question_mark, "sas", id="account-sas-leading-question-mark"),
    pytest.param(_container_sas, "sas", id="container-sas"),
    pytest.param(_sas_in_endpoint_url, "sas", id="sas-in-endpoint-url"),
    pytest.param(_connection_string, "shared-key", id="connection-string"),
    pytest.param(_connection_string_with_sas, "sas", id="connection-string-with-sas"),
    pytest.param(_auto_prefers_sas_over_connection_string, "sas", id="auto-sas-before-conn-str"),
    pytest.param(_legacy_url_and_key, "shared-key", id="env-AZ_BLOB_ACCOUNT_URL+key"),
    pytest.param(_legacy_url_with_sas, "sas", id="env-AZ_BLOB_ACCOUNT_URL-with-sas"),
    pytest.param(_legacy_url_and_sas_credential, "sas", id="env-AZ_BLOB_ACCOUNT_URL+sas"),
    pytest.param(_legacy_url_slash_question_sas, "sas", id="env-AZ_BLOB_ACCOUNT_URL-slash-sas"),
    pytest.param(_azure_connection_string_env, "shared-key", id="env-AZURE_STORAGE_CONN_STR"),
    pytest.param(_azure_account_and_key_env, "shared-key", id="env-AZURE_STORAGE_ACCOUNT+KEY"),
    pytest.param(_azure_sas_token_env, "sas", id="env-AZURE_STORAGE_SAS_TOKEN"),
    pytest.param(_settings_beat_legacy_env, "shared-key", id="settings-before-legacy-env"),
]


@pytest.mark.parametrize(("setup", "expected_auth"), MODES)
def test_credential_mode_round_trip(
    setup: ModeSetup,
    expected_auth: str,
    azurite: Azurite,
    container: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    recorder: RequestRecorder,
) -> None:
    settings, env = setup(azurite, container)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    provider = build_provider(tmp_path, **settings)

    assert_round_trip(provider, azurite.service_client(), container, recorder)

    assert recorder.requests, "the plugin sent no request through azure-core"
    assert recorder.auth_kinds() == {expected_auth}


def test_anonymous_mode_reads_a_public_container(
    azurite: Azurite, tmp_path: Path, recorder: RequestRecorder
) -> None:
    service = azurite.service_client()
    name = f"pub-{uuid.uuid4().hex[:12]}"
    service.create_container(name, public_access="container")
    try:
        service.get_blob_client(name, "open/data.txt").upload_blob(b"public bytes")
        recorder.clear()
        provider = build_provider(
            tmp_path, endpoint_url=azurite.blob_endpoint, credential_mode="anonymous"
        )
        obj = provider.object(f"az://{name}/open/data.txt")

        assert asyncio.run(obj.managed_exists())
        asyncio.run(obj.managed_retrieve())

        assert obj.local_path().read_bytes() == b"public bytes"
        assert recorder.auth_kinds() == {"anonymous"}
    finally:
        service.delete_container(name)


def test_sas_in_the_query_url_needs_no_settings(
    azurite: Azurite, container: str, tmp_path: Path, recorder: RequestRecorder
) -> None:
    with recorder.paused():
        azurite.service_client().get_blob_client(container, "q/x.txt").upload_blob(b"by url")
    sas = container_sas(azurite, container, read=True, list=True)
    query = f"{azurite.blob_endpoint}/{container}/q/x.txt?{sas}"
    provider = build_provider(tmp_path)
    obj = provider.object(query)

    assert asyncio.run(obj.managed_exists())
    asyncio.run(obj.managed_retrieve())

    assert obj.local_path().read_bytes() == b"by url"
    assert recorder.auth_kinds() == {"sas"}
    signature = sas.split("sig=")[1].split("&")[0]
    assert signature not in provider.safe_print(query)
    assert signature not in str(obj.local_path())


# -- bearer tokens (workload / managed identity) ------------------------------------------------
# A second account on the https Azurite, for queries that name an account of their own.
OTHER_ACCOUNT = "otheraccount"
OTHER_ACCOUNT_KEY = "b3RoZXItYWNjb3VudC1rZXktZm9yLWF6dXJpdGUtdGVzdHMtb25seS0wMDAwMDAwMA=="


@dataclass
class OAuthAzurite:
    server: Azurite
    tls: TlsFiles

    def service_client(self):
        return self.server.service_client(connection_verify=str(self.tls.ca_file))

    def other_account_url(self) -> str:
        return f"https://127.0.0.1:{self.server.port}/{OTHER_ACCOUNT}"

    def other_account_client(self):
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient(
            self.other_account_url(),
            credential={"account_name": OTHER_ACCOUNT, "account_key": OTHER_ACCOUNT_KEY},
            connection_verify=str(self.tls.ca_file),
        )


@pytest.fixture(scope="module")
def oauth_azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OAuthAzurite]:
    tls = make_server_tls(tmp_path_factory.mktemp("tls"))
    accounts = f"{DEV_ACCOUNT_NAME}:{DEV_ACCOUNT_KEY};{OTHER_ACCOUNT}:{OTHER_ACCOUNT_KEY}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AZURITE_ACCOUNTS", accounts)  # read by Azurite at start only
        server = start_azurite(
            tmp_path_factory.mktemp("azurite-oauth"),
            cert_file=tls.cert_file,
            key_file=tls.key_file,
            oauth=True,
        )
    yield OAuthAzurite(server, tls)
    server.stop()


@pytest.fixture
def oauth_container(oauth_azurite: OAuthAzurite, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for name, value in oauth_azurite.tls.client_env().items():
        monkeypatch.setenv(name, value)
    name = f"o-{uuid.uuid4().hex[:20]}"
    service = oauth_azurite.service_client()
    service.create_container(name)
    yield name
    service.delete_container(name)


@pytest.mark.parametrize(
    ("settings", "expected_client_id"),
    [
        pytest.param(
            {"credential_mode": "identity", "client_id": "11111111-2222-3333-4444-555555555555"},
            "11111111-2222-3333-4444-555555555555",
            id="identity-with-client-id",
        ),
        pytest.param({}, None, id="auto-falls-back-to-identity"),
    ],
)
def test_bearer_token_round_trip(
    settings: dict[str, str],
    expected_client_id: str | None,
    oauth_azurite: OAuthAzurite,
    oauth_container: str,
    identity_factory: FakeIdentityFactory,
    tmp_path: Path,
    recorder: RequestRecorder,
) -> None:
    identity_factory.hand_out_tokens()
    provider = build_provider(tmp_path, endpoint_url=oauth_azurite.server.blob_endpoint, **settings)

    assert_round_trip(provider, oauth_azurite.service_client(), oauth_container, recorder)

    assert recorder.auth_kinds() == {"bearer"}
    assert identity_factory.client_ids == [expected_client_id]
    assert identity_factory.requested_scopes() == {STORAGE_SCOPE}


def test_url_query_naming_another_account_falls_back_to_identity(
    oauth_azurite: OAuthAzurite,
    oauth_container: str,
    identity_factory: FakeIdentityFactory,
    tmp_path: Path,
    recorder: RequestRecorder,
) -> None:
    identity_factory.hand_out_tokens()
    with recorder.paused():
        other = oauth_azurite.other_account_client()
        other.create_container(oauth_container)
        other.get_blob_client(oauth_container, "in/data.txt").upload_blob(b"other account")
    provider = build_provider(
        tmp_path,
        endpoint_url=oauth_azurite.server.blob_endpoint,
        account_key=oauth_azurite.server.account_key,
    )
    default_obj = provider.object(f"az://{oauth_container}/nothing-here.txt")
    url_obj = provider.object(f"{oauth_azurite.other_account_url()}/{oauth_container}/in/data.txt")

    assert asyncio.run(default_obj.managed_exists()) is False
    assert asyncio.run(url_obj.managed_exists())
    asyncio.run(url_obj.managed_retrieve())

    assert url_obj.local_path().read_bytes() == b"other account"
    by_account = {(f"/{OTHER_ACCOUNT}/" in r.url, r.auth) for r in recorder.requests}
    assert by_account == {(False, "shared-key"), (True, "bearer")}
    assert identity_factory.client_ids == [None]


def test_untrusted_server_certificate_is_reported_not_bypassed(
    oauth_azurite: OAuthAzurite,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    recorder: RequestRecorder,
) -> None:
    for name in oauth_azurite.tls.client_env():
        monkeypatch.delenv(name, raising=False)
    provider = build_provider(
        tmp_path,
        endpoint_url=oauth_azurite.server.blob_endpoint,
        account_key=oauth_azurite.server.account_key,
        retries=0,
    )
    obj = provider.object("az://any-container/x.txt")

    with pytest.raises(WorkflowError) as raised:
        asyncio.run(obj.managed_exists())

    message = str(raised.value)
    assert oauth_azurite.server.blob_endpoint in message
    assert "certificate" in message.lower(), message
    assert len(recorder.requests) == 1


def test_expired_bearer_token_is_refused_with_a_clear_error(
    oauth_azurite: OAuthAzurite,
    oauth_container: str,
    identity_factory: FakeIdentityFactory,
    tmp_path: Path,
    recorder: RequestRecorder,
) -> None:
    identity_factory.hand_out_tokens(lifetime=-600)
    provider = build_provider(
        tmp_path, endpoint_url=oauth_azurite.server.blob_endpoint, credential_mode="identity"
    )
    obj = provider.object(f"az://{oauth_container}/any.txt")

    with pytest.raises(WorkflowError) as raised:
        asyncio.run(obj.managed_exists())

    assert "identity" in str(raised.value).lower()
    assert recorder.auth_kinds() == {"bearer"}
    assert len(recorder.requests) <= 3, [r.url for r in recorder.requests]
