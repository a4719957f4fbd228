"""A named pipe, socket or other non-regular file is never read as an upload."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from snakemake_storage_plugin_azblob.special_files import special_file_kind

from .conftest import ProviderFactory


def test_kinds_of_local_paths(tmp_path: Path) -> None:
    fifo = tmp_path / "a.pipe"
    os.mkfifo(fifo)
    regular = tmp_path / "a.txt"
    regular.write_text("x")
    sock_path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(sock_path))
        assert special_file_kind(sock_path) == "socket"
    assert special_file_kind(fifo) == "named pipe (FIFO)"
    assert special_file_kind(regular) is None
    assert special_file_kind(tmp_path) is None
    assert special_file_kind(tmp_path / "missing") is None


@pytest.mark.timeout(60)
def test_fifo_output_is_skipped_without_opening_it(
    make_provider: ProviderFactory, container: str
) -> None:
    provider = make_provider()
    obj = provider.object(f"az://{container}/piped/numbers.pipe")
    obj.local_path().parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(obj.local_path())
    # Opening the FIFO to read it would block this thread forever (no writer exists).
    worker = threading.Thread(target=obj.store_object, daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "store_object blocked on a FIFO"
    assert not obj.exists()


def test_checksum_of_a_missing_blob_is_none(provider, container: str) -> None:
    """As Snakemake's checksum of a missing local file: a pipe() input never is in storage,
    yet Snakemake asks for its checksum when recording the consumer's metadata."""
    assert provider.object(f"az://{container}/piped/numbers.pipe").checksum() is None
