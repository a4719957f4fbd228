"""Request budgets for metadata, measured by the provider's RequestLog.

Snakemake reads storage metadata through its IOCache while it builds the DAG: one
``inventory`` per folder, then exists/mtime/size from the cache. These tests drive
Snakemake's own ``_IOFile`` code paths against Azurite and count every HTTP request.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest
from snakemake.io import IOCache, IOFile, flag

from snakemake_storage_plugin_azblob import StorageProvider
from support.azurite import Azurite

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


@pytest.fixture(scope="module")
def folder_container(azurite: Azurite) -> Iterator[str]:
    """A container holding FOLDER_SIZE blobs in reads/, shared by this module's tests."""
    name = f"t-{uuid.uuid4().hex[:20]}"
    service = azurite.service_client()
    service.create_container(name)
    names = [f"reads/sample{i:04d}.fq" for i in range(FOLDER_SIZE)]
    upload_many(azurite, name, [*names, "elsewhere/other.txt"])
    yield name
    service.delete_container(name)


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
