"""Listing blobs: one folder level (for inventories) or a whole subtree (for directories).

Each list request returns up to 5,000 entries, so a folder of N blobs costs
ceil(N / 5000) requests. A missing container lists as empty.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobPrefix, BlobProperties, ContainerClient

PAGE_SIZE = 5000
# Accounts with a hierarchical namespace list their directories as empty placeholder blobs.
FOLDER_MARKER = "hdi_isfolder"


def is_folder_placeholder(properties: BlobProperties) -> bool:
    return (properties.metadata or {}).get(FOLDER_MARKER) == "true"


@dataclass(frozen=True)
class BlobEntry:
    name: str
    size: int
    mtime: float
    md5: bytes | None = None
    metadata: dict[str, str] | None = None
    tier: str | None = None  # access tier: Hot, Cool, Cold, Archive
    archive_status: str | None = None  # e.g. rehydrate-pending-to-hot

    @classmethod
    def from_properties(cls, properties: BlobProperties) -> BlobEntry:
        md5 = properties.content_settings.content_md5
        tier = properties.blob_tier
        return cls(
            name=properties.name,
            size=int(properties.size or 0),
            mtime=properties.last_modified.timestamp(),
            md5=bytes(md5) if md5 else None,
            metadata=dict(properties.metadata) if properties.metadata is not None else None,
            tier=str(getattr(tier, "value", tier)) if tier else None,
            archive_status=properties.archive_status or None,
        )


@dataclass(frozen=True)
class FolderListing:
    """Blobs directly in a folder and the names of its subfolders (without the '/')."""

    blobs: tuple[BlobEntry, ...] = ()
    subfolders: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.blobs and not self.subfolders


def list_folder(container: ContainerClient, prefix: str) -> FolderListing:
    """One level below ``prefix`` ('' or ending with '/')."""
    blobs: list[BlobEntry] = []
    subfolders: list[str] = []
    try:
        for item in container.walk_blobs(
            name_starts_with=prefix or None,
            include=["metadata"],
            delimiter="/",
            results_per_page=PAGE_SIZE,
        ):
            if isinstance(item, BlobPrefix):
                subfolders.append(item.name.rstrip("/"))
            elif is_folder_placeholder(item):
                subfolders.append(item.name)
            else:
                blobs.append(BlobEntry.from_properties(item))
    except ResourceNotFoundError:
        return FolderListing()
    return FolderListing(tuple(blobs), tuple(dict.fromkeys(subfolders)))


@dataclass(frozen=True)
class FolderPage:
    """One page of a folder's listing, in name order. Subfolders and folder placeholders
    count toward ``last_name`` but are not in ``blobs``."""

    blobs: tuple[BlobEntry, ...]
    last_name: str | None
    more: bool


def folder_pages(container: ContainerClient, prefix: str, page_size: int) -> Iterator[FolderPage]:
    """One level below ``prefix``, a page (one request) at a time, read lazily."""
    pages = container.walk_blobs(
        name_starts_with=prefix or None,
        include=["metadata"],
        delimiter="/",
        results_per_page=page_size,
    ).by_page()
    try:
        for page in pages:
            blobs: list[BlobEntry] = []
            last_name = None
            for item in page:
                last_name = item.name
                if not isinstance(item, BlobPrefix) and not is_folder_placeholder(item):
                    blobs.append(BlobEntry.from_properties(item))
            yield FolderPage(tuple(blobs), last_name, more=pages.continuation_token is not None)
    except ResourceNotFoundError:
        return


@dataclass(frozen=True)
class Subtree:
    """Every blob below a prefix, and the directory entries of a hierarchical-namespace
    account among them (which a listing without a delimiter includes)."""

    files: tuple[BlobEntry, ...] = ()
    folders: tuple[str, ...] = ()


def list_subtree(container: ContainerClient, prefix: str) -> Subtree:
    """Every blob whose name starts with ``prefix``; empty if the container is missing."""
    files: list[BlobEntry] = []
    folders: list[str] = []
    try:
        for item in container.list_blobs(
            name_starts_with=prefix or None, include=["metadata"], results_per_page=PAGE_SIZE
        ):
            if is_folder_placeholder(item):
                folders.append(item.name)
            else:
                files.append(BlobEntry.from_properties(item))
    except ResourceNotFoundError:
        return Subtree()
    return Subtree(tuple(files), tuple(folders))


def list_tree(container: ContainerClient, prefix: str) -> list[BlobEntry]:
    """Every blob whose name starts with ``prefix`` (folder placeholders left out);
    empty if the container is missing."""
    return list(list_subtree(container, prefix).files)
