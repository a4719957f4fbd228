"""Compare called variants (a multi-sample VCF) with the simulator's truth."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vcdemo.simulate import TruthRecord

Call = tuple[str, str, int, str]  # sample, chrom, pos (1-based), alt


@dataclass(frozen=True)
class RecallReport:
    min_depth: int
    evaluated: int  # planted SNPs with at least min_depth simulated reads
    found: int
    missed: list[TruthRecord]
    false_calls: int  # non-reference genotypes at positions where nothing was planted

    @property
    def recall(self) -> float:
        return self.found / self.evaluated if self.evaluated else 0.0

    def summary(self) -> str:
        return (
            f"recall {self.recall:.3f} ({self.found}/{self.evaluated} planted SNPs with "
            f"depth >= {self.min_depth}); {self.false_calls} calls at unplanted positions"
        )


def non_reference_calls(vcf_text: str) -> set[Call]:
    """(sample, chrom, pos, alt) for every sample whose genotype carries an ALT allele."""
    calls: set[Call] = set()
    samples: list[str] = []
    for line in vcf_text.splitlines():
        if line.startswith("##") or not line.strip():
            continue
        fields = line.split("\t")
        if line.startswith("#CHROM"):
            samples = fields[9:]
            continue
        if not samples:
            raise ValueError("VCF has no #CHROM header line with sample columns")
        chrom, pos, alts, keys = fields[0], int(fields[1]), fields[4].split(","), fields[8]
        gt_index = keys.split(":").index("GT")
        for sample, values in zip(samples, fields[9:], strict=True):
            genotype = values.split(":")[gt_index].replace("|", "/")
            for allele in genotype.split("/"):
                if allele not in (".", "0"):
                    calls.add((sample, chrom, pos, alts[int(allele) - 1]))
    return calls


def compare(truth: list[TruthRecord], vcf_text: str, min_depth: int = 20) -> RecallReport:
    calls = non_reference_calls(vcf_text)
    evaluated = [t for t in truth if t.depth >= min_depth]
    missed = [t for t in evaluated if (t.sample, t.chrom, t.pos, t.alt) not in calls]
    planted = {(t.sample, t.chrom, t.pos) for t in truth}
    false_calls = sum(1 for sample, chrom, pos, _ in calls if (sample, chrom, pos) not in planted)
    return RecallReport(
        min_depth=min_depth,
        evaluated=len(evaluated),
        found=len(evaluated) - len(missed),
        missed=missed,
        false_calls=false_calls,
    )


def compare_files(truth_tsv: Path, vcf: Path, min_depth: int = 20) -> RecallReport:
    from vcdemo.simulate import read_truth

    return compare(read_truth(truth_tsv), vcf.read_text(), min_depth)
