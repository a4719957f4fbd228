"""Storage under network faults: nothing is lost, nothing partial appears under a final name.

A fault-injecting proxy sits between the plugin and Azurite. Every scenario ends with
either verified content (checked against Azurite directly, not through the proxy) or a
clear error after the configured retries, and the previous version of a blob intact.
The figures (faults injected, retries seen) are collected into ``CHAOS_REPORT`` for
docs/reliability.md.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from snakemake_interface_common.exceptions import WorkflowError

from localcluster.azurite import Azurite
from localcluster.testing import wait_until
from snakemake_storage_plugin_azblob import StorageProvider, StorageProviderSettings
from support.faultproxy import Fault, FaultProxy

pytestmark = pytest.mark.chaos

FULL = os.environ.get("CHAOS_SCALE") == "full"
BIG_FILE_MIB = 48 if FULL else 12
DIRECTORY_MEMBERS = 200 if FULL else 40
RETRIES = 4


@pytest.fixture
def proxy(azurite: Azurite) -> Iterator[FaultProxy]:
    with FaultProxy(azurite.port) as running:
        yield running


def make_provider(tmp_path: Path, azurite: Azurite, port: int, **overrides) -> StorageProvider:
    settings = StorageProviderSettings(
        endpoint_url=f"http://127.0.0.1:{port}/{azurite.account_name}",
        account_key=azurite.account_key,
        retries=overrides.pop("retries", RETRIES),
        retry_backoff=overrides.pop("retry_backoff", 0.05),
        read_timeout=overrides.pop("read_timeout", 3.0),
        connect_timeout=overrides.pop("connect_timeout", 3.0),
        block_size=overrides.pop("block_size", 1024 * 1024),
        **overrides,
    )
    return StorageProvider(
        local_prefix=tmp_path / "local-prefix",
        logger=logging.getLogger("chaos"),
        settings=settings,
    )


def write_random(path: Path, size: int, seed: int) -> str:
    """Write ``size`` pseudo-random bytes in chunks; return their MD5."""
    digest = hashlib.md5()
    block = hashlib.sha512(str(seed).encode()).digest() * 2048  # 128 KiB
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        written = 0
        counter = 0
        while written < size:
            chunk = (counter.to_bytes(8, "little") + block)[: size - written]
            out.write(chunk)
            digest.update(chunk)
            written += len(chunk)
            counter += 1
    return digest.hexdigest()


def blob_md5(azurite: Azurite, container: str, name: str) -> str:
    """MD5 of the blob's bytes as Azurite holds them (read directly, not through the proxy)."""
    digest = hashlib.md5()
    stream = azurite.service_client().get_blob_client(container, name).download_blob()
    for chunk in stream.chunks():
        digest.update(chunk)
    return digest.hexdigest()


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_upload_survives_503_bursts_and_resets(tmp_path, azurite, container, proxy, chaos_record):
    provider = make_provider(tmp_path, azurite, proxy.port)
    obj = provider.object(f"az://{container}/big/data.bin")
    expected = write_random(obj.local_path(), BIG_FILE_MIB * 1024 * 1024, seed=1)

    proxy.add_fault(Fault("status", count=2, method="PUT", status=503, retry_after=0))
    proxy.add_fault(Fault("reset_request", count=1, method="PUT"))
    proxy.add_fault(Fault("status", count=1, method="PUT", status=500, retry_after=None))
    obj.store_object()

    assert proxy.stats.faults_injected == 4
    assert blob_md5(azurite, container, "big/data.bin") == expected
    chaos_record(faults=4, requests=proxy.stats.requests, outcome="verified", lost=0)
    assert obj.checksum() == f"md5:{expected}"


def test_download_survives_resets_mid_body_and_stalls(
    tmp_path, azurite, container, proxy, chaos_record
):
    uploader = make_provider(tmp_path / "up", azurite, azurite.port)
    up = uploader.object(f"az://{container}/dl/data.bin")
    expected = write_random(up.local_path(), BIG_FILE_MIB * 1024 * 1024, seed=2)
    up.store_object()

    provider = make_provider(tmp_path / "down", azurite, proxy.port, read_timeout=1.0)
    obj = provider.object(f"az://{container}/dl/data.bin")
    proxy.add_fault(Fault("reset_response", count=2, method="GET", after_bytes=300_000))
    proxy.add_fault(Fault("stall", count=1, method="GET", seconds=2.5))
    obj.retrieve_object()

    assert proxy.stats.faults_injected == 3
    digest = hashlib.md5(obj.local_path().read_bytes()).hexdigest()
    assert digest == expected
    assert files_under(obj.local_path().parent) == [obj.local_path()], "no temporary left"
    chaos_record(faults=3, requests=proxy.stats.requests, outcome="verified", lost=0)


