"""Directory members: many small ones at once, large ones within the memory budget."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from snakemake_storage_plugin_azblob import directories
from snakemake_storage_plugin_azblob.budget import ByteBudget
from snakemake_storage_plugin_azblob.listing import BlobEntry

MIB = 1024**2


class InFlight:
    """Counts member transfers running at once."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self._lock = threading.Lock()

    def run(self, seconds: float = 0.05) -> None:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        time.sleep(seconds)
        with self._lock:
            self.now -= 1


class NoContainer:
    def get_blob_client(self, name: str) -> str:
        return name


def test_a_budget_never_holds_more_than_its_capacity() -> None:
    budget = ByteBudget(10)
    inside = InFlight()

    def work(nbytes: int) -> None:
        with budget.hold(nbytes):
            assert budget.held <= budget.capacity
            inside.run(0.01)

    threads = [threading.Thread(target=work, args=(n,)) for n in (4, 4, 4, 7, 3, 25, 1) * 3]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert budget.peak <= 10
    assert budget.held == 0


def test_a_request_larger_than_the_budget_runs_alone_instead_of_waiting_forever() -> None:
    budget = ByteBudget(8)
    with budget.hold(100):
        assert budget.held == 8
    assert budget.held == 0


def test_a_budget_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive capacity"):
        ByteBudget(0)


def test_small_members_move_more_than_max_concurrency_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for index in range(64):
        (tmp_path / f"m{index:02d}.txt").write_bytes(b"x" * 100)
    inside = InFlight()
    monkeypatch.setattr(directories, "upload_file", lambda *a, **k: inside.run(0.2))

    count = directories.upload_directory(
        NoContainer(), tmp_path, "out", block_size=None, max_concurrency=4
    )

    assert count == 64
    assert 4 < inside.peak <= directories.MEMBER_FANOUT * 4


def test_large_members_stay_within_the_memory_of_max_concurrency_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    members = [
        BlobEntry(name=f"out/big{index}.bin", size=64 * MIB, mtime=0.0) for index in range(12)
    ]
    inside = InFlight()
    monkeypatch.setattr(directories, "download_file", lambda *a, **k: inside.run(0.05))

    directories.download_directory(
        NoContainer(), members, "out", tmp_path, max_concurrency=2, label="az://c/out"
    )

    # Budget: 2 x 2 blocks; a large member download holds one block.
    assert inside.peak <= 4


def test_large_member_uploads_hold_two_blocks_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for index in range(6):
        with (tmp_path / f"big{index}.bin").open("wb") as handle:
            handle.truncate(3 * MIB)  # sparse: larger than the 1 MiB block, no disk used
    inside = InFlight()
    monkeypatch.setattr(directories, "upload_file", lambda *a, **k: inside.run(0.05))

    directories.upload_directory(NoContainer(), tmp_path, "out", block_size=MIB, max_concurrency=2)

    assert inside.peak <= 2
