"""The Content-Type stored with an uploaded blob, chosen from the file's name.

Python's own table maps several genomics suffixes to unrelated formats (``.vcf`` to
vCard, ``.sam`` to Lotus WordPro, ``.bed`` to RealVNC) and, through /etc/mime.types,
differs from machine to machine. The formats a workflow writes most are therefore
named here, and only the rest fall back to Python's built-in table, never to the
machine's.
"""

from __future__ import annotations

import mimetypes
from pathlib import PurePosixPath

OCTET_STREAM = "application/octet-stream"
TEXT = "text/plain"

# Compressed files are stored as the compressed bytes they are. Declaring
# Content-Encoding instead would let HTTP clients decompress them on the fly, and the
# bytes they then see would no longer match the blob's size and Content-MD5.
COMPRESSION_TYPES = {
    ".gz": "application/gzip",
    ".bgz": "application/gzip",
    ".bz2": "application/x-bzip2",
    ".xz": "application/x-xz",
    ".zst": "application/zstd",
}

TEXT_SUFFIXES = frozenset(
    {
        ".vcf",
        ".sam",
        ".fa",
        ".fasta",
        ".fna",
        ".faa",
        ".ffn",
        ".fq",
        ".fastq",
        ".fai",
        ".bed",
        ".bedgraph",
        ".gff",
        ".gff3",
        ".gtf",
        ".wig",
        ".maf",
        ".psl",
        ".log",
        ".tab",
        ".txt",
        ".md",
        ".smk",
    }
)

BINARY_SUFFIXES = frozenset(
    {
        ".bam",
        ".bai",
        ".cram",
        ".crai",
        ".bcf",
        ".csi",
        ".tbi",
        ".bw",
        ".bigwig",
        ".bb",
        ".bigbed",
        ".2bit",
        ".amb",
        ".ann",
        ".bwt",
        ".pac",
        ".sa",
    }
)

OTHER_TYPES = {
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
}

KNOWN_TYPES = {
    **COMPRESSION_TYPES,
    **dict.fromkeys(TEXT_SUFFIXES, TEXT),
    **dict.fromkeys(BINARY_SUFFIXES, OCTET_STREAM),
    **OTHER_TYPES,
}

_builtin_table = mimetypes.MimeTypes(filenames=())


def content_type_for(name: str) -> str:
    """The Content-Type for a file called ``name`` (a base name or a path)."""
    known = KNOWN_TYPES.get(PurePosixPath(name).suffix.lower())
    if known is not None:
        return known
    guessed, encoding = _builtin_table.guess_type(name, strict=False)
    if encoding is not None or guessed is None:
        return OCTET_STREAM
    return guessed
