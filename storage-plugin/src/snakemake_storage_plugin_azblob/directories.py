"""Directories: a blob name prefix ``NAME/`` whose members are transferred in parallel.

Each member moves over one connection. Small members are bound by round trips, not
bandwidth, so up to ``MEMBER_FANOUT * max_concurrency`` of them move at once; what they
hold in memory is kept within what ``max_concurrency`` large member uploads hold (see
``member_budget``). Large uploads (two blocks each) therefore move ``max_concurrency`` at
a time, large downloads (one block each) twice as many, in the same memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path
from typing import TypeVar

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import ContainerClient, StandardBlobTier

from snakemake_storage_plugin_azblob.budget import ByteBudget
from snakemake_storage_plugin_azblob.listing import BlobEntry
from snakemake_storage_plugin_azblob.transfer import (
    choose_block_size,
    download_file,
    upload_file,
)

T = TypeVar("T")

MEMBER_FANOUT = 4
# A member upload holds up to two blocks (one being sent, the next one read); a member
# download holds one.
UPLOAD_BLOCKS_HELD = 2


def member_budget(block_size: int | None, max_concurrency: int) -> ByteBudget:
    """Memory that ``max_concurrency`` large member uploads would hold at once."""
    block = choose_block_size(0, block_size)
    return ByteBudget(max_concurrency * UPLOAD_BLOCKS_HELD * block)


def member_threads(max_concurrency: int) -> int:
    """Member transfers run at once at most (small members; the budget limits large ones)."""
    return MEMBER_FANOUT * max_concurrency


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
    tier: StandardBlobTier | None = None,
) -> int:
    """Upload every file below ``directory`` to ``blob_prefix/RELATIVE``; return the count."""
    members = local_members(directory)
    budget = member_budget(block_size, max_concurrency)

    def upload(member: tuple[Path, str]) -> None:
        path, relative = member
        size = path.stat().st_size
        held = min(size, UPLOAD_BLOCKS_HELD * choose_block_size(size, block_size))
        with budget.hold(held):
            upload_file(
                container.get_blob_client(f"{blob_prefix}/{relative}"),
                path,
                block_size=block_size,
                max_concurrency=1,
                tier=tier,
            )

    run_bounded(members, upload, member_threads(max_concurrency))
    return len(members)


def download_directory(
    container: ContainerClient,
    members: list[BlobEntry],
    blob_prefix: str,
    directory: Path,
    *,
    max_concurrency: int,
    label: str,
    block_size: int | None = None,
) -> None:
    """Download ``members`` (blobs under ``blob_prefix/``) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    root = directory.resolve()
    budget = member_budget(block_size, max_concurrency)
    range_size = choose_block_size(0, block_size)

    def download(entry: BlobEntry) -> None:
        relative = entry.name[len(blob_prefix) + 1 :]
        target = (directory / relative).resolve()
        if root not in target.parents:
            raise ValueError(f"member '{entry.name}' of {label} would land outside {directory}")
        with budget.hold(min(entry.size, range_size)):
            download_file(
                container.get_blob_client(entry.name),
                target,
                max_concurrency=1,
                label=f"{label} (member {relative})",
            )

    run_bounded(members, download, member_threads(max_concurrency))


def delete_blobs(container: ContainerClient, names: list[str], max_concurrency: int) -> None:
    def delete(name: str) -> None:
        with suppress(ResourceNotFoundError):  # already gone: what removing it was for
            container.delete_blob(name, delete_snapshots="include")

    run_bounded(names, delete, max_concurrency)


def delete_folders(container: ContainerClient, names: list[str], max_concurrency: int) -> None:
    """Delete the directory entries of a hierarchical-namespace account, deepest first:
    Delete Blob removes a directory there only once it is empty."""
    by_depth: dict[int, list[str]] = {}
    for name in names:
        by_depth.setdefault(name.count("/"), []).append(name)
    for depth in sorted(by_depth, reverse=True):
        delete_blobs(container, by_depth[depth], max_concurrency)
