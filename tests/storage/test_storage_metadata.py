"""The metadata cache alone: what one write or remove makes the provider forget, and
how a folder whose listing failed is listed again later. No Azurite needed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from azure.core.exceptions import HttpResponseError

from snakemake_storage_plugin_azblob.listing import BlobEntry, FolderListing, FolderPage
from snakemake_storage_plugin_azblob.metadata import MetadataCache, Snapshot
from snakemake_storage_plugin_azblob.siblings import SiblingListings

SCOPE = ("client", "container")
OTHER_SCOPE = ("client", "other-container")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    for module in ("metadata", "siblings"):
        monkeypatch.setattr(
            f"snakemake_storage_plugin_azblob.{module}.time.monotonic", lambda: now[0]
        )
    return now


def file_snapshot(name: str, taken_at: float = 1000.0) -> Snapshot:
    return Snapshot(taken_at, file=BlobEntry(name, size=1, mtime=1.0))


def test_a_snapshot_serves_until_it_is_too_old(clock: list[float]) -> None:
    cache = MetadataCache(snapshot_max_age=10.0)
    cache.remember(SCOPE, "a/b.txt", file_snapshot("a/b.txt"))

    clock[0] += 10.0
    assert cache.snapshot(SCOPE, "a/b.txt") is not None
    clock[0] += 0.1
    assert cache.snapshot(SCOPE, "a/b.txt") is None


def test_a_missing_object_is_not_remembered(clock: list[float]) -> None:
    cache = MetadataCache()
    cache.remember(SCOPE, "a/b.txt", file_snapshot("a/b.txt"))

    cache.remember(SCOPE, "a/b.txt", None)

    assert cache.snapshot(SCOPE, "a/b.txt") is None


@pytest.mark.parametrize(
    ("written", "dropped", "kept"),
    [
        pytest.param("a/b.txt", {"a/b.txt", "a"}, {"a/bc.txt", "a/b", "x/y"}, id="name-and-dirs"),
        pytest.param("a/b.txt/c", {"a/b.txt", "a/b.txt/c"}, {"a/bc.txt"}, id="a-directory-above"),
        pytest.param("a", {"a", "a/b.txt", "a/bc.txt"}, {"x/y", "ab"}, id="the-names-below"),
    ],
)
def test_forget_drops_the_snapshots_a_write_can_change(
    clock: list[float], written: str, dropped: set[str], kept: set[str]
) -> None:
    cache = MetadataCache()
    for name in dropped | kept:
        cache.remember(SCOPE, name, file_snapshot(name))
        cache.remember(OTHER_SCOPE, name, file_snapshot(name))

    cache.forget(SCOPE, written)

    assert {n for n in dropped | kept if cache.snapshot(SCOPE, n) is not None} == kept
    assert all(cache.snapshot(OTHER_SCOPE, n) is not None for n in dropped | kept)


def test_forget_drops_the_containers_listings_of_both_kinds(clock: list[float]) -> None:
    cache = MetadataCache(siblings=SiblingListings(trigger=1))
    loads = []

    def load() -> FolderListing:
        loads.append(1)
        return FolderListing()

    opened = []

    def open_pages(page_size: int) -> Iterator[FolderPage]:
        opened.append(1)
        yield FolderPage((BlobEntry("f/a", 1, 1.0),), "f/a", more=False)

    for _ in range(2):
        cache.folder_listing(SCOPE, "f/", load)
        cache.folder_listing(OTHER_SCOPE, "f/", load)
        cache.sibling(SCOPE, "f/", "f/a", open_pages)
    assert (len(loads), len(opened)) == (2, 1)

    cache.forget(SCOPE, "f/new.txt")
    cache.folder_listing(SCOPE, "f/", load)
    cache.folder_listing(OTHER_SCOPE, "f/", load)
    cache.sibling(SCOPE, "f/", "f/a", open_pages)

    assert (len(loads), len(opened)) == (3, 2)


def test_a_failed_listing_is_tried_again_later_not_never(clock: list[float]) -> None:
    siblings = SiblingListings(trigger=1, window=3600.0, lifetime=3600.0, retry_after=60.0)
    attempts = []

    def failing_then_working(page_size: int) -> Iterator[FolderPage]:
        attempts.append(clock[0])
        if len(attempts) == 1:
            raise HttpResponseError(message="503 Server Busy")
        yield FolderPage((BlobEntry("f/a", 1, 1.0),), "f/a", more=False)

    assert siblings.lookup(("k", "f/"), "f/a", failing_then_working) is None
    clock[0] += 59.0
    assert siblings.lookup(("k", "f/"), "f/a", failing_then_working) is None
    assert len(attempts) == 1  # answered blob by blob meanwhile
    clock[0] += 2.0
    answer = siblings.lookup(("k", "f/"), "f/a", failing_then_working)

    assert answer is not None and answer.entry.name == "f/a"
    assert attempts == [1000.0, 1061.0]


def test_long_expired_snapshots_are_let_go_as_more_are_kept(clock: list[float]) -> None:
    from snakemake_storage_plugin_azblob.metadata import PRUNE_AFTER, PRUNE_EVERY

    cache = MetadataCache()
    cache.remember(SCOPE, "old.txt", file_snapshot("old.txt", taken_at=clock[0]))
    clock[0] += PRUNE_AFTER + 1
    for i in range(PRUNE_EVERY - 2):
        cache.remember(SCOPE, f"new{i}", file_snapshot(f"new{i}", taken_at=clock[0]))
    assert cache.last_known(SCOPE, "old.txt") is not None  # not yet: no prune so far

    cache.remember(SCOPE, "last", file_snapshot("last", taken_at=clock[0]))

    assert cache.last_known(SCOPE, "old.txt") is None
    assert cache.last_known(SCOPE, "last") is not None
    assert cache.last_known(SCOPE, "new0") is not None
