"""Streamed, verified transfers of single files.

Uploads read the file once, block by block, staging up to ``max_concurrency`` blocks in
parallel (memory bound: one block more than that) while computing the MD5, and store
the MD5 in the blob's Content-MD5 property on commit. Downloads go to a temporary name
in the destination folder, are checked against the stored size and MD5, and only then
renamed to the final name; the temporary file is removed on any failure. The MD5 of a
download is computed while it is written (see hashing).
"""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from azure.storage.blob import BlobBlock, BlobClient, ContentSettings, StandardBlobTier
from snakemake_interface_common.exceptions import WorkflowError

from snakemake_storage_plugin_azblob.content_types import content_type_for
from snakemake_storage_plugin_azblob.hashing import HashingWriter

MIB = 1024 * 1024
MAX_BLOCKS = 50_000
MAX_BLOCK_SIZE = 4000 * MIB
AUTO_BLOCK_SIZE = 8 * MIB
HASH_READ_SIZE = 4 * MIB
TEMP_MARKER = ".azblob-part-"


class IntegrityError(WorkflowError):
    """Downloaded content does not match the blob's stored size or MD5."""


def choose_block_size(size: int, configured: int | None) -> int:
    """Block size for a file of ``size`` bytes: the configured or automatic size,
    raised (to whole MiB) when the file would otherwise need more than 50,000 blocks."""
    block = configured or AUTO_BLOCK_SIZE
    needed = -(-size // MAX_BLOCKS)
    if needed > block:
        block = -(-needed // MIB) * MIB
    if block > MAX_BLOCK_SIZE:
        raise WorkflowError(
            f"file of {size} bytes is larger than Azure's block blob limit "
            f"({MAX_BLOCKS} blocks of {MAX_BLOCK_SIZE} bytes)"
        )
    return block


def content_settings_for(path: Path, md5: bytes) -> ContentSettings:
    return ContentSettings(content_type=content_type_for(path.name), content_md5=bytearray(md5))


def upload_file(
    blob: BlobClient,
    path: Path,
    *,
    block_size: int | None,
    max_concurrency: int,
    tier: StandardBlobTier | None = None,
) -> bytes:
    """Upload ``path`` to ``blob`` (replacing it) in access tier ``tier`` (None: the
    account's default); return the MD5 digest stored with it."""
    size = path.stat().st_size
    block = choose_block_size(size, block_size)
    if size <= block:
        data = path.read_bytes()
        md5 = hashlib.md5(data).digest()
        blob.upload_blob(
            data,
            overwrite=True,
            content_settings=content_settings_for(path, md5),
            standard_blob_tier=tier,
        )
        return md5
    digest = hashlib.md5()
    # A fresh prefix per upload keeps concurrent uploads of the same name from mixing blocks.
    prefix = uuid.uuid4().hex[:16]
    block_ids: list[str] = []
    pending: deque[Future] = deque()
    with open(path, "rb") as source, ThreadPoolExecutor(max_concurrency) as pool:
        try:
            while data := source.read(block):
                digest.update(data)
                block_id = base64.b64encode(f"{prefix}{len(block_ids):08d}".encode()).decode()
                block_ids.append(block_id)
                pending.append(pool.submit(blob.stage_block, block_id, data, length=len(data)))
                del data
                while len(pending) > max_concurrency:
                    pending.popleft().result()
            while pending:
                pending.popleft().result()
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    md5 = digest.digest()
    blob.commit_block_list(
        [BlobBlock(block_id=block_id) for block_id in block_ids],
        content_settings=content_settings_for(path, md5),
        standard_blob_tier=tier,
    )
    return md5


def temp_path_for(destination: Path) -> Path:
    return destination.with_name(f".{destination.name}{TEMP_MARKER}{uuid.uuid4().hex[:12]}")


def file_md5(path: Path) -> bytes:
    digest = hashlib.md5()
    with open(path, "rb") as source:
        while chunk := source.read(HASH_READ_SIZE):
            digest.update(chunk)
    return digest.digest()


def download_file(blob: BlobClient, destination: Path, *, max_concurrency: int, label: str) -> None:
    """Download ``blob`` to ``destination`` atomically, verifying size and stored MD5.

    ``label`` names the blob in error messages (a query safe to print).
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_path_for(destination)
    try:
        downloader = blob.download_blob(max_concurrency=max_concurrency)
        with open(temp, "w+b") as sink:
            writer = HashingWriter(sink)
            written = downloader.readinto(writer)
        properties = downloader.properties
        if written != properties.size:
            raise IntegrityError(
                f"download of {label} ended after {written} of {properties.size} bytes"
            )
        expected = properties.content_settings.content_md5
        if expected:
            actual = writer.digest(written) or file_md5(temp)
            if bytes(expected) != actual:
                raise IntegrityError(
                    f"content of {label} does not match its stored MD5 "
                    f"(stored {bytes(expected).hex()}, received {actual.hex()}); "
                    "the blob is corrupt or was changed while downloading, nothing was kept"
                )
        os.replace(temp, destination)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
