"""Rule plot_quals: histogram of the variant qualities (QUAL column) in the calls."""

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from jobtools import open_log


def variant_qualities(vcf: Path) -> list[float]:
    qualities = []
    with vcf.open() as handle:
        for line in handle:
            if line.startswith("#"):
                continue
            qual = line.split("\t")[5]
            if qual != ".":
                qualities.append(float(qual))
    return qualities


def main(job: Any) -> None:
    output = Path(job.output[0])
    output.parent.mkdir(parents=True, exist_ok=True)
    with open_log(job.log[0]) as log:
        qualities = variant_qualities(Path(job.input[0]))
        figure, axes = plt.subplots(figsize=(6, 4))
        axes.hist(qualities, bins=30)
        axes.set_xlabel("variant quality (QUAL)")
        axes.set_ylabel("number of calls")
        axes.set_title(f"{len(qualities)} calls")
        figure.tight_layout()
        figure.savefig(output, format="svg")
        plt.close(figure)
        log.write(f"plotted {len(qualities)} qualities\n")


main(snakemake)  # noqa: F821 - injected by Snakemake's script directive
