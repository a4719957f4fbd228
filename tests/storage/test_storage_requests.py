"""Request budgets for metadata, measured by the provider's RequestLog.

Snakemake reads storage metadata through its IOCache while it builds the DAG: one
``inventory`` per folder, then exists/mtime/size from the cache. These tests drive
Snakemake's own ``_IOFile`` code paths against Azurite and count every HTTP request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest
from azure.core.pipeline.transport import HttpTransport
from snakemake.io import IOCache, IOFile, flag
from snakemake_interface_common.exceptions import WorkflowError

from localcluster.azurite import Azurite
from snakemake_storage_plugin_azblob import StorageProvider
from snakemake_storage_plugin_azblob.errors import AuthenticationFailed
from snakemake_storage_plugin_azblob.requestlog import REQUEST_LOG_ENV
from support.faultproxy import Fault, FaultProxy

from .conftest import ProviderFactory

FOLDER_SIZE = 1000


def upload_many(azurite: Azurite, container: str, names: list[str]) -> None:
    client = azurite.service_client().get_container_client(container)

    def put(name: str) -> None:
        client.upload_blob(name, name.encode(), overwrite=True)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, names))


def snakemake_files(provider: StorageProvider, queries: list[str], cache: IOCache):
    """IOFiles as Snakemake builds them for storage inputs, bound to ``cache``."""
    rule = SimpleNamespace(
        workflow=SimpleNamespace(iocache=cache), pathvars=SimpleNamespace(apply=lambda p: p)
    )
    files = []
    for query in queries:
        obj = provider.object(query)
        files.append(IOFile(flag(obj.local_path(), "storage_object", obj), rule=rule))
    return files


@contextlib.contextmanager
def container_holding(azurite: Azurite, names: list[str]) -> Iterator[str]:
    """A fresh container with one blob per name (its content is its name), then removed."""
    name = f"t-{uuid.uuid4().hex[:20]}"
    service = azurite.service_client()
    service.create_container(name)
    upload_many(azurite, name, names)
    try:
        yield name
    finally:
        service.delete_container(name)


@pytest.fixture(scope="module")
def folder_container(azurite: Azurite) -> Iterator[str]:
    """A container holding FOLDER_SIZE blobs in reads/, shared by this module's tests."""
    names = [f"reads/sample{i:04d}.fq" for i in range(FOLDER_SIZE)]
    with container_holding(azurite, [*names, "elsewhere/other.txt"]) as name:
        yield name


@pytest.fixture
def full_folder(folder_container: str) -> list[str]:
    return [f"az://{folder_container}/reads/sample{i:04d}.fq" for i in range(FOLDER_SIZE)]


def test_inventory_of_a_thousand_blobs_costs_one_listing_and_nothing_after(
    provider: StorageProvider, full_folder: list[str], folder_container: str
) -> None:
    container = folder_container
    cache = IOCache(max_wait_time=60)
    missing = f"az://{container}/reads/not-there.fq"
    files = snakemake_files(provider, [*full_folder, missing], cache)

    async def check_all():
        # Snakemake may start many inventories before the first one finishes.
        await asyncio.gather(*(f.inventory() for f in files))
        return [(await f.exists(), await f.mtime(), await f.size()) for f in files[:-1]], (
            await files[-1].exists()
        )

    answers, missing_exists = asyncio.run(check_all())

    assert provider.request_log.total <= 2, provider.request_log.snapshot()
    assert provider.request_log.count("GET list") == 1
    assert all(exists for exists, _, _ in answers)
    assert {size for _, _, size in answers} == {len(f"reads/sample{0:04d}.fq")}
    assert all(mtime.storage() and mtime.storage() > 0 for _, mtime, _ in answers)
    assert missing_exists is False


def test_objects_outside_an_inventoried_folder_are_not_answered_from_it(
    provider: StorageProvider, full_folder: list[str], folder_container: str
) -> None:
    container = folder_container
    cache = IOCache(max_wait_time=60)
    inside, outside = snakemake_files(
        provider, [full_folder[0], f"az://{container}/elsewhere/other.txt"], cache
    )

    async def check():
        await inside.inventory()
        before = provider.request_log.total
        await outside.inventory()
        return before, await outside.exists()

    before, exists = asyncio.run(check())

    assert before == 1
    assert exists is True
    assert provider.request_log.count("GET list") == 2


