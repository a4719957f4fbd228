"""One blob or blob directory, as Snakemake sees it.

Metadata of a single object costs one request: the answer of ``get_blob_properties``
(or, for a directory, of listing its members) is kept for a few seconds in the
provider's metadata cache and serves exists, mtime, size and checksum. When many blobs
of one folder are asked about at once, a listing of the folder answers for the blobs it
shows (siblings.py). What is kept, for how long, and how writes drop it: metadata.py.
"""

from __future__ import annotations

import asyncio
import stat
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from glob import escape as glob_escape
from pathlib import Path

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
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

from snakemake_storage_plugin_azblob.archive import (
    ARCHIVED_ERROR_CODE,
    archived_error,
    check_readable,
)
from snakemake_storage_plugin_azblob.context import HasStorageContext, StorageContext
from snakemake_storage_plugin_azblob.credentials import ResolvedAuth
from snakemake_storage_plugin_azblob.directories import (
    delete_blobs,
    delete_folders,
    download_directory,
    run_bounded,
    upload_directory,
)
from snakemake_storage_plugin_azblob.errors import (
    AuthenticationFailed,
    azure_errors,
    error_code_of,
    is_container_missing,
)
from snakemake_storage_plugin_azblob.listing import (
    BlobEntry,
    FolderListing,
    FolderPage,
    folder_pages,
    is_folder_placeholder,
    list_folder,
    list_subtree,
    list_tree,
)
from snakemake_storage_plugin_azblob.metadata import Scope, Snapshot
from snakemake_storage_plugin_azblob.query import BlobQuery, parse_query
from snakemake_storage_plugin_azblob.transfer import TEMP_MARKER, download_file, upload_file

TOUCH_METADATA_KEY = "snakemake_touched"


