"""Rule bcftools_call: pile up all samples, call SNPs and indels (bcftools mpileup | call -mv)."""

import tempfile
from pathlib import Path
from typing import Any

from jobtools import open_log, run, use_binaries


def main(job: Any) -> None:
    genome, bams, output = job.input.fa, list(job.input.bam), job.output[0]
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    with open_log(job.log[0]) as log, tempfile.TemporaryDirectory(prefix="call-") as scratch:
        pileup = f"{scratch}/pileup.bcf"
        mpileup = ["mpileup", "-f", genome, "-Ou", "-o", pileup, *bams]
        call = ["call", "-mv", "-o", output, pileup]
        if use_binaries(job.params.tools):
            run(["bcftools", *mpileup], log)
            run(["bcftools", *call], log)
        else:
            import pysam.bcftools

            # pysam captures stdout through its own -o unless told not to.
            pysam.bcftools.mpileup(*mpileup[1:], catch_stdout=False)
            pysam.bcftools.call(*call[1:], catch_stdout=False)
            log.write("pysam.bcftools " + " ".join(mpileup) + "\n")
            log.write("pysam.bcftools " + " ".join(call) + "\n")


main(snakemake)  # noqa: F821 - injected by Snakemake's script directive
