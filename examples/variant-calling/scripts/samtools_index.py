"""Rule samtools_index: index one sorted BAM."""

from typing import Any

from jobtools import open_log, run, use_binaries


def main(job: Any) -> None:
    arguments = [job.input[0], job.output[0]]
    with open_log(job.log[0]) as log:
        if use_binaries(job.params.tools):
            run(["samtools", "index", *arguments], log)
        else:
            import pysam

            pysam.samtools.index(*arguments, catch_stdout=False)
            log.write("pysam.samtools.index " + " ".join(arguments) + "\n")


main(snakemake)  # noqa: F821 - injected by Snakemake's script directive
