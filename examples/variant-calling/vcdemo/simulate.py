"""Simulate sequencing reads from a reference with planted SNPs and a known truth.

Everything is driven by one seeded ``random.Random`` so that the same arguments always give
byte-identical FASTQ and truth files.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

BASES = "ACGT"
COMPLEMENT = str.maketrans("ACGTN", "TGCAN")
TRUTH_HEADER = ("sample", "chrom", "pos", "ref", "alt", "genotype", "depth")


@dataclass(frozen=True)
class SimulationSettings:
    samples: Sequence[str] = ("A", "B", "C")
    depth: float = 30.0
    read_length: int = 100
    snps_per_sample: int = 20
    shared_fraction: float = 0.5
    het_fraction: float = 0.3
    error_rate: float = 0.001
    paired: bool = False
    fragment_mean: int = 300
    fragment_sd: int = 30
    region_start: int = 0
    region_end: int | None = None
    seed: int = 42

    def validate(self, genome_length: int) -> None:
        if not self.samples:
            raise ValueError("samples: give at least one sample name")
        if self.depth <= 0:
            raise ValueError(f"depth must be positive, got {self.depth}")
        if self.read_length < 30:
            raise ValueError(f"read_length must be at least 30, got {self.read_length}")
        if not 0 <= self.error_rate < 0.2:
            raise ValueError(f"error_rate must be in [0, 0.2), got {self.error_rate}")
        end = self.region_end if self.region_end is not None else genome_length
        if not 0 <= self.region_start < end <= genome_length:
            raise ValueError(
                f"region {self.region_start}-{end} is outside the reference "
                f"(length {genome_length})"
            )
        if end - self.region_start < 2 * self.span:
            raise ValueError(
                f"region {self.region_start}-{end} is shorter than two fragments ({2 * self.span})"
            )

    @property
    def span(self) -> int:
        """Length of reference one read (or one read pair) covers."""
        if self.paired:
            return self.fragment_mean + 4 * self.fragment_sd
        return self.read_length


@dataclass(frozen=True)
class PlantedSnp:
    pos: int  # 0-based
    ref: str
    alt: str


@dataclass(frozen=True)
class TruthRecord:
    sample: str
    chrom: str
    pos: int  # 1-based, as in VCF
    ref: str
    alt: str
    genotype: str
    depth: int


def read_fasta(path: Path) -> tuple[str, str]:
    """Return (name, sequence) of the first record of a FASTA file."""
    name = ""
    chunks: list[str] = []
    with path.open() as handle:
        for line in handle:
            if line.startswith(">"):
                if name:
                    break
                name = line[1:].split()[0]
            else:
                chunks.append(line.strip().upper())
    if not name:
        raise ValueError(f"{path}: no FASTA record found")
    return name, "".join(chunks)


def choose_snp_sites(
    sequence: str, settings: SimulationSettings, rng: random.Random
) -> dict[str, dict[int, tuple[PlantedSnp, str]]]:
    """Pick SNP sites per sample: {sample: {pos: (snp, genotype)}}.

    Sites keep a margin of one read span from the region ends and from each other so that
    every site is reached by reads from both sides and no read carries two SNPs.
    """
    end = settings.region_end if settings.region_end is not None else len(sequence)
    margin = settings.span
    wanted_shared = round(settings.snps_per_sample * settings.shared_fraction)
    wanted_private = settings.snps_per_sample - wanted_shared
    wanted_total = wanted_shared + wanted_private * len(settings.samples)
    too_many = ValueError(
        f"cannot place {wanted_total} SNPs {margin} bases apart in region "
        f"{settings.region_start}-{end}: use a larger region or fewer SNPs"
    )
    if wanted_total * margin > end - settings.region_start - 2 * margin:
        raise too_many
    positions: list[int] = []
    attempts = 0
    while len(positions) < wanted_total:
        attempts += 1
        if attempts > 100 * wanted_total:
            raise too_many
        pos = rng.randrange(settings.region_start + margin, end - margin)
        window = sequence[pos - margin : pos + margin]
        if "N" in window or any(abs(pos - other) < margin for other in positions):
            continue
        positions.append(pos)
    positions.sort()
    rng.shuffle(positions)

    def planted(pos: int) -> PlantedSnp:
        ref = sequence[pos]
        return PlantedSnp(pos, ref, rng.choice([b for b in BASES if b != ref]))

    def genotype() -> str:
        return "0/1" if rng.random() < settings.het_fraction else "1/1"

    shared = [planted(p) for p in positions[:wanted_shared]]
    rest = positions[wanted_shared:]
    sites: dict[str, dict[int, tuple[PlantedSnp, str]]] = {}
    for index, sample in enumerate(settings.samples):
        private = rest[index * wanted_private : (index + 1) * wanted_private]
        snps = shared + [planted(p) for p in private]
        sites[sample] = {snp.pos: (snp, genotype()) for snp in snps}
    return sites


def haplotypes(sequence: str, sample_sites: dict[int, tuple[PlantedSnp, str]]) -> list[str]:
    """Two haplotypes of a diploid sample: het SNPs on the second one only."""
    first = list(sequence)
    second = list(sequence)
    for pos, (snp, genotype) in sample_sites.items():
        second[pos] = snp.alt
        if genotype == "1/1":
            first[pos] = snp.alt
    return ["".join(first), "".join(second)]


def add_errors(read: str, rate: float, rng: random.Random) -> str:
    if rate <= 0:
        return read
    bases = list(read)
    position = int(rng.expovariate(rate))
    while position < len(bases):
        bases[position] = rng.choice([b for b in BASES if b != bases[position]])
        position += 1 + int(rng.expovariate(rate))
    return "".join(bases)


def reverse_complement(read: str) -> str:
    return read.translate(COMPLEMENT)[::-1]


def quality_string(length: int, rng: random.Random) -> str:
    # A gentle decline along the read, like real short-read data, without per-base randomness.
    top = 38 + rng.randrange(3)
    return "".join(chr(33 + top - (10 * i) // length) for i in range(length))


@dataclass
class SampleReads:
    reads: list[tuple[str, str, str]]  # (name, sequence, quality) of read 1
    mates: list[tuple[str, str, str]]  # read 2, empty for single-end
    covered: list[tuple[int, int]]  # reference intervals, for depth at the truth sites


def simulate_sample(
    name: str,
    sequence: str,
    sample_sites: dict[int, tuple[PlantedSnp, str]],
    settings: SimulationSettings,
    rng: random.Random,
) -> SampleReads:
    end = settings.region_end if settings.region_end is not None else len(sequence)
    start = settings.region_start
    length = settings.read_length
    haps = haplotypes(sequence, sample_sites)
    bases_per_unit = 2 * length if settings.paired else length
    count = int(settings.depth * (end - start) / bases_per_unit)
    out = SampleReads([], [], [])
    while len(out.reads) < count:
        hap = haps[rng.randrange(2)]
        if settings.paired:
            fragment = max(2 * length, int(rng.gauss(settings.fragment_mean, settings.fragment_sd)))
        else:
            fragment = length
        begin = rng.randrange(start, end - fragment)
        window = hap[begin : begin + fragment]
        if window.count("N") > length // 10:
            continue
        read_name = f"{name}_{len(out.reads) + 1}"
        if settings.paired:
            first = add_errors(window[:length], settings.error_rate, rng)
            second = add_errors(reverse_complement(window[-length:]), settings.error_rate, rng)
            if rng.random() < 0.5:
                first, second = second, first
            out.reads.append((f"{read_name}/1", first, quality_string(length, rng)))
            out.mates.append((f"{read_name}/2", second, quality_string(length, rng)))
            out.covered += [(begin, begin + length), (begin + fragment - length, begin + fragment)]
        else:
            read = add_errors(window, settings.error_rate, rng)
            if rng.random() < 0.5:
                read = reverse_complement(read)
            out.reads.append((read_name, read, quality_string(length, rng)))
            out.covered.append((begin, begin + fragment))
    return out


def depth_at(position: int, covered: list[tuple[int, int]]) -> int:
    return sum(1 for begin, end in covered if begin <= position < end)


def write_fastq(path: Path, records: list[tuple[str, str, str]]) -> None:
    partial = path.with_name(path.name + ".partial")
    with partial.open("w") as handle:
        for name, read, quality in records:
            handle.write(f"@{name}\n{read}\n+\n{quality}\n")
    partial.replace(path)


def write_truth(path: Path, records: list[TruthRecord]) -> None:
    partial = path.with_name(path.name + ".partial")
    with partial.open("w") as handle:
        handle.write("\t".join(TRUTH_HEADER) + "\n")
        for r in records:
            fields = (r.sample, r.chrom, r.pos, r.ref, r.alt, r.genotype, r.depth)
            handle.write("\t".join(str(f) for f in fields) + "\n")
    partial.replace(path)


def read_truth(path: Path) -> list[TruthRecord]:
    lines = path.read_text().splitlines()
    if not lines or tuple(lines[0].split("\t")) != TRUTH_HEADER:
        raise ValueError(f"{path}: not a truth table (expected header {TRUTH_HEADER})")
    records = []
    for line in lines[1:]:
        sample, chrom, pos, ref, alt, genotype, depth = line.split("\t")
        records.append(TruthRecord(sample, chrom, int(pos), ref, alt, genotype, int(depth)))
    return records


def fastq_names(sample: str, paired: bool) -> list[str]:
    if paired:
        return [f"{sample}_1.fastq", f"{sample}_2.fastq"]
    return [f"{sample}.fastq"]


def simulate(reference: Path, out_dir: Path, settings: SimulationSettings) -> list[TruthRecord]:
    """Write samples/<sample>.fastq (or _1/_2) and truth.tsv under out_dir; return the truth."""
    chrom, sequence = read_fasta(reference)
    settings.validate(len(sequence))
    rng = random.Random(settings.seed)
    sites = choose_snp_sites(sequence, settings, rng)
    samples_dir = out_dir / "samples"
    samples_dir.mkdir(parents=True, exist_ok=True)
    truth: list[TruthRecord] = []
    for sample in settings.samples:
        reads = simulate_sample(sample, sequence, sites[sample], settings, rng)
        names = fastq_names(sample, settings.paired)
        write_fastq(samples_dir / names[0], reads.reads)
        if settings.paired:
            write_fastq(samples_dir / names[1], reads.mates)
        for pos, (snp, genotype) in sorted(sites[sample].items()):
            depth = depth_at(pos, reads.covered)
            truth.append(TruthRecord(sample, chrom, pos + 1, snp.ref, snp.alt, genotype, depth))
    write_truth(out_dir / "truth.tsv", truth)
    return truth


def iter_fastq(path: Path) -> Iterator[tuple[str, str, str]]:
    with path.open() as handle:
        while header := handle.readline():
            read = handle.readline().strip()
            handle.readline()
            quality = handle.readline().strip()
            yield header[1:].strip(), read, quality
