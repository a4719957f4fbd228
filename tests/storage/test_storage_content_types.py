"""The Content-Type stored with uploaded blobs: genomics formats named right, compressed
files stored as what they are."""

from __future__ import annotations

import pytest

from localcluster.azurite import Azurite
from snakemake_storage_plugin_azblob.content_types import content_type_for
from snakemake_storage_plugin_azblob.transfer import MIB

from .conftest import ProviderFactory


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # Python's own table says text/vcard, Lotus WordPro and RealVNC for these.
        ("calls/sample.vcf", "text/plain"),
        ("mapped/sample.sam", "text/plain"),
        ("peaks.bed", "text/plain"),
        ("genome.fa", "text/plain"),
        ("reads/A.FASTQ", "text/plain"),
        ("annotation.gff3", "text/plain"),
        ("mapped/sample.bam", "application/octet-stream"),
        ("mapped/sample.bam.bai", "application/octet-stream"),
        ("genome.fa.sa", "application/octet-stream"),
        # Compressed content is labelled by its compression, whatever is inside.
        ("calls/all.vcf.gz", "application/gzip"),
        ("reads/A.fastq.gz", "application/gzip"),
        ("table.txt.gz", "application/gzip"),
        ("bundle.tar.bz2", "application/x-bzip2"),
        ("reads.fq.xz", "application/x-xz"),
        ("calls.vcf.bgz", "application/gzip"),
        ("config.yaml", "application/yaml"),
        ("plots/quals.svg", "image/svg+xml"),
        ("summary.csv", "text/csv"),
        ("report.html", "text/html"),
        ("no_suffix", "application/octet-stream"),
        (".hidden", "application/octet-stream"),
        ("data.unknownsuffix", "application/octet-stream"),
    ],
)
def test_content_type_follows_the_file_name(name: str, expected: str) -> None:
    assert content_type_for(name) == expected


@pytest.mark.parametrize(
    ("name", "size", "expected"),
    [
        ("calls/small.vcf", 100, "text/plain"),
        ("calls/small.vcf.gz", 100, "application/gzip"),
        # Above the block size the upload is staged in blocks and committed as a list.
        ("calls/large.vcf.gz", 2 * MIB + 1, "application/gzip"),
    ],
)
def test_uploaded_blobs_carry_their_content_type(
    make_provider: ProviderFactory,
    azurite: Azurite,
    container: str,
    name: str,
    size: int,
    expected: str,
) -> None:
    provider = make_provider(block_size=MIB)
    obj = provider.object(f"az://{container}/{name}")
    obj.local_path().parent.mkdir(parents=True, exist_ok=True)
    obj.local_path().write_bytes(b"x" * size)

    obj.store_object()

    properties = azurite.service_client().get_blob_client(container, name).get_blob_properties()
    assert properties.content_settings.content_type == expected
    assert properties.content_settings.content_encoding is None
