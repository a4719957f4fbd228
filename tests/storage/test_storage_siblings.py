"""Bursts of questions about blobs of one folder, answered from a listing of the folder.

After the DAG is built Snakemake asks each storage object on its own, for instance to sum
``input.size_mb`` of a job with 1,000 inputs. These tests count the requests such bursts
cost and check that a listing never hides a blob or reports a stale one after a write.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from snakemake.io import IOCache

from localcluster.azurite import Azurite
from snakemake_storage_plugin_azblob import StorageProvider
from snakemake_storage_plugin_azblob.listing import BlobEntry, FolderPage
from snakemake_storage_plugin_azblob.requestlog import REQUEST_LOG_ENV
from snakemake_storage_plugin_azblob.siblings import BURST_TRIGGER, SiblingListings

from .conftest import ProviderFactory
from .test_storage_auth import container_sas
from .test_storage_requests import container_holding, snakemake_files, upload_many

FOLDER_SIZE = 1000


@pytest.fixture(scope="module")
def samples_container(azurite: Azurite) -> Iterator[str]:
    names = [f"results/sample{i:04d}.txt" for i in range(FOLDER_SIZE)]
    with container_holding(azurite, [*names, "results/nested/deeper.txt"]) as name:
        yield name


def sample_queries(container: str, count: int = FOLDER_SIZE) -> list[str]:
    return [f"az://{container}/results/sample{i:04d}.txt" for i in range(count)]


def patient_listings(**settings) -> SiblingListings:
    """Listings whose burst window and lifetime outlast the test: request counts must not
    depend on how fast this machine answers. The 2-second defaults are checked with a
    fake clock below."""
    return SiblingListings(window=3600.0, lifetime=3600.0, **settings)


def sizes_one_by_one(provider: StorageProvider, queries: list[str]) -> list[int]:
    """What Snakemake does for ``input.size_mb`` once the DAG is built: the IOCache is
    off, and each input's size is asked of its storage object."""
    cache = IOCache(max_wait_time=60)
    cache.deactivate()
    files = snakemake_files(provider, queries, cache)

    async def sizes() -> list[int]:
        return [await f.size() for f in files]

    return asyncio.run(sizes())


def test_sizes_of_a_thousand_inputs_cost_one_listing_after_the_trigger(
    provider: StorageProvider, samples_container: str
) -> None:
    provider.context.metadata.siblings = patient_listings()
    queries = sample_queries(samples_container)

    sizes = sizes_one_by_one(provider, queries)

    assert sizes == [len(q.split("/", 3)[3]) for q in queries]
    log = provider.request_log
    assert log.count("GET list") == 1, log.snapshot()
    assert log.count("HEAD") == BURST_TRIGGER - 1, log.snapshot()
    assert log.total == BURST_TRIGGER


def test_a_few_questions_are_asked_of_each_blob_alone(
    provider: StorageProvider, samples_container: str
) -> None:
    sizes_one_by_one(provider, sample_queries(samples_container, BURST_TRIGGER - 1))

    assert provider.request_log.count("GET list") == 0
    assert provider.request_log.total == BURST_TRIGGER - 1


def test_a_large_folder_is_read_only_as_far_as_the_questions_reach(
    make_provider: ProviderFactory, samples_container: str
) -> None:
    provider = make_provider()
    provider.context.metadata.siblings = patient_listings(page_size=100)
    first_names = sample_queries(samples_container, 40)
    last_name = f"az://{samples_container}/results/sample{FOLDER_SIZE - 1:04d}.txt"

    sizes_one_by_one(provider, [*first_names, last_name])

    # The first page (up to sample0098) answers questions 16 to 40. The last name lies
    # ten pages in; 41 questions pay for two pages, so the second is read, and then the
    # last blob is asked of the service instead of reading on.
    log = provider.request_log
    assert log.count("GET list") == 2, log.snapshot()
    assert log.count("HEAD") == BURST_TRIGGER, log.snapshot()


