"""The tutorial's reference, made ready to upload: the committed genome and the indexes the
workflow reads, built beside a copy of it when missing.

Only `reference/genome.fa` is kept in the repository; its BWA index (.amb .ann .bwt .pac .sa)
and samtools index (.fai) are rebuilt from it in well under a second, byte for byte the same
as the tutorial data's.
"""

from __future__ import annotations

from pathlib import Path

from vcdemo.workspace import REFERENCE_NAME, copy_if_changed, reference_files

EXAMPLE_DIR = Path(__file__).resolve().parents[1]
COMMITTED_GENOME = EXAMPLE_DIR / "reference" / REFERENCE_NAME
BWA_SUFFIXES = (".amb", ".ann", ".bwt", ".pac", ".sa")


def prepare_reference(target_dir: Path, genome: Path = COMMITTED_GENOME) -> list[Path]:
    """Copy `genome` into target_dir and build its missing indexes; return the files to upload.

    A changed genome invalidates the indexes built from the old one."""
    if not genome.is_file():
        raise FileNotFoundError(f"reference genome {genome} is missing")
    fasta = target_dir / REFERENCE_NAME
    if copy_if_changed(genome, fasta):
        for stale in target_dir.glob(f"{REFERENCE_NAME}.*"):
            stale.unlink()
    if not all(fasta.with_name(fasta.name + suffix).is_file() for suffix in BWA_SUFFIXES):
        from pybwa import BwaIndex, BwaVerbosity, set_bwa_verbosity

        set_bwa_verbosity(BwaVerbosity.QUIET)
        BwaIndex.index(fasta)
    if not fasta.with_name(fasta.name + ".fai").is_file():
        import pysam

        pysam.faidx(str(fasta))
    return reference_files(target_dir)
