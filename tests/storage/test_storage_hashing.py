"""The MD5 computed while a download is written, whatever order its chunks arrive in."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

from snakemake_storage_plugin_azblob.hashing import HashingWriter

CHUNK = 1000


def write_chunks(path: Path, data: bytes, order: list[int]) -> HashingWriter:
    with open(path, "w+b") as sink:
        writer = HashingWriter(sink)
        for index in order:
            writer.seek(index * CHUNK)
            writer.write(data[index * CHUNK : (index + 1) * CHUNK])
    return writer


def test_in_order_writes_hash_the_file(tmp_path: Path) -> None:
    data = os.urandom(10 * CHUNK + 17)
    writer = write_chunks(tmp_path / "f", data, list(range(11)))
    assert writer.digest(len(data)) == hashlib.md5(data).digest()


def test_chunks_in_any_order_hash_the_file(tmp_path: Path) -> None:
    data = os.urandom(40 * CHUNK)
    order = list(range(40))
    random.Random(7).shuffle(order)
    writer = write_chunks(tmp_path / "f", data, order)
    assert (tmp_path / "f").read_bytes() == data
    assert writer.digest(len(data)) == hashlib.md5(data).digest()


def test_a_gap_or_a_short_file_gives_no_digest(tmp_path: Path) -> None:
    data = os.urandom(5 * CHUNK)
    assert write_chunks(tmp_path / "gap", data, [0, 1, 3, 4]).digest(len(data)) is None
    assert write_chunks(tmp_path / "short", data, [0, 1, 2]).digest(len(data)) is None


def test_a_write_only_sink_gives_no_digest_rather_than_failing(tmp_path: Path) -> None:
    data = os.urandom(3 * CHUNK)
    with open(tmp_path / "f", "wb") as sink:
        writer = HashingWriter(sink)
        for index in (1, 0, 2):
            writer.seek(index * CHUNK)
            writer.write(data[index * CHUNK : (index + 1) * CHUNK])
    assert writer.digest(len(data)) is None
    assert (tmp_path / "f").read_bytes() == data


def test_rewriting_hashed_bytes_gives_no_digest(tmp_path: Path) -> None:
    data = os.urandom(3 * CHUNK)
    writer = write_chunks(tmp_path / "f", data, [0, 1, 2, 1])
    assert writer.digest(len(data)) is None