class StorageObject(StorageObjectRead, StorageObjectWrite, StorageObjectGlob, StorageObjectTouch):
    provider: HasStorageContext

    def __post_init__(self) -> None:
        self.parsed: BlobQuery = parse_query(self.query)
        self._auth: ResolvedAuth | None = None

    @property
    def context(self) -> StorageContext:
        return self.provider.context

    # --- clients -------------------------------------------------------------

    @property
    def auth(self) -> ResolvedAuth:
        if self._auth is None:
            self._auth = self.context.auth_for(self.parsed)
        return self._auth

    @property
    def container_client(self) -> ContainerClient:
        return self.context.clients.get(self.auth).get_container_client(self.parsed.container)

    @property
    def blob_client(self) -> BlobClient:
        return self.container_client.get_blob_client(self.parsed.blob)

    def _errors(self, action: str):
        return azure_errors(self.auth, f"{action} {self.print_query}")

    @property
    def _dir_prefix(self) -> str:
        return f"{self.parsed.blob}/"

    @property
    def _scope(self) -> Scope:
        return (self.auth.client_key, self.parsed.container)

    def _forget(self) -> None:
        """After writing or removing: drop what is known about this name (metadata.py)."""
        self.context.metadata.forget(self._scope, self.parsed.blob)

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
        metadata = self.context.metadata
        snapshot = metadata.snapshot(self._scope, self.parsed.blob)
        if snapshot is None:
            snapshot = self._sibling_snapshot() or self._fetch_snapshot()
            metadata.remember(self._scope, self.parsed.blob, snapshot)
        return snapshot

    def _sibling_snapshot(self) -> Snapshot | None:
        """The blob as a listing of its folder shows it, when its siblings are being asked
        about too (see siblings.py); None means ask the service about this blob alone."""
        parent = self._parent_blob()
        prefix = f"{parent}/" if parent else ""
        container = self.container_client

        def open_pages(page_size: int) -> Iterator[FolderPage]:
            return folder_pages(container, prefix, page_size)

        answer = self.context.metadata.sibling(self._scope, prefix, self.parsed.blob, open_pages)
        if answer is None:
            return None
        return Snapshot(answer.listed_at, file=answer.entry)

    def _fetch_snapshot(self) -> Snapshot | None:
        with self._errors("reading properties of"):
            try:
                properties = self.blob_client.get_blob_properties()
            except ResourceNotFoundError as e:
                if is_container_missing(e):
                    return None
                return self._directory_snapshot()
        if is_folder_placeholder(properties):
            return self._directory_snapshot(folder_entry=True)
        properties.name = self.parsed.blob
        return Snapshot(time.monotonic(), file=BlobEntry.from_properties(properties))

    def _directory_snapshot(self, folder_entry: bool = False) -> Snapshot | None:
        with self._errors("listing"):
            members = list_tree(self.container_client, self._dir_prefix)
        if not members:
            return None
        return Snapshot(time.monotonic(), members=tuple(members), folder_entry=folder_entry)

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
            self.context.metadata.folder_listing, self._scope, prefix, load
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
        options = self.context.options
        files = [snapshot.file] if snapshot.file is not None else list(snapshot.members)
        # An archived blob is offline: say so at once rather than start a download.
        check_readable(self.print_query, self.auth.account_name, self.parsed.container, files)
        if snapshot.file is not None:
            try:
                with self._errors("downloading"), self._archived_as_workflow_error():
                    download_file(
                        self.blob_client,
                        local,
                        max_concurrency=options.max_concurrency,
                        label=self.print_query,
                    )
            except ResourceNotFoundError:
                self._forget()
                raise WorkflowError(f"{self.print_query} was deleted while downloading") from None
            return
        with self._errors("downloading directory"), self._archived_as_workflow_error():
            download_directory(
                self.container_client,
                list(snapshot.members),
                self.parsed.blob,
                local,
                max_concurrency=options.max_concurrency,
                label=self.print_query,
                block_size=options.block_size,
            )

    @contextmanager
    def _archived_as_workflow_error(self) -> Iterator[None]:
        """The service refusing to read an archived blob (409 BlobArchived, e.g. archived
        after our snapshot was taken), told as check_readable tells it."""
        try:
            yield
        except HttpResponseError as e:
            if error_code_of(e) != ARCHIVED_ERROR_CODE:
                raise
            self._forget()
            raise archived_error(
                self.print_query, self.auth.account_name, self.parsed.container, [self.parsed.blob]
            ) from None

    def store_object(self) -> None:
        local = self.local_path()
        if not local.exists():
            raise WorkflowError(f"cannot store {self.print_query}: {local} does not exist")
        if not local.is_dir() and not local.is_file():
            # Opening a FIFO (a pipe() output) to read it blocks until a writer appears,
            # which, after the group's jobs have finished, is never.
            self.context.logger.warning(
                f"Not storing {self.print_query}: {local} is not a regular file or directory "
                f"(it is a {file_kind(local)}); pipe() outputs stream between the jobs of "
                "one group and are not kept in storage"
            )
            return
        options = self.context.options
        try:
            if local.is_dir():
                self._with_container(
                    lambda: upload_directory(
                        self.container_client,
                        local,
                        self.parsed.blob,
                        block_size=options.block_size,
                        max_concurrency=options.max_concurrency,
                        tier=options.access_tier,
                    )
                )
            else:
                self._with_container(
                    lambda: upload_file(
                        self.blob_client,
                        local,
                        block_size=options.block_size,
                        max_concurrency=options.max_concurrency,
                        tier=options.access_tier,
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
            except ResourceNotFoundError as e:
                if not is_container_missing(e):
                    raise
            self._create_container()
            upload()

    def _create_container(self) -> None:
        try:
            # ResourceExistsError: another job created it meanwhile.
            with self._errors("creating the container of"), suppress(ResourceExistsError):
                self.container_client.create_container()
        except AuthenticationFailed as e:
            raise WorkflowError(
                f"container '{self.parsed.container}' does not exist and could not be created: {e}"
            ) from None
        self.context.logger.info(f"Created container {self.parsed.container}")

    def remove(self) -> None:
        known = self.context.metadata.last_known(self._scope, self.parsed.blob)
        is_folder_entry = known is not None and known.folder_entry
        try:
            if known is None or not known.is_dir:
                with self._errors("removing"):
                    try:
                        self.blob_client.delete_blob(delete_snapshots="include")
                        return
                    except ResourceNotFoundError as e:
                        if is_container_missing(e):
                            return
                    except ResourceExistsError:
                        # A hierarchical-namespace account refuses to delete a directory
                        # that is not empty (409): remove its members first.
                        is_folder_entry = True
            concurrency = self.context.options.max_concurrency
            with self._errors("removing directory"):
                tree = list_subtree(self.container_client, self._dir_prefix)
                delete_blobs(self.container_client, [m.name for m in tree.files], concurrency)
                folders = list(tree.folders)
                if is_folder_entry or folders:
                    folders.append(self.parsed.blob)
                delete_folders(self.container_client, folders, concurrency)
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

                run_bounded(members, touch_member, self.context.options.max_concurrency)
        finally:
            self._forget()

    # --- globbing ------------------------------------------------------------

    def list_candidate_matches(self) -> Iterable[str]:
        """Full queries of all blobs starting with the query's constant prefix."""
        prefix = get_constant_prefix(self.parsed.blob)
        with self._errors("listing candidates for"):
            entries = list_tree(self.container_client, prefix)
        return [self.parsed.with_blob(entry.name).to_query() for entry in entries]


def file_kind(path: Path) -> str:
    """What a non-regular file is, for messages (stat only: never opens it)."""
    mode = path.stat().st_mode
    for test, kind in (
        (stat.S_ISFIFO, "named pipe (FIFO)"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    ):
        if test(mode):
            return kind
    return "special file"