def test_download_gives_up_cleanly_after_retries(tmp_path, azurite, container, proxy, chaos_record):
    azurite.service_client().get_blob_client(container, "gone/data.bin").upload_blob(
        b"x" * 4_000_000
    )
    provider = make_provider(tmp_path, azurite, proxy.port, retries=2)
    obj = provider.object(f"az://{container}/gone/data.bin")
    obj.local_path().parent.mkdir(parents=True, exist_ok=True)
    proxy.add_fault(Fault("status", count=1000, method="GET", status=503, retry_after=0))

    with pytest.raises(WorkflowError) as failure:
        obj.retrieve_object()

    message = str(failure.value)
    assert "gone/data.bin" in message
    assert azurite.account_key not in message
    # 1 try + 2 retries for the request that failed; nothing more hammering the service.
    assert 3 <= proxy.stats.faults_injected <= 6
    assert files_under(tmp_path / "local-prefix") == [], "no partial local file"
    chaos_record(faults=proxy.stats.faults_injected, outcome="clear error", partial_files=0)


def test_failed_upload_keeps_previous_version(tmp_path, azurite, container, proxy, chaos_record):
    blob = azurite.service_client().get_blob_client(container, "keep/data.bin")
    blob.upload_blob(b"version one\n" * 1000)
    previous = blob_md5(azurite, container, "keep/data.bin")

    provider = make_provider(tmp_path, azurite, proxy.port, retries=1)
    obj = provider.object(f"az://{container}/keep/data.bin")
    write_random(obj.local_path(), 6 * 1024 * 1024, seed=3)
    # Blocks get through, but committing the block list never does.
    proxy.add_fault(Fault("status", count=1000, method="PUT", path_pattern="comp=blocklist"))

    with pytest.raises(WorkflowError):
        obj.store_object()

    assert blob_md5(azurite, container, "keep/data.bin") == previous
    chaos_record(faults=proxy.stats.faults_injected, outcome="clear error, old blob intact")


def test_directory_round_trip_under_faults(tmp_path, azurite, container, proxy, chaos_record):
    provider = make_provider(tmp_path / "up", azurite, proxy.port)
    obj = provider.object(f"az://{container}/tree")
    root = obj.local_path()
    expected = {}
    for index in range(DIRECTORY_MEMBERS):
        member = root / f"part{index % 7}" / f"file{index}.txt"
        expected[member.relative_to(root).as_posix()] = write_random(member, 1000 + index, index)

    # A burst may land on one request in a row, so each burst stays within the retries.
    proxy.add_fault(Fault("status", count=RETRIES - 1, method="PUT", retry_after=0))
    proxy.add_fault(Fault("reset_request", count=1, method="PUT"))
    obj.store_object()

    down = make_provider(tmp_path / "down", azurite, proxy.port).object(f"az://{container}/tree")
    proxy.add_fault(Fault("reset_response", count=1, method="GET", after_bytes=100))
    proxy.add_fault(Fault("status", count=RETRIES - 1, method="GET", retry_after=0))
    down.retrieve_object()

    got = {
        p.relative_to(down.local_path()).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
        for p in files_under(down.local_path())
    }
    assert got == expected
    assert proxy.stats.faults_injected == 2 * RETRIES
    chaos_record(faults=2 * RETRIES, members=DIRECTORY_MEMBERS, outcome="verified", lost=0)


UPLOADER = textwrap.dedent(
    """
    import logging, sys
    from pathlib import Path
    from snakemake_storage_plugin_azblob import StorageProvider, StorageProviderSettings
    endpoint, key, query, prefix = sys.argv[1:5]
    provider = StorageProvider(
        local_prefix=Path(prefix), logger=logging.getLogger(),
        settings=StorageProviderSettings(endpoint_url=endpoint, account_key=key,
                                         block_size=256 * 1024, max_concurrency=1),
    )
    obj = provider.object(query)
    print("uploading", flush=True)
    obj.store_object()
    print("done", flush=True)
    """
)


def test_killed_uploader_leaves_previous_version(tmp_path, azurite, container, proxy, chaos_record):
    blob = azurite.service_client().get_blob_client(container, "killed/data.bin")
    blob.upload_blob(b"the previous version\n" * 500)
    previous = blob_md5(azurite, container, "killed/data.bin")

    prefix = tmp_path / "prefix"
    local = prefix / container / "killed" / "data.bin"
    write_random(local, 16 * 1024 * 1024, seed=4)
    proxy.latency = 0.05  # slow enough that the kill lands mid-upload
    env = {**os.environ, "SNAKEMAKE_STORAGE_AZBLOB_ACCOUNT_KEY": azurite.account_key}
    uploader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            UPLOADER,
            f"http://127.0.0.1:{proxy.port}/{azurite.account_name}",
            azurite.account_key,
            f"az://{container}/killed/data.bin",
            str(prefix),
        ],
        stdout=subprocess.PIPE,
        env=env,
    )
    assert uploader.stdout is not None
    assert uploader.stdout.readline().strip() == b"uploading"
    wait_until(lambda: proxy.stats.requests >= 6, "six requests of the upload", timeout=60)
    uploader.send_signal(signal.SIGKILL)
    uploader.wait()

    assert uploader.returncode == -signal.SIGKILL
    assert b"done" not in uploader.stdout.read(), "the kill must land mid-upload"
    assert blob_md5(azurite, container, "killed/data.bin") == previous
    chaos_record(requests_before_kill=proxy.stats.requests, outcome="old blob intact")
