"""Blob Storage chores of the demo: connect, upload inputs once, list and fetch results."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContainerClient, ContentSettings

CONTENT_TYPES = {
    ".fa": "text/plain",
    ".fai": "text/plain",
    ".fastq": "text/plain",
    ".vcf": "text/plain",
    ".tsv": "text/plain",
    ".log": "text/plain",
    ".svg": "image/svg+xml",
    ".bam": "application/octet-stream",
}
DIGEST_KEY = "sha256"


def account_name_from_url(endpoint_url: str) -> str:
    """Path-style (Azurite: http://127.0.0.1:10000/ACCOUNT) or host-style account URL."""
    parts = urlsplit(endpoint_url)
    host = parts.hostname or ""
    if host in ("127.0.0.1", "localhost") or host.replace(".", "").isdigit():
        account = parts.path.strip("/").split("/")[0]
    else:
        account = host.split(".")[0]
    if not account:
        raise ValueError(f"cannot tell the storage account from endpoint URL {endpoint_url!r}")
    return account


def service_client(endpoint_url: str, account_key: str) -> BlobServiceClient:
    credential = {"account_name": account_name_from_url(endpoint_url), "account_key": account_key}
    return BlobServiceClient(account_url=endpoint_url, credential=credential)


def ensure_container(service: BlobServiceClient, name: str) -> ContainerClient:
    container = service.get_container_client(name)
    with contextlib.suppress(ResourceExistsError):
        container.create_container()
    return container


def file_digest(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def upload_if_changed(container: ContainerClient, path: Path, blob_name: str) -> bool:
    """Upload unless the blob already holds this content.

    Re-uploading identical inputs would make them newer than the results and make
    Snakemake run everything again, so unchanged files are left alone.
    """
    digest = file_digest(path)
    blob = container.get_blob_client(blob_name)
    try:
        if blob.get_blob_properties().metadata.get(DIGEST_KEY) == digest:
            return False
    except ResourceNotFoundError:
        pass
    content_type = CONTENT_TYPES.get(path.suffix, "application/octet-stream")
    with path.open("rb") as handle:
        blob.upload_blob(
            handle,
            overwrite=True,
            metadata={DIGEST_KEY: digest},
            content_settings=ContentSettings(content_type=content_type),
        )
    return True


def upload_files(container: ContainerClient, files: Iterable[tuple[Path, str]]) -> list[str]:
    """Upload (local path, blob name) pairs; return the names actually uploaded."""
    return [name for path, name in files if upload_if_changed(container, path, name)]


def blob_table(container: ContainerClient) -> str:
    """The container's blobs as a table shaped like `az storage blob list --output table`."""
    header = ("Name", "Blob Type", "Length", "Content Type", "Last Modified")
    rows = [
        (
            blob.name,
            str(blob.blob_type.value if hasattr(blob.blob_type, "value") else blob.blob_type),
            str(blob.size),
            blob.content_settings.content_type or "",
            blob.last_modified.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
        )
        for blob in container.list_blobs()
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(header, widths, strict=True)),
        "  ".join("-" * width for width in widths),
    ]
    lines += [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines)


def download(container: ContainerClient, blob_name: str, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    with partial.open("wb") as handle:
        container.get_blob_client(blob_name).download_blob().readinto(handle)
    partial.replace(target)
    return target
