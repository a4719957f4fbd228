"""Everything the provider remembers about blobs, and the one call that forgets it.

Three kinds of answers are kept, each for as long as it is useful:

* a **snapshot** of one object (``get_blob_properties``, or a directory's member listing):
  it serves exists, mtime, size and checksum of that object for ``snapshot_max_age``
  seconds. Answers that an object is missing are never kept, so Snakemake's wait for
  job outputs always asks the service;
* a **folder listing** for Snakemake's inventories while it builds the DAG (kept for
  ``listing_max_age`` seconds; concurrent inventories of one folder share one request);
* **sibling listings** answering bursts of questions about one folder (siblings.py).

Snakemake's own IOCache is the fourth: it belongs to Snakemake, which fills it from
``inventory`` and stops consulting it once the DAG is built.

Every write and remove by this process calls :meth:`MetadataCache.forget` with the
container and the name written: the snapshots of that name, of the directories above it
and of anything below it are dropped, and so are the container's listings.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from snakemake_storage_plugin_azblob.listing import BlobEntry, FolderListing
from snakemake_storage_plugin_azblob.siblings import PageOpener, SiblingAnswer, SiblingListings

# How long one metadata answer serves further exists/mtime/size calls on the object.
SNAPSHOT_MAX_AGE = 10.0
# Inventories are consulted only while Snakemake builds its DAG.
LISTING_MAX_AGE = 300.0
# Every this many snapshots kept, those long expired are let go, so a run over many
# files holds only recent ones. "Long": remove() still uses a recent one to tell a
# directory, whatever its age.
PRUNE_EVERY = 4096
PRUNE_AFTER = 60.0

# (client key, container): the namespace one set of blob names lives in.
Scope = tuple


@dataclass(frozen=True)
class Snapshot:
    """What the service said about an object: a file, or a directory with members."""

    taken_at: float
    file: BlobEntry | None = None
    members: tuple[BlobEntry, ...] = ()
    # The name itself is a directory entry of a hierarchical-namespace account.
    folder_entry: bool = False

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


def _related(a: str, b: str) -> bool:
    """Whether a write to one of the names can change what is known about the other:
    the same name, or one is a directory holding the other."""
    return a == b or a.startswith(f"{b}/") or b.startswith(f"{a}/")


class MetadataCache:
    """Snapshots, inventory listings and sibling listings of one provider."""

    def __init__(
        self,
        snapshot_max_age: float = SNAPSHOT_MAX_AGE,
        listing_max_age: float = LISTING_MAX_AGE,
        siblings: SiblingListings | None = None,
    ) -> None:
        self.snapshot_max_age = snapshot_max_age
        self.listing_max_age = listing_max_age
        self.siblings = siblings or SiblingListings()
        self._snapshots: dict[Scope, dict[str, Snapshot]] = {}
        self._listings: dict[tuple, tuple[float, FolderListing]] = {}
        self._listing_locks: dict[tuple, threading.Lock] = {}
        self._guard = threading.Lock()
        self._kept_since_prune = 0

    # --- snapshots -------------------------------------------------------------------

    def snapshot(self, scope: Scope, name: str) -> Snapshot | None:
        """The object's snapshot if it is fresh enough, else None."""
        with self._guard:
            snapshot = self._snapshots.get(scope, {}).get(name)
        if snapshot is None or time.monotonic() - snapshot.taken_at > self.snapshot_max_age:
            return None
        return snapshot

    def last_known(self, scope: Scope, name: str) -> Snapshot | None:
        """The last snapshot of ``name``, however old (e.g. to tell a directory)."""
        with self._guard:
            return self._snapshots.get(scope, {}).get(name)

    def remember(self, scope: Scope, name: str, snapshot: Snapshot | None) -> None:
        """Keep ``snapshot`` of ``name``; None (the object is missing) is not kept."""
        with self._guard:
            by_name = self._snapshots.setdefault(scope, {})
            if snapshot is None:
                by_name.pop(name, None)
                return
            by_name[name] = snapshot
            self._kept_since_prune += 1
            if self._kept_since_prune >= PRUNE_EVERY:
                self._kept_since_prune = 0
                self._prune(time.monotonic() - PRUNE_AFTER)

    def _prune(self, older_than: float) -> None:
        """Drop snapshots taken before ``older_than``; the caller holds the guard."""
        for by_name in self._snapshots.values():
            for name in [n for n, snap in by_name.items() if snap.taken_at < older_than]:
                del by_name[name]

    # --- folder listings -------------------------------------------------------------

    def folder_listing(
        self, scope: Scope, prefix: str, load: Callable[[], FolderListing]
    ) -> FolderListing:
        """The listing of one folder for inventories; concurrent callers wait for one."""
        key = (*scope, prefix)
        with self._guard:
            lock = self._listing_locks.setdefault(key, threading.Lock())
        with lock:
            with self._guard:
                cached = self._listings.get(key)
            if cached is not None and time.monotonic() - cached[0] <= self.listing_max_age:
                return cached[1]
            listing = load()
            with self._guard:
                self._listings[key] = (time.monotonic(), listing)
            return listing

    def sibling(
        self, scope: Scope, prefix: str, name: str, open_pages: PageOpener
    ) -> SiblingAnswer | None:
        """``name`` as a listing of its folder shows it, during a burst (siblings.py)."""
        return self.siblings.lookup((*scope, prefix), name, open_pages)

    # --- invalidation ----------------------------------------------------------------

    def forget(self, scope: Scope, name: str) -> None:
        """Drop everything a write or remove of ``name`` may have made wrong."""
        with self._guard:
            by_name = self._snapshots.get(scope, {})
            for known in [known for known in by_name if _related(known, name)]:
                del by_name[known]
            for key in [key for key in self._listings if key[: len(scope)] == scope]:
                del self._listings[key]
        self.siblings.invalidate(scope)
