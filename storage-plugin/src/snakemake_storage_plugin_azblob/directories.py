"""Directories: a blob name prefix ``NAME/`` whose members are transferred in parallel.

At most ``max_concurrency`` member files move at once; each member transfer uses one
connection, so the total stays within the same bound as a single-file transfer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from azure.storage.blob import ContainerClient

from snakemake_storage_plugin_azblob.errors import is_not_found
from snakemake_storage_plugin_azblob.listing import BlobEntry
from snakemake_storage_plugin_azblob.transfer import download_file, upload_file

T = TypeVar("T")


def run_bounded(items: Iterable[T], work: Callable[[T], object], max_concurrency: int) -> None:
    """Apply ``work`` to every item with at most ``max_concurrency`` threads; re-raise the
    first failure after cancelling what has not started."""
    items = list(items)
    if not items:
        return
    with ThreadPoolExecutor(max(1, min(max_concurrency, len(items)))) as pool:
        futures = [pool.submit(work, item) for item in items]
        try:
            for future in futures:
                future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def local_members(directory: Path) -> list[tuple[Path, str]]:
    """Files below ``directory`` with their '/'-separated relative names."""
    return sorted(
        (path, path.relative_to(directory).as_posix())
        for path in directory.rglob("*")
        if path.is_file()
    )


def upload_directory(
    container: ContainerClient,
    directory: Path,
    blob_prefix: str,
    *,
    block_size: int | None,
    max_concurrency: int,
) -> int:
    """Upload every file below ``directory`` to ``blob_prefix/RELATIVE``; return the count."""
    members = local_members(directory)

    def upload(member: tuple[Path, str]) -> None:
        path, relative = member
        upload_file(
            container.get_blob_client(f"{blob_prefix}/{relative}"),
            path,
            block_size=block_size,
            max_concurrency=1,
        )

    run_bounded(members, upload, max_concurrency)
    return len(members)


def download_directory(
    container: ContainerClient,
    members: list[BlobEntry],
    blob_prefix: str,
    directory: Path,
    *,
    max_concurrency: int,
    label: str,
) -> None:
    """Download ``members`` (blobs under ``blob_prefix/``) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    root = directory.resolve()

    def download(entry: BlobEntry) -> None:
        relative = entry.name[len(blob_prefix) + 1 :]
        target = (directory / relative).resolve()
        if root not in target.parents:
            raise ValueError(f"member '{entry.name}' of {label} would land outside {directory}")
        download_file(
            container.get_blob_client(entry.name),
            target,
            max_concurrency=1,
            label=f"{label} (member {relative})",
        )

    run_bounded(members, download, max_concurrency)


def delete_blobs(container: ContainerClient, names: list[str], max_concurrency: int) -> None:
    def delete(name: str) -> None:
        try:
            container.delete_blob(name, delete_snapshots="include")
        except Exception as e:
            if not is_not_found(e):
                raise

    run_bounded(names, delete, max_concurrency)