def test_exists_mtime_size_checksum_of_one_object_cost_one_request(
    provider: StorageProvider, azurite: Azurite, container: str
) -> None:
    upload_many(azurite, container, ["single/one.txt"])
    obj = provider.object(f"az://{container}/single/one.txt")

    assert obj.exists() is True
    assert obj.mtime() > 0
    assert obj.size() == len(b"single/one.txt")
    assert obj.checksum().startswith("md5:")
    assert provider.request_log.total == 1, provider.request_log.snapshot()


def test_missing_object_is_never_answered_from_memory(
    provider: StorageProvider, azurite: Azurite, container: str
) -> None:
    obj = provider.object(f"az://{container}/late/output.txt")

    assert obj.exists() is False
    first = provider.request_log.total
    upload_many(azurite, container, ["late/output.txt"])

    assert obj.exists() is True
    assert 1 <= first <= 2
    assert provider.request_log.total <= 2 * first


def test_missing_container_reads_as_absent_in_one_request(provider: StorageProvider) -> None:
    obj = provider.object("az://no-such-container-here/x/y.txt")

    assert obj.exists() is False
    assert provider.request_log.total == 1


def test_inventory_of_a_missing_container_marks_its_objects_absent(
    provider: StorageProvider,
) -> None:
    cache = IOCache(max_wait_time=60)
    (f,) = snakemake_files(provider, ["az://no-such-container-here/x/y.txt"], cache)

    async def check():
        await f.inventory()
        return await f.exists()

    assert asyncio.run(check()) is False
    assert provider.request_log.total == 1


def test_a_write_refreshes_what_the_provider_knows(
    provider: StorageProvider, container: str
) -> None:
    obj = provider.object(f"az://{container}/fresh/out.txt")
    assert obj.exists() is False
    obj.local_path().parent.mkdir(parents=True, exist_ok=True)
    obj.local_path().write_bytes(b"12345")

    obj.store_object()

    assert obj.exists() is True
    assert obj.size() == 5
    obj.remove()
    assert obj.exists() is False


