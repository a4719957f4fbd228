"""What Snakemake asks of a pipe() output that never reaches storage. (That a FIFO is never
read as an upload is tested with the transfers.)"""

from __future__ import annotations


def test_checksum_of_a_missing_blob_is_none(provider, container: str) -> None:
    """As Snakemake's checksum of a missing local file: a pipe() input never is in storage,
    yet Snakemake asks for its checksum when recording the consumer's metadata."""
    assert provider.object(f"az://{container}/piped/numbers.pipe").checksum() is None
