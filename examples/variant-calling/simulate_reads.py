"""Simulate the tutorial's samples from a reference genome, with planted SNPs and their truth.

    python examples/variant-calling/simulate_reads.py \
        --reference examples/variant-calling/reference/genome.fa \
        --out data

writes data/samples/A.fastq, B.fastq, C.fastq (or A_1.fastq/A_2.fastq with --paired) and
data/truth.tsv (sample, chrom, pos, ref, alt, genotype, depth: the number of simulated reads
covering the site). The same arguments always produce the same files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vcdemo.simulate import SimulationSettings, simulate


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = SimulationSettings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=Path, required=True, help="FASTA file")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--samples", default=",".join(defaults.samples), help="comma-separated")
    parser.add_argument("--depth", type=float, default=defaults.depth, help="mean read depth")
    parser.add_argument("--read-length", type=int, default=defaults.read_length)
    parser.add_argument("--snps-per-sample", type=int, default=defaults.snps_per_sample)
    parser.add_argument("--het-fraction", type=float, default=defaults.het_fraction)
    parser.add_argument("--error-rate", type=float, default=defaults.error_rate)
    parser.add_argument("--paired", action="store_true", help="write paired-end FASTQ")
    parser.add_argument("--region-start", type=int, default=0, help="0-based, inclusive")
    parser.add_argument("--region-end", type=int, default=None, help="0-based, exclusive")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.reference.is_file():
        print(f"--reference: no such file: {args.reference}", file=sys.stderr)
        return 2
    settings = SimulationSettings(
        samples=tuple(s for s in args.samples.split(",") if s),
        depth=args.depth,
        read_length=args.read_length,
        snps_per_sample=args.snps_per_sample,
        het_fraction=args.het_fraction,
        error_rate=args.error_rate,
        paired=args.paired,
        region_start=args.region_start,
        region_end=args.region_end,
        seed=args.seed,
    )
    try:
        truth = simulate(args.reference, args.out, settings)
    except ValueError as error:
        print(f"simulate_reads: {error}", file=sys.stderr)
        return 2
    print(f"wrote {len(settings.samples)} samples and {len(truth)} planted SNPs under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