# -- retries ------------------------------------------------------------------------------------
@pytest.fixture
def fault_proxy(azurite: Azurite) -> Iterator[FaultProxy]:
    with FaultProxy(upstream_port=azurite.port) as proxy:
        yield proxy


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Back-off and Retry-After waits the retry policy asks for (recorded, not slept)."""
    recorded: list[float] = []
    # The SDK wraps our transport for container and blob clients; both inherit this.
    monkeypatch.setattr(HttpTransport, "sleep", lambda self, seconds: recorded.append(seconds))
    return recorded


def proxied(make_provider: ProviderFactory, proxy: FaultProxy, azurite: Azurite, **settings):
    endpoint = f"http://127.0.0.1:{proxy.port}/{azurite.account_name}"
    return make_provider(endpoint_url=endpoint, **settings)


def put_blob(azurite: Azurite, container: str, name: str, data: bytes) -> None:
    azurite.service_client().get_blob_client(container, name).upload_blob(data, overwrite=True)


def test_throttling_is_retried_after_the_requested_wait(
    make_provider: ProviderFactory,
    fault_proxy: FaultProxy,
    azurite: Azurite,
    container: str,
    sleeps: list[float],
) -> None:
    put_blob(azurite, container, "r/x.txt", b"x")
    fault_proxy.add_fault(Fault("status", 2, method="HEAD", status=429, retry_after=7))
    provider = proxied(make_provider, fault_proxy, azurite)

    assert provider.object(f"az://{container}/r/x.txt").exists() is True

    assert provider.request_log.total == 3
    assert sleeps.count(7) == 2


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_retried_with_backoff(
    make_provider: ProviderFactory,
    fault_proxy: FaultProxy,
    azurite: Azurite,
    container: str,
    sleeps: list[float],
    status: int,
) -> None:
    put_blob(azurite, container, "r/y.txt", b"payload")
    fault_proxy.add_fault(Fault("status", 2, method="GET", status=status, retry_after=None))
    provider = proxied(make_provider, fault_proxy, azurite)
    obj = provider.object(f"az://{container}/r/y.txt")

    obj.retrieve_object()

    assert obj.local_path().read_bytes() == b"payload"
    assert provider.request_log.count("GET") == 3
    assert len([s for s in sleeps if s > 0]) == 1  # the first retry is immediate


def test_retries_stop_at_the_configured_count(
    make_provider: ProviderFactory,
    fault_proxy: FaultProxy,
    azurite: Azurite,
    container: str,
    sleeps: list[float],
) -> None:
    fault_proxy.add_fault(Fault("status", 10, method="HEAD", status=503, retry_after=None))
    provider = proxied(make_provider, fault_proxy, azurite, retries=2)

    with pytest.raises(WorkflowError, match="503"):
        provider.object(f"az://{container}/r/z.txt").exists()

    assert provider.request_log.total == 3


def test_refused_credentials_are_not_retried(
    make_provider: ProviderFactory,
    fault_proxy: FaultProxy,
    azurite: Azurite,
    container: str,
    sleeps: list[float],
) -> None:
    fault_proxy.add_fault(Fault("status", 5, method="HEAD", status=403, retry_after=None))
    provider = proxied(make_provider, fault_proxy, azurite)

    with pytest.raises(AuthenticationFailed) as raised:
        provider.object(f"az://{container}/r/secret.txt").exists()

    message = str(raised.value)
    assert "credential mode 'key'" in message
    assert "account_key" in message
    assert azurite.account_key not in message
    assert provider.request_log.total == 1
    assert sleeps == []


def test_connection_reset_mid_download_is_retried_and_verified(
    make_provider: ProviderFactory,
    fault_proxy: FaultProxy,
    azurite: Azurite,
    container: str,
    sleeps: list[float],
) -> None:
    data = bytes(range(256)) * 4096
    put_blob(azurite, container, "r/big.bin", data)
    fault_proxy.add_fault(Fault("reset_response", 1, method="GET", after_bytes=100_000))
    provider = proxied(make_provider, fault_proxy, azurite)
    obj = provider.object(f"az://{container}/r/big.bin")

    obj.retrieve_object()

    assert obj.local_path().read_bytes() == data
    assert provider.request_log.count("GET") == 2
    assert [p.name for p in obj.local_path().parent.iterdir()] == ["big.bin"]


def test_request_totals_are_written_at_exit_when_asked(
    azurite: Azurite, container: str, tmp_path: Path
) -> None:
    target = tmp_path / "requests.jsonl"
    script = (
        "import logging, pathlib\n"
        "from snakemake_storage_plugin_azblob import StorageProvider, StorageProviderSettings\n"
        "p = StorageProvider(local_prefix=pathlib.Path('prefix'), logger=logging.getLogger(),\n"
        f"    settings=StorageProviderSettings(endpoint_url={azurite.blob_endpoint!r},\n"
        f"    account_key={azurite.account_key!r}))\n"
        f"p.object('az://{container}/nothing/here.txt').exists()\n"
    )
    env = {**os.environ, REQUEST_LOG_ENV: str(target)}

    subprocess.run([sys.executable, "-c", script], check=True, env=env, cwd=tmp_path)

    (line,) = target.read_text().splitlines()
    record = json.loads(line)
    assert record["total"] == 2
    assert record["by_method"] == {"HEAD": 1, "GET": 1}


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A loopback port that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                accepted.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    server.close()


def test_read_timeout_is_applied_and_retried(
    make_provider: ProviderFactory, silent_server: int, sleeps: list[float]
) -> None:
    provider = make_provider(
        endpoint_url=f"http://127.0.0.1:{silent_server}/devstoreaccount1",
        read_timeout=0.5,
        retries=1,
    )

    with pytest.raises(WorkflowError) as raised:
        provider.object("az://quiet/x.txt").exists()

    assert "read timeout=0.5" in str(raised.value)
    assert f"127.0.0.1:{silent_server}" in str(raised.value)
    assert provider.request_log.total == 2
