"""One blob or blob directory, as Snakemake sees it.

Metadata of a single object costs one request: the answer of ``get_blob_properties``
(or, for a directory, of listing its members) is kept on the object for a few seconds
and serves exists, mtime, size and checksum; writes by this object drop it. Answers
that the object is missing are never kept, so Snakemake's wait for job outputs always
asks the service. When many blobs of one folder are asked about at once, a listing of
the folder answers for the blobs it shows (siblings.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from glob import escape as glob_escape
from typing import TYPE_CHECKING

from azure.storage.blob import BlobClient, ContainerClient
from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_storage_plugins.io import (
    IOCacheStorageInterface,
    Mtime,
    get_constant_prefix,
)
from snakemake_interface_storage_plugins.storage_object import (
    StorageObjectGlob,
    StorageObjectRead,
    StorageObjectTouch,
    StorageObjectWrite,
)

from snakemake_storage_plugin_azblob.credentials import ResolvedAuth
from snakemake_storage_plugin_azblob.directories import (
    delete_blobs,
    download_directory,
    run_bounded,
    upload_directory,
)
from snakemake_storage_plugin_azblob.errors import (
    AuthenticationFailed,
    azure_errors,
    is_container_missing,
    is_not_found,
)
from snakemake_storage_plugin_azblob.listing import (
    BlobEntry,
    FolderListing,
    FolderPage,
    folder_pages,
    is_folder_placeholder,
    list_folder,
    list_tree,
)
from snakemake_storage_plugin_azblob.query import BlobQuery, parse_query
from snakemake_storage_plugin_azblob.special_files import special_file_kind
from snakemake_storage_plugin_azblob.transfer import TEMP_MARKER, download_file, upload_file

if TYPE_CHECKING:
    from snakemake_storage_plugin_azblob.provider import StorageProvider

# How long one metadata answer serves further exists/mtime/size calls on the object.
SNAPSHOT_MAX_AGE = 10.0
TOUCH_METADATA_KEY = "snakemake_touched"


@dataclass(frozen=True)
class Snapshot:
    """What the service said about the object: a file, or a directory with members."""

    taken_at: float
    file: BlobEntry | None = None
    members: tuple[BlobEntry, ...] = ()

    @property
    def is_dir(self) -> bool:
        return self.file is None

    @property
    def mtime(self) -> float:
        if self.file is not None:
            return self.file.mtime
        return max(member.mtime for member in self.members)

    @property
    def footprint(self) -> int:
        if self.file is not None:
            return self.file.size
        return sum(member.size for member in self.members)


class StorageObject(StorageObjectRead, StorageObjectWrite, StorageObjectGlob, StorageObjectTouch):
    provider: StorageProvider

    def __post_init__(self) -> None:
        self.parsed: BlobQuery = parse_query(self.query)
        self._snapshot: Snapshot | None = None
        self._auth: ResolvedAuth | None = None

    # --- clients -------------------------------------------------------------

    @property
    def auth(self) -> ResolvedAuth:
        if self._auth is None:
            self._auth = self.provider.auth_for(self.parsed)
        return self._auth

    @property
    def container_client(self) -> ContainerClient:
        return self.provider.clients.get(self.auth).get_container_client(self.parsed.container)

    @property
    def blob_client(self) -> BlobClient:
        return self.container_client.get_blob_client(self.parsed.blob)

    def _errors(self, action: str):
        return azure_errors(self.auth, f"{action} {self.print_query}")

    @property
    def _dir_prefix(self) -> str:
        return f"{self.parsed.blob}/"

    def _listing_key(self) -> tuple:
        return (self.auth.client_key, self.parsed.container)

    def _forget(self) -> None:
        """Drop what we know after writing: our snapshot and the container's listings."""
        self._snapshot = None
        self.provider.listings.invalidate(self._listing_key())
        self.provider.siblings.invalidate(self._listing_key())

    # --- naming --------------------------------------------------------------

    def local_suffix(self) -> str:
        return self.parsed.local_suffix_for(self.parsed.blob)

    def _parent_blob(self) -> str:
        return self.parsed.blob.rpartition("/")[0]

    def get_inventory_parent(self) -> str | None:
        if self._overwrite_local_path is not None:
            return None
        return self.cache_key(self.parsed.local_suffix_for(self._parent_blob()))

    def cleanup(self) -> None:
        """Remove temporary download files left next to the local path by a process
        that was killed mid-transfer (failed transfers remove their own)."""
        if self._overwrite_local_path is not None:
            local = self._overwrite_local_path
        else:
            local = self.local_path()
        if local.parent.is_dir():
            for leftover in local.parent.glob(f".{glob_escape(local.name)}{TEMP_MARKER}*"):
                leftover.unlink(missing_ok=True)

    # --- metadata ------------------------------------------------------------

    def _stat(self) -> Snapshot | None:
        """A fresh-enough snapshot, or None if the object does not exist."""
        snapshot = self._snapshot
        if snapshot is not None and time.monotonic() - snapshot.taken_at <= SNAPSHOT_MAX_AGE:
            return snapshot
        self._snapshot = snapshot = self._sibling_snapshot() or self._fetch_snapshot()
        return snapshot

    def _sibling_snapshot(self) -> Snapshot | None:
        """The blob as a listing of its folder shows it, when its siblings are being asked
        about too (see siblings.py); None means ask the service about this blob alone."""
        parent = self._parent_blob()
        prefix = f"{parent}/" if parent else ""
        container = self.container_client

        def open_pages(page_size: int) -> Iterator[FolderPage]:
            return folder_pages(container, prefix, page_size)

        answer = self.provider.siblings.lookup(
            (*self._listing_key(), prefix), self.parsed.blob, open_pages
        )
        if answer is None:
            return None
        return Snapshot(answer.listed_at, file=answer.entry)

    def _fetch_snapshot(self) -> Snapshot | None:
        with self._errors("reading properties of"):
            try:
                properties = self.blob_client.get_blob_properties()
            except Exception as e:
                if not is_not_found(e):
                    raise
                if is_container_missing(e):
                    return None
                return self._directory_snapshot()
        if is_folder_placeholder(properties):
            return self._directory_snapshot()
        properties.name = self.parsed.blob
        return Snapshot(time.monotonic(), file=BlobEntry.from_properties(properties))

    def _directory_snapshot(self) -> Snapshot | None:
        with self._errors("listing"):
            members = list_tree(self.container_client, self._dir_prefix)
        if not members:
            return None
        return Snapshot(time.monotonic(), members=tuple(members))

    def _existing(self) -> Snapshot:
        snapshot = self._stat()
        if snapshot is None:
            raise WorkflowError(f"{self.print_query} does not exist in Azure Blob Storage")
        return snapshot

    def exists(self) -> bool:
        return self._stat() is not None

    def mtime(self) -> float:
        return self._existing().mtime

    def size(self) -> int:
        snapshot = self._existing()
        return 0 if snapshot.is_dir else snapshot.footprint

    def local_footprint(self) -> int:
        return self._existing().footprint

    def checksum(self) -> str | None:
        # None when missing, as Snakemake's own checksum of a missing local file: after a
        # pipe group, Snakemake records checksums of all inputs, the pipe's too, which
        # never is in storage (docs/compatibility.md, "Upstream issues").
        snapshot = self._stat()
        if snapshot is None or snapshot.file is None or snapshot.file.md5 is None:
            return None
        return f"md5:{snapshot.file.md5.hex()}"

    async def inventory(self, cache: IOCacheStorageInterface) -> None:
        """List this object's folder once and record every blob and subfolder in it.

        Afterwards Snakemake answers exists/mtime/size for all of them, and "missing"
        for any other name in the folder, without further requests.
        """
        if self._overwrite_local_path is not None:
            return
        parent = self._parent_blob()
        parent_key = self.cache_key(self.parsed.local_suffix_for(parent))
        has_inventory = getattr(cache.exists_in_storage, "has_inventory", None)
        if has_inventory is not None and parent_key in has_inventory:
            return
        prefix = f"{parent}/" if parent else ""
        container = self.container_client

        def load() -> FolderListing:
            with self._errors("listing the folder of"):
                return list_folder(container, prefix)

        listing = await asyncio.to_thread(
            self.provider.listings.get, (*self._listing_key(), prefix), load
        )
        if has_inventory is not None and parent_key in has_inventory:
            return  # a concurrent inventory of a sibling filled the cache meanwhile
        for entry in listing.blobs:
            key = self.cache_key(self.parsed.local_suffix_for(entry.name))
            cache.exists_in_storage[key] = True
            cache.mtime[key] = Mtime(storage=entry.mtime)
            cache.size[key] = entry.size
            if entry.md5 is not None:
                cache.checksum[key] = f"md5:{entry.md5.hex()}"
        for folder in listing.subfolders:
            cache.exists_in_storage[self.cache_key(self.parsed.local_suffix_for(folder))] = True
        own_key = self.cache_key()
        if own_key not in cache.exists_in_storage:
            cache.exists_in_storage[own_key] = False
        if parent and not listing.empty:
            cache.exists_in_storage[parent_key] = True
        if has_inventory is not None:
            has_inventory.add(parent_key)

    # --- transfers -----------------------------------------------------------

    def retrieve_object(self) -> None:
        # Snakemake asks for the footprint just before, so the snapshot is usually fresh.
        snapshot = self._existing()
        local = self.local_path()
        options = self.provider.options
        if snapshot.file is not None:
            try:
                with self._errors("downloading"):
                    download_file(
                        self.blob_client,
                        local,
                        max_concurrency=options.max_concurrency,
                        label=self.print_query,
                    )
            except Exception as e:
                if not is_not_found(e):
                    raise
                self._snapshot = None
                raise WorkflowError(f"{self.print_query} was deleted while downloading") from None
            return
        with self._errors("downloading directory"):
            download_directory(
                self.container_client,
                list(snapshot.members),
                self.parsed.blob,
                local,
                max_concurrency=options.max_concurrency,
                label=self.print_query,
                block_size=options.block_size,
            )

    def store_object(self) -> None:
        local = self.local_path()
        if not local.exists():
            raise WorkflowError(f"cannot store {self.print_query}: {local} does not exist")
        if (kind := special_file_kind(local)) is not None:
            # Never read as an upload: a FIFO nobody writes to would block forever.
            self.provider.logger.info(
                f"Not storing {self.print_query}: {local} is a {kind}, which has no content "
                "to upload (pipe() and service() outputs stay local)."
            )
            return
        options = self.provider.options
        try:
            if local.is_dir():
                self._with_container(
                    lambda: upload_directory(
                        self.container_client,
                        local,
                        self.parsed.blob,
                        block_size=options.block_size,
                        max_concurrency=options.max_concurrency,
                    )
                )
            else:
                self._with_container(
                    lambda: upload_file(
                        self.blob_client,
                        local,
                        block_size=options.block_size,
                        max_concurrency=options.max_concurrency,
                    )
                )
        finally:
            self._forget()

    def _with_container(self, upload) -> None:
        """Run ``upload``; if the container is missing, create it and run it again."""
        with self._errors("uploading"):
            try:
                upload()
                return
            except Exception as e:
                if not is_container_missing(e):
                    raise
            self._create_container()
            upload()

    def _create_container(self) -> None:
        try:
            with self._errors("creating the container of"):
                try:
                    self.container_client.create_container()
                except Exception as e:
                    if getattr(e, "status_code", None) != 409:
                        raise
        except AuthenticationFailed as e:
            raise WorkflowError(
                f"container '{self.parsed.container}' does not exist and could not be created: {e}"
            ) from None
        self.provider.logger.info(f"Created container {self.parsed.container}")

    def remove(self) -> None:
        try:
            snapshot = self._snapshot
            if snapshot is None or not snapshot.is_dir:
                with self._errors("removing"):
                    try:
                        self.blob_client.delete_blob(delete_snapshots="include")
                        return
                    except Exception as e:
                        if not is_not_found(e):
                            raise
                        if is_container_missing(e):
                            return
            with self._errors("removing directory"):
                names = [m.name for m in list_tree(self.container_client, self._dir_prefix)]
                delete_blobs(self.container_client, names, self.provider.options.max_concurrency)
        finally:
            self._forget()

    def touch(self) -> None:
        """Refresh Last-Modified by rewriting the metadata (content is unchanged)."""
        stamp = f"{time.time():.6f}"
        snapshot = self._stat()
        if snapshot is None:
            raise WorkflowError(f"cannot touch {self.print_query}: it does not exist")
        try:
            if snapshot.file is not None:
                with self._errors("touching"):
                    metadata = dict(snapshot.file.metadata or {})
                    metadata[TOUCH_METADATA_KEY] = stamp
                    self.blob_client.set_blob_metadata(metadata)
                return
            with self._errors("touching directory"):
                members = list_tree(self.container_client, self._dir_prefix)

                def touch_member(entry: BlobEntry) -> None:
                    metadata = dict(entry.metadata or {})
                    metadata[TOUCH_METADATA_KEY] = stamp
                    self.container_client.get_blob_client(entry.name).set_blob_metadata(metadata)

                run_bounded(members, touch_member, self.provider.options.max_concurrency)
        finally:
            self._forget()

    # --- globbing ------------------------------------------------------------

    def list_candidate_matches(self) -> Iterable[str]:
        """Full queries of all blobs starting with the query's constant prefix."""
        prefix = get_constant_prefix(self.parsed.blob)
        with self._errors("listing candidates for"):
            entries = list_tree(self.container_client, prefix)
        return [self.parsed.with_blob(entry.name).to_query() for entry in entries]
