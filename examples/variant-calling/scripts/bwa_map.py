"""Rule bwa_map: align one sample's reads to the reference and write an unsorted BAM."""

import os
import tempfile
from pathlib import Path
from typing import Any, TextIO

from jobtools import open_log, run, use_binaries


def read_group_fields(read_group: str) -> dict[str, str]:
    """'@RG\\tID:A\\tSM:A' (escaped tabs, as bwa -R takes it) -> {'ID': 'A', 'SM': 'A'}."""
    parts = read_group.replace("\\t", "\t").split("\t")[1:]
    return dict(part.split(":", 1) for part in parts)


def map_with_pybwa(
    genome: Path, reads: list[Path], read_group: str, threads: int, output: Path, log: TextIO
) -> None:
    import pysam
    from pybwa import BwaIndex, BwaMem, BwaMemOptions

    # pybwa wants genome.dict beside the index; the staged reference folder may be read-only
    # or shared with other jobs, so the index is linked into a private folder instead.
    with tempfile.TemporaryDirectory(prefix="bwa-index-") as folder:
        prefix = Path(folder) / genome.name
        for suffix in ("", ".amb", ".ann", ".bwt", ".pac", ".sa"):
            os.symlink(genome.resolve().with_name(genome.name + suffix), f"{prefix}{suffix}")
        pysam.samtools.dict("-o", str(prefix.with_suffix(".dict")), str(prefix))
        index = BwaIndex(prefix)
        aligner = BwaMem(index=index)
        options = BwaMemOptions(threads=threads)  # bwa mem -t: the rule's threads
        fields = read_group_fields(read_group)
        header = index.header.to_dict()
        header["RG"] = [fields]
        header.pop("PG", None)
        written = 0
        with pysam.AlignmentFile(str(output), "wb", header=header) as bam:
            for fastq in reads:
                # Mates are aligned independently: pybwa 2 has no paired-end mode.
                with pysam.FastxFile(str(fastq)) as records:
                    batch = list(records)
                for alignments in aligner.align(batch, opt=options):
                    for alignment in alignments:
                        alignment.set_tag("RG", fields["ID"])
                        out = pysam.AlignedSegment.from_dict(alignment.to_dict(), bam.header)
                        bam.write(out)
                        written += 1
    log.write(
        f"pybwa: aligned {len(reads)} file(s) with {threads} thread(s), wrote {written} records\n"
    )


def map_with_bwa(
    genome: Path, reads: list[Path], read_group: str, threads: int, output: Path, log: TextIO
) -> None:
    with tempfile.TemporaryDirectory(prefix="bwa-") as folder:
        sam = Path(folder) / "mapped.sam"
        command = ["bwa", "mem", "-R", read_group, "-t", str(threads), str(genome)]
        run([*command, *map(str, reads)], log, stdout=sam)
        run(["samtools", "view", "-b", "-o", str(output), str(sam)], log)


def main(job: Any) -> None:
    genome = Path(job.input.genome)
    reads = [Path(r) for r in job.input.reads]
    output = Path(job.output[0])
    output.parent.mkdir(parents=True, exist_ok=True)
    with open_log(job.log[0]) as log:
        if use_binaries(job.params.tools):
            map_with_bwa(genome, reads, job.params.read_group, job.threads, output, log)
        else:
            map_with_pybwa(genome, reads, job.params.read_group, job.threads, output, log)


main(snakemake)  # noqa: F821 - injected by Snakemake's script directive