def test_a_blob_written_after_the_listing_is_found_by_asking_the_service(
    provider: StorageProvider, azurite: Azurite, samples_container: str
) -> None:
    # With the 2-second defaults, a machine slow enough to take longer than that over
    # the 1,000 questions re-lists the folder for the late blob (correctly, but then no
    # HEAD is asked): the listing must outlive the test.
    provider.context.metadata.siblings = patient_listings()
    sizes_one_by_one(provider, sample_queries(samples_container))
    late = f"results/late-{uuid.uuid4().hex[:8]}.txt"
    upload_many(azurite, samples_container, [late])
    before = provider.request_log.count("HEAD")

    obj = provider.object(f"az://{samples_container}/{late}")

    assert obj.exists() is True
    assert obj.size() == len(late)
    assert provider.request_log.count("HEAD") == before + 1


def test_subfolders_are_described_by_their_own_listing_not_the_parents(
    provider: StorageProvider, samples_container: str
) -> None:
    sizes_one_by_one(provider, sample_queries(samples_container, 100))

    nested = provider.object(f"az://{samples_container}/results/nested")

    assert nested.exists() is True
    assert nested.size() == 0  # a directory
    assert nested.mtime() > 0


def test_this_process_writing_a_blob_drops_the_listing(
    provider: StorageProvider, container: str, azurite: Azurite
) -> None:
    names = [f"out/part{i:03d}.txt" for i in range(50)]
    upload_many(azurite, container, names)
    queries = [f"az://{container}/{name}" for name in names]
    sizes_one_by_one(provider, queries)
    rewritten = provider.object(queries[-1])
    rewritten.local_path().parent.mkdir(parents=True, exist_ok=True)
    rewritten.local_path().write_bytes(b"x" * 1234)
    rewritten.store_object()

    assert sizes_one_by_one(provider, queries)[-1] == 1234


def test_a_credential_that_cannot_list_is_answered_blob_by_blob(
    make_provider: ProviderFactory, azurite: Azurite, samples_container: str
) -> None:
    read_only = container_sas(azurite, samples_container, read=True)
    provider = make_provider(account_key=None, sas_token=read_only)
    provider.context.metadata.siblings = patient_listings()
    queries = sample_queries(samples_container, 3 * BURST_TRIGGER)

    sizes = sizes_one_by_one(provider, queries)

    assert sizes == [len(q.split("/", 3)[3]) for q in queries]
    log = provider.request_log
    assert log.count("GET list") == 1, log.snapshot()  # refused once, never tried again
    assert log.count("HEAD") == len(queries)


AGGREGATE_SNAKEFILE = Path(__file__).parent / "workflows" / "aggregate" / "Snakefile"
AGGREGATE_PARTS = 300


def test_a_job_over_300_inputs_of_one_folder_costs_few_metadata_requests(
    azurite: Azurite, container: str, tmp_path: Path
) -> None:
    upload_many(azurite, container, [f"parts/{i}.txt" for i in range(AGGREGATE_PARTS)])
    log = tmp_path / "requests.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAKEMAKE_STORAGE_AZBLOB_")}
    env |= {"SNAKEMAKE_STORAGE_AZBLOB_ACCOUNT_KEY": azurite.account_key, REQUEST_LOG_ENV: str(log)}
    command = [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(AGGREGATE_SNAKEFILE),
        "--directory", str(tmp_path / "work"),
        "--cores", "1",
        "--nocolor",
        "--default-storage-provider", "azblob",
        "--default-storage-prefix", f"az://{container}",
        "--storage-azblob-endpoint-url", azurite.blob_endpoint,
    ]  # fmt: skip

    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)

    assert run.returncode == 0, run.stderr[-3000:]
    merged = azurite.service_client().get_blob_client(container, "merged.txt")
    expected = "".join(f"parts/{i}.txt" for i in range(AGGREGATE_PARTS))
    assert merged.download_blob().readall().decode() == expected
    (totals,) = [json.loads(line) for line in log.read_text().splitlines()]
    operations = totals["by_operation"]
    # Each input is downloaded once (GET). Snakemake asks each input's size (for the job's
    # default resources) and time (before downloading it). Asked of each blob alone, that
    # was 308 requests here (2,529 for 1,000 inputs, once answers outlived their 10 s);
    # bursts answered from listings take a small fraction of it.
    assert operations["GET"] == AGGREGATE_PARTS, operations
    metadata = operations.get("HEAD", 0) + operations.get("GET list", 0)
    assert metadata < AGGREGATE_PARTS // 4, operations


