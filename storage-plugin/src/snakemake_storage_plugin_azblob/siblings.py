"""Answering a burst of questions about blobs of one folder from a listing of the folder.

Once its DAG is built, Snakemake stops consulting inventories and asks each storage object
on its own. When a job with many inputs in one folder becomes ready (an ``all`` or merge
rule over 1,000 samples), Snakemake sums ``input.size_mb`` for the job's default
resources: one properties request per input, one after the other. A pod retrieving such
inputs asks for each one's modification time the same way.

When ``trigger`` blobs of one folder have been asked about within ``window`` seconds, the
folder is listed instead, 5,000 entries per request, and the blobs it shows are answered
from it. The listing is read one page at a time, only as far as the names asked about
reach, and never more than one page per ``trigger`` questions: asking about a few blobs of
a huge folder costs at most one request in ``trigger`` more than asking each.

A listing only ever says that a blob exists, with its size and time. A name it does not
show is asked of the service, so a blob written after the listing is never reported
missing. A listing serves for ``lifetime`` seconds from its request, about as long as a
burst lasts; writes by this process drop it at once.

A folder whose listing fails (a SAS without the list permission, a service error after
the client's retries) is answered blob by blob for ``retry_after`` seconds; the next
burst after that tries listing it again.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from azure.core.exceptions import AzureError

from snakemake_storage_plugin_azblob.listing import PAGE_SIZE, BlobEntry, FolderPage

BURST_TRIGGER = 16
BURST_WINDOW = 2.0
LISTING_LIFETIME = 2.0
LISTING_RETRY_AFTER = 60.0

PageOpener = Callable[[int], Iterator[FolderPage]]


@dataclass(frozen=True)
class SiblingAnswer:
    entry: BlobEntry
    listed_at: float  # time.monotonic() when the listing was requested


@dataclass
class FolderBurst:
    """Recent questions about one folder and the part of its listing read so far."""

    asked_at: deque[float] = field(default_factory=deque)
    entries: dict[str, BlobEntry] = field(default_factory=dict)
    pages: Iterator[FolderPage] | None = None
    pages_read: int = 0
    read_up_to: str | None = None
    complete: bool = False
    listed_at: float = 0.0
    unlistable_until: float = 0.0  # time.monotonic() before which listing is not tried
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note_question(self, now: float, window: float) -> None:
        self.asked_at.append(now)
        while self.asked_at and now - self.asked_at[0] > window:
            self.asked_at.popleft()

    def drop_listing(self) -> None:
        self.entries.clear()
        self.pages = None
        self.pages_read = 0
        self.read_up_to = None
        self.complete = False

    def covers(self, name: str) -> bool:
        """Whether the pages read so far would show ``name`` if it existed when listed."""
        return self.complete or (self.read_up_to is not None and name <= self.read_up_to)

    def read_next_page(self, open_pages: PageOpener, page_size: int, now: float) -> None:
        if self.pages is None:
            self.pages = open_pages(page_size)
            self.listed_at = now
        page = next(self.pages, None)
        self.pages_read += 1
        if page is None:
            self.complete = True
            return
        self.entries.update((entry.name, entry) for entry in page.blobs)
        if page.last_name is not None:
            self.read_up_to = page.last_name
        self.complete = not page.more


class SiblingListings:
    """Folder listings kept for bursts of questions, shared by all objects of a provider."""

    def __init__(
        self,
        trigger: int = BURST_TRIGGER,
        window: float = BURST_WINDOW,
        lifetime: float = LISTING_LIFETIME,
        page_size: int = PAGE_SIZE,
        retry_after: float = LISTING_RETRY_AFTER,
    ) -> None:
        self.trigger = trigger
        self.window = window
        self.lifetime = lifetime
        self.page_size = page_size
        self.retry_after = retry_after
        self._bursts: dict[tuple, FolderBurst] = {}
        self._guard = threading.Lock()

    def lookup(self, folder: tuple, name: str, open_pages: PageOpener) -> SiblingAnswer | None:
        """The blob ``name`` as a recent listing of ``folder`` shows it, or None: then ask
        the service about it (the folder is not busy enough, or the listing lacks it)."""
        with self._guard:
            burst = self._bursts.setdefault(folder, FolderBurst())
        with burst.lock:
            now = time.monotonic()
            burst.note_question(now, self.window)
            if now < burst.unlistable_until:
                return None
            if burst.pages is not None and now - burst.listed_at > self.lifetime:
                burst.drop_listing()
            while True:
                entry = burst.entries.get(name)
                if entry is not None:
                    return SiblingAnswer(entry, burst.listed_at)
                if burst.covers(name):
                    return None
                if len(burst.asked_at) < self.trigger * (burst.pages_read + 1):
                    return None
                if burst.pages is None:
                    self._release_expired_listings(now)
                try:
                    burst.read_next_page(open_pages, self.page_size, now)
                except AzureError:
                    # A credential may read blobs but not list them (a SAS without the
                    # list permission), or the service failed: answer this folder one
                    # object at a time for a while, then try listing it again.
                    burst.drop_listing()
                    burst.unlistable_until = now + self.retry_after
                    return None

    def _release_expired_listings(self, now: float) -> None:
        """Let go of other folders' expired listings (a large folder's entries are many)."""
        with self._guard:
            bursts = list(self._bursts.values())
        for burst in bursts:
            if burst.pages is None or now - burst.listed_at <= self.lifetime:
                continue
            if burst.lock.acquire(blocking=False):  # busy ones are being refreshed anyway
                try:
                    burst.drop_listing()
                finally:
                    burst.lock.release()

    def invalidate(self, key_prefix: tuple) -> None:
        """Forget the listings of every folder whose key starts with ``key_prefix``."""
        with self._guard:
            matching = [b for k, b in self._bursts.items() if k[: len(key_prefix)] == key_prefix]
        for burst in matching:
            with burst.lock:
                burst.drop_listing()
