"""Bad input to the azblob plugin: each must fail fast with an error that names the
setting, value or object at fault, never prints a secret, never leaves a partial file
under a final name, and never turns into a retry storm.

Operations go through the ``managed_*`` methods, the entry points Snakemake itself
calls. Request counts come from a recorder on the azure-core transports.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import threading
import uuid
from collections.abc import Iterator
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

from localcluster.azurite import Azurite
from snakemake_storage_plugin_azblob import StorageProvider, StorageProviderSettings
from support.tokens import RequestRecorder

pytestmark = pytest.mark.timeout(60)

CREDENTIAL_ENV_PREFIXES = ("SNAKEMAKE_STORAGE_AZBLOB_", "AZ_BLOB_", "AZURE_STORAGE_")
WRONG_KEY = "V3JvbmdLZXlGb3JUZXN0c09ubHkwMTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI="


@pytest.fixture(autouse=True)
def clean_credential_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(CREDENTIAL_ENV_PREFIXES):
            monkeypatch.delenv(name)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> RequestRecorder:
    return RequestRecorder().install(monkeypatch)


def build_provider(tmp_path: Path, **settings: object):
    return StorageProvider(
        local_prefix=tmp_path / "staging",
        logger=logging.getLogger("test_storage_bad_input"),
        settings=StorageProviderSettings(**settings),
        is_default=True,
    )


def key_provider(tmp_path: Path, azurite: Azurite, **settings: object):
    return build_provider(
        tmp_path, endpoint_url=azurite.blob_endpoint, account_key=azurite.account_key, **settings
    )


def run(coroutine):
    return asyncio.run(coroutine)


def upload(azurite: Azurite, container: str, name: str, data: bytes) -> None:
    azurite.service_client().get_blob_client(container, name).upload_blob(data, overwrite=True)


def files_under(directory: Path) -> list[Path]:
    return [path for path in directory.rglob("*") if path.is_file()]


# -- container names ----------------------------------------------------------------------------
BAD_CONTAINER_NAMES = [
    "Upper",  # upper case
    "ab",  # shorter than 3
    "a" * 64,  # longer than 63
    "under_score",
    "-leading-dash",
    "trailing-dash-",
    "double--dash",
    "dot.ted",
]


@pytest.mark.parametrize("name", BAD_CONTAINER_NAMES)
def test_bad_container_name_is_refused_before_any_request(
    name: str, azurite: Azurite, tmp_path: Path, recorder: RequestRecorder
) -> None:
    provider = key_provider(tmp_path, azurite)
    verdict = StorageProvider.is_valid_query(f"az://{name}/data/x.txt")

    assert not verdict.valid
    assert name in verdict.reason
    assert "container" in verdict.reason.lower()
    assert provider.is_valid_query(f"az://{name}/data/x.txt").valid is False
    assert recorder.requests == []


@pytest.mark.parametrize("name", ["abc", "a" * 63, "my-container-01", "9lives"])
def test_good_container_names_and_wildcards_are_accepted(name: str) -> None:
    assert StorageProvider.is_valid_query(f"az://{name}/data/{{sample}}.txt").valid


# -- settings -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("settings", "named"),
    [
        pytest.param({"credential_mode": "password"}, "credential_mode", id="unknown-mode"),
        pytest.param({"credential_mode": "sas"}, "sas_token", id="sas-mode-without-token"),
        pytest.param({"credential_mode": "key"}, "account_key", id="key-mode-without-key"),
        pytest.param({"account_key": "not base64 !!"}, "account_key", id="key-not-base64"),
        pytest.param({"max_concurrency": 0}, "max_concurrency", id="zero-concurrency"),
        pytest.param({"retries": -1}, "retries", id="negative-retries"),
    ],
)
def test_bad_setting_is_named_before_any_request(
    settings: dict[str, object],
    named: str,
    azurite: Azurite,
    tmp_path: Path,
    recorder: RequestRecorder,
) -> None:
    with pytest.raises((WorkflowError, ValueError)) as raised:
        provider = build_provider(tmp_path, endpoint_url=azurite.blob_endpoint, **settings)
        run(provider.object("az://some-container/x.txt").managed_exists())

    message = str(raised.value)
    assert named in message or named.replace("_", "-") in message
    assert "not base64 !!" not in message
    assert recorder.requests == []


def test_settings_repr_shows_no_secret() -> None:
    settings = StorageProviderSettings(
        endpoint_url="https://acct.blob.core.windows.net/?sv=1&sig=ENDPOINTSECRET",
        account_key=WRONG_KEY,
        sas_token="sv=1&sig=SASSECRET",
        connection_string="AccountName=acct;AccountKey=CONNSECRET",
    )

    text = repr(settings)
    for secret in ("ENDPOINTSECRET", WRONG_KEY, "SASSECRET", "CONNSECRET"):
        assert secret not in text


def test_sas_pasted_without_question_mark_is_refused_without_echoing_it(
    recorder: RequestRecorder, tmp_path: Path
) -> None:
    url = "https://acct.blob.core.windows.net/sv=2022-11-02&ss=b&sig=SIGNATURESECRET"

    with pytest.raises(WorkflowError) as raised:
        build_provider(tmp_path, endpoint_url=url)

    message = str(raised.value)
    assert "endpoint_url" in message
    assert "SIGNATURESECRET" not in message
    assert recorder.requests == []


# -- credentials rejected by the server ------------------------------------------------------
def test_wrong_account_key_fails_fast_naming_the_mode_without_printing_the_key(
    azurite: Azurite, container: str, tmp_path: Path, recorder: RequestRecorder
) -> None:
    upload(azurite, container, "data/x.txt", b"x")
    recorder.clear()
    provider = build_provider(tmp_path, endpoint_url=azurite.blob_endpoint, account_key=WRONG_KEY)
    obj = provider.object(f"az://{container}/data/x.txt")

    with pytest.raises(WorkflowError) as raised:
        run(obj.managed_exists())

    message = str(raised.value)
    assert re.search(r"account.key", message, re.I), message
    assert "403" in message or "authenticat" in message.lower(), message
    assert WRONG_KEY not in message and WRONG_KEY[:16] not in message
    assert len(recorder.requests) == 1, "a refused credential must not be retried"


def test_wrong_key_on_store_leaves_nothing_in_the_container(
    azurite: Azurite, container: str, tmp_path: Path, recorder: RequestRecorder
) -> None:
    provider = build_provider(tmp_path, endpoint_url=azurite.blob_endpoint, account_key=WRONG_KEY)
    obj = provider.object(f"az://{container}/out/result.txt")
    obj.local_path().parent.mkdir(parents=True, exist_ok=True)
    obj.local_path().write_bytes(b"result")

    with pytest.raises(WorkflowError) as raised:
        run(obj.managed_store())

    assert WRONG_KEY not in str(raised.value)
    attempts = len(recorder.requests)
    with recorder.paused():
        assert list(azurite.service_client().get_container_client(container).list_blobs()) == []
    assert 1 <= attempts <= 2, "a refused upload must not be retried"


def test_expired_sas_names_the_sas_and_its_expiry(
    azurite: Azurite, container: str, tmp_path: Path, recorder: RequestRecorder
) -> None:
    upload(azurite, container, "data/x.txt", b"x")
    expired = generate_account_sas(
        azurite.account_name,
        azurite.account_key,
        resource_types=ResourceTypes(service=True, container=True, object=True),
        permission=AccountSasPermissions(read=True, list=True),
        expiry=datetime.now(UTC) - timedelta(hours=1),
    )
    recorder.clear()
    provider = build_provider(tmp_path, endpoint_url=azurite.blob_endpoint, sas_token=expired)
    obj = provider.object(f"az://{container}/data/x.txt")

    with pytest.raises(WorkflowError) as raised:
        run(obj.managed_exists())

    message = str(raised.value)
    assert "sas" in message.lower(), message
    assert re.search(r"SAS expired", message), message
    signature = re.search(r"sig=([^&]+)", expired).group(1)
    assert signature not in message
    assert len(recorder.requests) == 1


def test_sas_without_read_permission_fails_retrieve_and_leaves_no_file(
    azurite: Azurite, container: str, tmp_path: Path, recorder: RequestRecorder
) -> None:
    upload(azurite, container, "data/x.txt", b"secret payload")
    write_only = generate_container_sas(
        azurite.account_name,
        container,
        account_key=azurite.account_key,
        permission=ContainerSasPermissions(write=True, create=True, add=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    recorder.clear()
    provider = build_provider(tmp_path, endpoint_url=azurite.blob_endpoint, sas_token=write_only)
    obj = provider.object(f"az://{container}/data/x.txt")

    with pytest.raises(WorkflowError) as raised:
        run(obj.managed_retrieve())

    message = str(raised.value)
    assert "sas" in message.lower(), message
    assert re.search(r"permission|403|authoriz", message, re.I), message
    assert files_under(tmp_path / "staging") == []
    assert len(recorder.requests) <= 2, [r.url for r in recorder.requests]


# -- missing things ----------------------------------------------------------------------------
def test_missing_container_reads_as_absent_and_retrieve_names_it(
    azurite: Azurite, tmp_path: Path, recorder: RequestRecorder
) -> None:
    missing = f"missing-{uuid.uuid4().hex[:12]}"
    provider = key_provider(tmp_path, azurite)
    obj = provider.object(f"az://{missing}/data/x.txt")

    assert run(obj.managed_exists()) is False
    with pytest.raises(WorkflowError) as raised:
        run(obj.managed_retrieve())

    assert missing in str(raised.value)
    assert files_under(tmp_path / "staging") == []
    assert len(recorder.requests) <= 4, [r.url for r in recorder.requests]


def test_missing_blob_reads_as_absent_and_retrieve_names_it(
    azurite: Azurite, container: str, tmp_path: Path, recorder: RequestRecorder
) -> None:
    upload(azurite, container, "data/present.txt", b"here")
    recorder.clear()
    provider = key_provider(tmp_path, azurite)
    obj = provider.object(f"az://{container}/data/absent.txt")

    assert run(obj.managed_exists()) is False
    with pytest.raises(WorkflowError) as raised:
        run(obj.managed_retrieve())

    assert f"{container}/data/absent.txt" in str(raised.value)
    assert files_under(tmp_path / "staging") == []
    assert len(recorder.requests) <= 6, [r.url for r in recorder.requests]


# -- unreachable endpoint ------------------------------------------------------------------------
def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def attempts_against_closed_port(tmp_path: Path, recorder: RequestRecorder, retries: int):
    port = closed_port()
    endpoint = f"http://127.0.0.1:{port}/devstoreaccount1"
    provider = build_provider(
        tmp_path / f"retries-{retries}",
        endpoint_url=endpoint,
        account_key=WRONG_KEY,
        retries=retries,
        retry_backoff=0.05,
        connect_timeout=2,
    )
    recorder.clear()
    with pytest.raises(WorkflowError) as raised:
        run(provider.object("az://some-container/data/x.txt").managed_exists())
    return port, str(raised.value), len(recorder.requests)


def test_unreachable_endpoint_fails_after_exactly_the_configured_retries(
    tmp_path: Path, recorder: RequestRecorder
) -> None:
    port, message, attempts_without_retry = attempts_against_closed_port(tmp_path, recorder, 0)
    _, _, attempts_with_two_retries = attempts_against_closed_port(tmp_path, recorder, 2)

    assert f"127.0.0.1:{port}" in message, message
    assert WRONG_KEY not in message
    assert attempts_without_retry >= 1
    assert attempts_with_two_retries == 3 * attempts_without_retry


class SilentServer:
    """Accepts connections on 127.0.0.1 and never answers: a hung endpoint."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.accepted.append(connection)

    def close(self) -> None:
        self.listener.close()
        for connection in self.accepted:
            connection.close()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def test_endpoint_that_never_answers_times_out_after_the_configured_retries(
    silent_server: SilentServer, tmp_path: Path, recorder: RequestRecorder
) -> None:
    endpoint = f"http://127.0.0.1:{silent_server.port}/devstoreaccount1"
    provider = build_provider(
        tmp_path,
        endpoint_url=endpoint,
        account_key=WRONG_KEY,
        retries=1,
        retry_backoff=0.05,
        read_timeout=0.5,
    )

    with pytest.raises(WorkflowError) as raised:
        run(provider.object("az://some-container/data/x.txt").managed_exists())

    assert f"127.0.0.1:{silent_server.port}" in str(raised.value)
    assert len(recorder.requests) == 2
