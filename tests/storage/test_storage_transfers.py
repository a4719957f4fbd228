"""Transfers: block-wise parallel uploads with a stored MD5, verified atomic downloads."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest
from azure.storage.blob import ContentSettings
from snakemake_interface_common.exceptions import WorkflowError

from localcluster.azurite import Azurite
from snakemake_storage_plugin_azblob import StorageProvider
from snakemake_storage_plugin_azblob.transfer import (
    MAX_BLOCKS,
    MIB,
    IntegrityError,
    choose_block_size,
    temp_path_for,
)

from .conftest import ProviderFactory

LARGE_SIZE = 64 * MIB + 12_345


def write_pseudo_random(path: Path, size: int, seed: int) -> str:
    """Write ``size`` reproducible bytes chunk by chunk; return their MD5 hex digest."""
    generator = random.Random(seed)
    digest = hashlib.md5()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        remaining = size
        while remaining:
            chunk = generator.randbytes(min(MIB, remaining))
            digest.update(chunk)
            out.write(chunk)
            remaining -= len(chunk)
    return digest.hexdigest()


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as source:
        while chunk := source.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def files_under(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file()) if directory.exists() else []


@pytest.mark.parametrize(
    ("size", "configured", "expected"),
    [
        (0, None, 8 * MIB),
        (100 * MIB, None, 8 * MIB),
        (100 * MIB, 4 * MIB, 4 * MIB),
        # 50,000 blocks of 4 MiB hold 195 GiB; a 300 GiB file needs larger blocks.
        (300 * 1024 * MIB, 4 * MIB, 7 * MIB),
        (MAX_BLOCKS * 8 * MIB + 1, None, 9 * MIB),
    ],
)
def test_block_size_stays_within_fifty_thousand_blocks(
    size: int, configured: int | None, expected: int
) -> None:
    block = choose_block_size(size, configured)

    assert block == expected
    assert -(-size // block) <= MAX_BLOCKS


def test_file_beyond_azure_limits_is_refused() -> None:
    with pytest.raises(WorkflowError, match="block blob limit"):
        choose_block_size(MAX_BLOCKS * 4000 * MIB + 1, None)


def test_large_file_round_trips_in_parallel_blocks_with_its_md5(
    make_provider: ProviderFactory, azurite: Azurite, container: str
) -> None:
    provider = make_provider(max_concurrency=4)
    obj = provider.object(f"az://{container}/big/data.bin")
    expected_md5 = write_pseudo_random(obj.local_path(), LARGE_SIZE, seed=7)

    obj.store_object()

    blocks = -(-LARGE_SIZE // (8 * MIB))
    assert provider.request_log.count("PUT block") == blocks
    assert provider.request_log.count("PUT blocklist") == 1
    properties = (
        azurite.service_client().get_blob_client(container, "big/data.bin").get_blob_properties()
    )
    assert properties.size == LARGE_SIZE
    assert bytes(properties.content_settings.content_md5).hex() == expected_md5
    assert obj.checksum() == f"md5:{expected_md5}"

    reader = make_provider(max_concurrency=4).object(f"az://{container}/big/data.bin")
    reader.retrieve_object()

    assert md5_of(reader.local_path()) == expected_md5
    assert files_under(reader.local_path().parent) == [reader.local_path()]


def test_configured_block_size_is_used(make_provider: ProviderFactory, container: str) -> None:
    provider = make_provider(block_size=MIB, max_concurrency=2)
    obj = provider.object(f"az://{container}/blocks/three.bin")
    expected_md5 = write_pseudo_random(obj.local_path(), 2 * MIB + 10, seed=3)

    obj.store_object()

    assert provider.request_log.count("PUT block") == 3
    assert obj.checksum() == f"md5:{expected_md5}"


def corrupt_blob(azurite: Azurite, container: str, name: str, size: int) -> None:
    """A blob whose stored Content-MD5 belongs to other content."""
    data = random.Random(11).randbytes(size)
    blob = azurite.service_client().get_blob_client(container, name)
    blob.upload_blob(data, overwrite=True)
    wrong = hashlib.md5(data + b"tampered").digest()
    blob.set_http_headers(ContentSettings(content_md5=bytearray(wrong)))


@pytest.mark.parametrize("size", [1_000, 3 * MIB], ids=["single-request", "ranged-chunks"])
def test_blob_with_wrong_stored_md5_is_refused_and_leaves_no_file(
    make_provider: ProviderFactory, azurite: Azurite, container: str, size: int
) -> None:
    corrupt_blob(azurite, container, "bad/blob.bin", size)
    # A small block size makes the larger case download in several ranged requests.
    provider = make_provider(block_size=MIB)
    obj = provider.object(f"az://{container}/bad/blob.bin")

    with pytest.raises(IntegrityError, match="MD5"):
        obj.retrieve_object()

    assert provider.request_log.count("GET") == -(-size // MIB)
    assert files_under(provider.local_prefix) == []


def test_managed_retrieve_of_a_corrupt_blob_fails_cleanly(
    provider: StorageProvider, azurite: Azurite, container: str
) -> None:
    import asyncio

    corrupt_blob(azurite, container, "bad/managed.bin", 2_000)
    obj = provider.object(f"az://{container}/bad/managed.bin")

    with pytest.raises(WorkflowError) as raised:
        asyncio.run(obj.managed_retrieve())

    assert "MD5" in str(raised.value.args) or "MD5" in repr(raised.value)
    assert files_under(provider.local_prefix) == []


def test_existing_local_file_survives_a_failed_download(
    provider: StorageProvider, azurite: Azurite, container: str
) -> None:
    corrupt_blob(azurite, container, "bad/keep.bin", 500)
    obj = provider.object(f"az://{container}/bad/keep.bin")
    obj.local_path().parent.mkdir(parents=True, exist_ok=True)
    obj.local_path().write_bytes(b"previous version")

    with pytest.raises(IntegrityError):
        obj.retrieve_object()

    assert obj.local_path().read_bytes() == b"previous version"
    assert files_under(provider.local_prefix) == [obj.local_path()]


def test_store_creates_a_missing_container(provider: StorageProvider, azurite: Azurite) -> None:
    import uuid

    name = f"new-{uuid.uuid4().hex[:12]}"
    obj = provider.object(f"az://{name}/made/it.txt")
    obj.local_path().parent.mkdir(parents=True, exist_ok=True)
    obj.local_path().write_bytes(b"created")
    try:
        obj.store_object()

        blob = azurite.service_client().get_blob_client(name, "made/it.txt")
        assert blob.download_blob().readall() == b"created"
        assert provider.request_log.count("PUT container") == 1
    finally:
        azurite.service_client().delete_container(name)


def test_zero_byte_file_round_trips(provider: StorageProvider, container: str) -> None:
    obj = provider.object(f"az://{container}/empty/file")
    obj.local_path().parent.mkdir(parents=True, exist_ok=True)
    obj.local_path().write_bytes(b"")
    obj.store_object()
    obj.local_path().unlink()

    obj.retrieve_object()

    assert obj.local_path().read_bytes() == b""
    assert obj.size() == 0
    assert obj.checksum() == f"md5:{hashlib.md5(b'').hexdigest()}"


def test_cleanup_removes_leftovers_of_an_interrupted_download(
    provider: StorageProvider, container: str
) -> None:
    obj = provider.object(f"az://{container}/left/over.txt")
    local = obj.local_path()
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_bytes(b"complete")
    leftover = temp_path_for(local)
    leftover.write_bytes(b"half")
    unrelated = local.with_name("other.txt")
    unrelated.write_bytes(b"other")

    obj.cleanup()

    assert sorted(files_under(local.parent)) == sorted([local, unrelated])


def test_missing_container_that_cannot_be_created_is_named(
    make_provider: ProviderFactory, azurite: Azurite
) -> None:
    import uuid
    from datetime import UTC, datetime, timedelta

    from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

    objects_only = generate_account_sas(
        azurite.account_name,
        azurite.account_key,
        resource_types=ResourceTypes(object=True),
        permission=AccountSasPermissions(read=True, write=True, create=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    provider = make_provider(account_key=None, sas_token=objects_only)
    name = f"absent-{uuid.uuid4().hex[:12]}"
    obj = provider.object(f"az://{name}/x/y.txt")
    obj.local_path().parent.mkdir(parents=True, exist_ok=True)
    obj.local_path().write_bytes(b"data")

    with pytest.raises(WorkflowError) as raised:
        obj.store_object()

    message = str(raised.value)
    assert f"container '{name}' does not exist and could not be created" in message
    assert "credential mode 'sas'" in message
    assert "sig=" not in message
    assert name not in [c.name for c in azurite.service_client().list_containers()]


@pytest.mark.timeout(60)  # before the guard, reading the FIFO blocked forever
def test_a_named_pipe_is_never_read_as_an_upload(
    provider: StorageProvider, azurite: Azurite, container: str, caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    import os

    pipe = provider.object(f"az://{container}/piped/test.0.txt")
    pipe.local_path().parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(pipe.local_path())
    directory = provider.object(f"az://{container}/piped/dir")
    (directory.local_path()).mkdir(parents=True)
    (directory.local_path() / "kept.txt").write_bytes(b"kept")
    os.mkfifo(directory.local_path() / "stream")

    with caplog.at_level(logging.WARNING):
        pipe.store_object()
        directory.store_object()

    assert provider.request_log.count("PUT") == 1  # kept.txt only
    assert f"Not storing az://{container}/piped/test.0.txt" in caplog.text
    assert "named pipe (FIFO)" in caplog.text
    names = [b.name for b in azurite.service_client().get_container_client(container).list_blobs()]
    assert names == ["piped/dir/kept.txt"]
