"""Directories (blob prefixes), touch and candidate listing for glob_wildcards."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from snakemake.io import IOCache, glob_wildcards

from localcluster.azurite import Azurite
from snakemake_storage_plugin_azblob import StorageProvider

from .conftest import ProviderFactory

TREE = {
    "top.txt": b"top",
    "a/one.txt": b"one" * 100,
    "a/b/two.bin": bytes(range(256)) * 4,
    "a/b/c/three.txt": b"",
    ".hidden": b"dot",
}


def write_tree(root: Path) -> None:
    for relative, data in TREE.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "empty-subdir").mkdir()


def read_tree(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file()
    }


def blob_names(azurite: Azurite, container: str, prefix: str = "") -> list[str]:
    client = azurite.service_client().get_container_client(container)
    return sorted(b.name for b in client.list_blobs(name_starts_with=prefix or None))


def test_directory_round_trip_with_nested_members(
    make_provider: ProviderFactory, azurite: Azurite, container: str
) -> None:
    writer = make_provider(max_concurrency=3)
    obj = writer.object(f"az://{container}/results/tree")
    write_tree(obj.local_path())

    obj.store_object()

    assert blob_names(azurite, container) == sorted(f"results/tree/{name}" for name in TREE)

    reader = make_provider().object(f"az://{container}/results/tree")
    assert reader.exists()
    assert reader.size() == 0
    assert reader.local_footprint() == sum(len(data) for data in TREE.values())
    assert reader.checksum() is None
    newest = max(
        p.last_modified.timestamp()
        for p in azurite.service_client().get_container_client(container).list_blobs()
    )
    assert reader.mtime() == newest
    assert reader.provider.request_log.total == 2  # the 404 on the name, then one listing

    reader.retrieve_object()

    assert read_tree(reader.local_path()) == TREE


def test_directory_remove_deletes_every_member_only(
    provider: StorageProvider, azurite: Azurite, container: str
) -> None:
    keep = provider.object(f"az://{container}/results/tree-sibling.txt")
    keep.local_path().parent.mkdir(parents=True, exist_ok=True)
    keep.local_path().write_bytes(b"stays")
    keep.store_object()
    obj = provider.object(f"az://{container}/results/tree")
    write_tree(obj.local_path())
    obj.store_object()

    obj.remove()

    assert not obj.exists()
    assert blob_names(azurite, container) == ["results/tree-sibling.txt"]


def test_touch_moves_mtime_forward_for_files_and_directories(
    provider: StorageProvider, container: str
) -> None:
    file_obj = provider.object(f"az://{container}/t/file.txt")
    file_obj.local_path().parent.mkdir(parents=True, exist_ok=True)
    file_obj.local_path().write_bytes(b"content")
    file_obj.store_object()
    dir_obj = provider.object(f"az://{container}/t/dir")
    write_tree(dir_obj.local_path())
    dir_obj.store_object()
    before = (file_obj.mtime(), dir_obj.mtime())
    # Last-Modified has one-second resolution.
    time.sleep(1.1)

    file_obj.touch()
    dir_obj.touch()

    assert file_obj.mtime() > before[0]
    assert dir_obj.mtime() > before[1]
    assert file_obj.size() == len(b"content")
    file_obj.local_path().unlink()
    file_obj.retrieve_object()
    assert file_obj.local_path().read_bytes() == b"content"


def test_inventory_reports_subfolders_as_existing(
    provider: StorageProvider, container: str
) -> None:
    obj = provider.object(f"az://{container}/inv/tree")
    write_tree(obj.local_path())
    obj.store_object()
    cache = IOCache(max_wait_time=10)

    asyncio.run(obj.inventory(cache))

    assert cache.exists_in_storage[obj.cache_key()] is True
    assert obj.cache_key() not in cache.mtime
    assert cache.exists_in_storage.has_inventory == {obj.get_inventory_parent()}


def test_list_candidate_matches_returns_full_queries_for_glob_wildcards(
    provider: StorageProvider, azurite: Azurite, container: str
) -> None:
    service = azurite.service_client().get_container_client(container)
    for name in ["samples/a.fq", "samples/b.fq", "samples/c.txt", "other/d.fq"]:
        service.upload_blob(name, b"x")
    pattern_obj = provider.object(f"az://{container}/samples/{{sample}}.fq")

    matches = sorted(pattern_obj.list_candidate_matches())

    assert matches == [f"az://{container}/samples/{n}" for n in ("a.fq", "b.fq", "c.txt")]
    from snakemake.io import flag

    pattern = flag(pattern_obj.local_path(), "storage_object", pattern_obj)
    assert sorted(glob_wildcards(pattern).sample) == ["a", "b"]


def test_url_form_candidates_keep_the_url_form(
    provider: StorageProvider, azurite: Azurite, container: str
) -> None:
    service = azurite.service_client().get_container_client(container)
    service.upload_blob("u/x1.txt", b"x")
    base = f"{azurite.blob_endpoint}/{container}"

    matches = provider.object(f"{base}/u/{{name}}.txt").list_candidate_matches()

    assert list(matches) == [f"{base}/u/x1.txt"]


def test_hierarchical_namespace_folder_placeholders_are_directories(
    make_provider: ProviderFactory, azurite: Azurite, container: str
) -> None:
    service = azurite.service_client().get_container_client(container)
    service.upload_blob("hns/dir", b"", metadata={"hdi_isfolder": "true"})
    service.upload_blob("hns/dir/sub", b"", metadata={"hdi_isfolder": "true"})
    service.upload_blob("hns/dir/sub/member.txt", b"member")
    obj = make_provider().object(f"az://{container}/hns/dir")

    obj.retrieve_object()

    assert obj.exists()
    assert obj.local_footprint() == len(b"member")

    assert read_tree(obj.local_path()) == {"sub/member.txt": b"member"}
    cache = IOCache(max_wait_time=10)
    asyncio.run(obj.inventory(cache))
    assert cache.exists_in_storage[obj.cache_key()] is True
    assert obj.cache_key() not in cache.size


def hierarchical_directory(azurite: Azurite, container: str, root: str) -> None:
    """What a listing of a hierarchical-namespace account shows for ROOT holding one file
    two levels down: directory entries (marked hdi_isfolder) and the file."""
    service = azurite.service_client().get_container_client(container)
    for folder in (root, f"{root}/sub", f"{root}/sub/deeper"):
        service.upload_blob(folder, b"", metadata={"hdi_isfolder": "true"})
    service.upload_blob(f"{root}/sub/deeper/member.txt", b"member")
    service.upload_blob(f"{root}/top.txt", b"top")


def names_under(azurite: Azurite, container: str, prefix: str) -> list[str]:
    service = azurite.service_client().get_container_client(container)
    return [blob.name for blob in service.list_blobs(name_starts_with=prefix)]


def test_removing_a_hierarchical_directory_removes_its_directory_entries_too(
    make_provider: ProviderFactory, azurite: Azurite, container: str
) -> None:
    hierarchical_directory(azurite, container, "hns-rm/dir")
    obj = make_provider().object(f"az://{container}/hns-rm/dir")
    assert obj.exists()

    obj.remove()

    # Deepest first: Delete Blob removes a directory of such an account only when empty.
    assert names_under(azurite, container, "hns-rm/") == []
    assert obj.exists() is False


def test_a_directory_the_service_refuses_to_delete_as_a_blob_is_emptied_first(
    make_provider: ProviderFactory, azurite: Azurite, container: str
) -> None:
    from support.faultproxy import Fault, FaultProxy

    hierarchical_directory(azurite, container, "hns-409/dir")
    with FaultProxy(upstream_port=azurite.port) as proxy:
        # A hierarchical-namespace account answers Delete Blob on a directory that is
        # not empty with 409 Conflict; Azurite (flat) would just delete the entry.
        refusal = Fault("status", 1, "DELETE", r"hns-409/dir(\?|$)", status=409, retry_after=None)
        proxy.add_fault(refusal)
        provider = make_provider(endpoint_url=f"http://127.0.0.1:{proxy.port}/devstoreaccount1")

        provider.object(f"az://{container}/hns-409/dir").remove()

        assert proxy.stats.faults_injected == 1
    assert names_under(azurite, container, "hns-409/") == []