# -- the burst logic alone, with a fake folder -------------------------------------------------
class FakeFolder:
    def __init__(self, names: list[str]) -> None:
        self.names = sorted(names)
        self.opened = 0
        self.pages_served = 0

    def open_pages(self, page_size: int) -> Iterator[FolderPage]:
        self.opened += 1
        chunks = [self.names[i : i + page_size] for i in range(0, len(self.names), page_size)]
        for index, chunk in enumerate(chunks):
            self.pages_served += 1
            entries = tuple(BlobEntry(name, size=1, mtime=1.0) for name in chunk)
            yield FolderPage(entries, chunk[-1], more=index < len(chunks) - 1)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr("snakemake_storage_plugin_azblob.siblings.time.monotonic", lambda: now[0])
    return now


def test_questions_spread_over_time_never_start_a_listing(clock: list[float]) -> None:
    siblings = SiblingListings(trigger=4, window=2.0)
    folder = FakeFolder([f"f/{i}" for i in range(10)])

    answers = []
    for i in range(10):
        answers.append(siblings.lookup(("k", "f/"), f"f/{i}", folder.open_pages))
        clock[0] += 1.0  # at most three questions within any two seconds

    assert answers == [None] * 10
    assert folder.opened == 0


def test_a_listing_expires_and_the_next_burst_lists_again(clock: list[float]) -> None:
    siblings = SiblingListings(trigger=2, window=2.0, lifetime=2.0)
    folder = FakeFolder(["f/a", "f/b", "f/c"])

    assert siblings.lookup(("k", "f/"), "f/a", folder.open_pages) is None
    answer = siblings.lookup(("k", "f/"), "f/b", folder.open_pages)
    assert answer is not None and answer.entry.name == "f/b" and answer.listed_at == 1000.0
    clock[0] += 2.5
    assert siblings.lookup(("k", "f/"), "f/c", folder.open_pages) is None  # burst over
    clock[0] += 0.1
    again = siblings.lookup(("k", "f/"), "f/a", folder.open_pages)

    assert again is not None and again.listed_at == 1002.6
    assert folder.opened == 2


def test_a_name_the_listing_lacks_is_left_to_the_service(clock: list[float]) -> None:
    siblings = SiblingListings(trigger=1)
    folder = FakeFolder(["f/a", "f/c"])

    assert siblings.lookup(("k", "f/"), "f/b", folder.open_pages) is None
    assert siblings.lookup(("k", "f/"), "f/z", folder.open_pages) is None
    assert folder.pages_served == 1


def test_one_page_at_most_per_trigger_questions(clock: list[float]) -> None:
    siblings = SiblingListings(trigger=3, page_size=2)
    folder = FakeFolder([f"f/{i:02d}" for i in range(20)])

    for i in range(9):
        siblings.lookup(("k", "f/"), f"f/{19 - i:02d}", folder.open_pages)

    assert folder.pages_served == 9 // 3


def test_invalidation_drops_only_the_matching_containers(clock: list[float]) -> None:
    siblings = SiblingListings(trigger=1)
    one, two = FakeFolder(["f/a"]), FakeFolder(["f/a"])
    siblings.lookup(("acct", "one", "f/"), "f/a", one.open_pages)
    siblings.lookup(("acct", "two", "f/"), "f/a", two.open_pages)

    siblings.invalidate(("acct", "one"))
    siblings.lookup(("acct", "one", "f/"), "f/a", one.open_pages)
    siblings.lookup(("acct", "two", "f/"), "f/a", two.open_pages)

    assert (one.opened, two.opened) == (2, 1)


def test_starting_a_listing_lets_go_of_other_folders_expired_ones(clock: list[float]) -> None:
    siblings = SiblingListings(trigger=1, lifetime=2.0)
    big = FakeFolder([f"big/{i}" for i in range(100)])
    small = FakeFolder(["small/a"])
    assert siblings.lookup(("k", "big/"), "big/1", big.open_pages) is not None
    clock[0] += 3.0

    siblings.lookup(("k", "small/"), "small/a", small.open_pages)

    # Nobody asked about big/ again, yet its 100 entries are no longer held.
    assert siblings._bursts[("k", "big/")].entries == {}
    assert siblings._bursts[("k", "small/")].entries.keys() == {"small/a"}
