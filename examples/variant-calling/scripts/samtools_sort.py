"""Rule samtools_sort: coordinate-sort one sample's BAM."""

import tempfile
from pathlib import Path
from typing import Any

from jobtools import open_log, run, use_binaries


def main(job: Any) -> None:
    source, output = job.input[0], job.output[0]
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    with open_log(job.log[0]) as log, tempfile.TemporaryDirectory(prefix="sort-") as scratch:
        arguments = ["-T", f"{scratch}/part", "-o", output, source]
        if use_binaries(job.params.tools):
            run(["samtools", "sort", *arguments], log)
        else:
            import pysam

            pysam.samtools.sort(*arguments, catch_stdout=False)
            log.write("pysam.samtools.sort " + " ".join(arguments) + "\n")


main(snakemake)  # noqa: F821 - injected by Snakemake's script directive
