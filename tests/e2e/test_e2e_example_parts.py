"""The variant-calling example's own parts, without a cluster: read simulation, the truth
comparison, the dev-environment file, the autoscaler story the demo prints, and the tools
switch of the rule scripts."""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from vcdemo.devenv import DevEnvironmentMissing, load_dev_environment, parse_env_file
from vcdemo.recall import compare, non_reference_calls
from vcdemo.reference import COMMITTED_GENOME, EXAMPLE_DIR, prepare_reference
from vcdemo.scalewatch import ScaleStory, SeenEvent
from vcdemo.simulate import (
    SimulationSettings,
    TruthRecord,
    iter_fastq,
    read_fasta,
    read_truth,
    reverse_complement,
    simulate,
)

SMALL = SimulationSettings(
    samples=("A", "B"), depth=20, snps_per_sample=4, region_start=30_000, region_end=45_000
)


def digest(folder: Path) -> str:
    sha = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            sha.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    return sha.hexdigest()


def test_same_seed_same_files_other_seed_other_files(tmp_path: Path) -> None:
    reference = COMMITTED_GENOME
    simulate(reference, tmp_path / "one", SMALL)
    simulate(reference, tmp_path / "two", SMALL)
    simulate(reference, tmp_path / "three", SimulationSettings(**{**SMALL.__dict__, "seed": 1}))
    assert digest(tmp_path / "one") == digest(tmp_path / "two")
    assert digest(tmp_path / "one") != digest(tmp_path / "three")
    assert not list((tmp_path / "one").rglob("*.partial"))


def test_planted_snps_are_in_the_reads_at_the_recorded_depth(tmp_path: Path) -> None:
    _, genome = read_fasta(COMMITTED_GENOME)
    truth = simulate(COMMITTED_GENOME, tmp_path, SMALL)
    assert len(truth) == 2 * 4
    shared = {t.pos for t in truth if t.sample == "A"} & {t.pos for t in truth if t.sample == "B"}
    assert len(shared) == 2  # half of each sample's SNPs are shared
    reads = [r for _, r, _ in iter_fastq(tmp_path / "samples" / "A.fastq")]
    assert len(reads) == int(20 * 15_000 / 100)
    strands = reads + [reverse_complement(r) for r in reads]
    for record in (t for t in truth if t.sample == "A"):
        assert genome[record.pos - 1] == record.ref != record.alt
        left = genome[record.pos - 16 : record.pos - 1]  # 15 bases before the SNP
        alt_reads = sum(1 for r in strands if left + record.alt in r)
        ref_reads = sum(1 for r in strands if left + record.ref in r)
        if record.genotype == "1/1":
            assert alt_reads > 0 and ref_reads == 0, record
        else:
            assert alt_reads > 0 and ref_reads > 0, record
        assert record.depth >= alt_reads
    assert read_truth(tmp_path / "truth.tsv") == truth


def test_paired_end_writes_two_files_of_mates(tmp_path: Path) -> None:
    settings = SimulationSettings(**{**SMALL.__dict__, "paired": True, "samples": ("A",)})
    simulate(COMMITTED_GENOME, tmp_path, settings)
    first = list(iter_fastq(tmp_path / "samples" / "A_1.fastq"))
    second = list(iter_fastq(tmp_path / "samples" / "A_2.fastq"))
    assert len(first) == len(second) > 0
    assert all(
        a[0].removesuffix("/1") == b[0].removesuffix("/2")
        for a, b in zip(first, second, strict=True)
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"depth": 0}, "depth must be positive"),
        ({"region_end": 10**9}, "outside the reference"),
        ({"snps_per_sample": 10_000}, "cannot place"),
    ],
)
def test_bad_settings_are_named(tmp_path: Path, change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        simulate(
            COMMITTED_GENOME,
            tmp_path,
            SimulationSettings(**{**SMALL.__dict__, **change}),
        )
    assert not (tmp_path / "truth.tsv").exists()


VCF = """##fileformat=VCFv4.2
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tA\tB
I\t100\t.\tA\tG\t50\t.\tDP=30\tGT:PL\t0/1:1,0,1\t0/0:0,1,1
I\t200\t.\tC\tT,G\t50\t.\tDP=30\tGT:PL\t1/1:1,1,0\t0|2:0,1,1
I\t300\t.\tT\tA\t50\t.\tDP=30\tGT:PL\t./.:0,0,0\t1/1:1,1,0
"""


def test_recall_counts_genotypes_per_sample() -> None:
    assert non_reference_calls(VCF) == {
        ("A", "I", 100, "G"),
        ("A", "I", 200, "T"),
        ("B", "I", 200, "G"),
        ("B", "I", 300, "A"),
    }
    truth = [
        TruthRecord("A", "I", 100, "A", "G", "0/1", 25),
        TruthRecord("B", "I", 100, "A", "G", "0/1", 25),  # missed: B is 0/0 there
        TruthRecord("A", "I", 200, "C", "T", "1/1", 30),
        TruthRecord("B", "I", 200, "C", "G", "0/1", 5),  # too shallow to count
    ]
    report = compare(truth, VCF, min_depth=20)
    assert (report.evaluated, report.found, report.false_calls) == (3, 2, 1)
    assert report.missed == [truth[1]]
    assert report.recall == pytest.approx(2 / 3)


def test_env_file_is_read_like_a_shell_would(tmp_path: Path) -> None:
    text = (
        "# comment\n"
        "export KUBECONFIG=/x/kubeconfig\n"
        "export SNAKEMAKE_STORAGE_AZBLOB_ENDPOINT_URL='http://127.0.0.1:1/devstoreaccount1'\n"
        'export SNAKEMAKE_STORAGE_AZBLOB_ACCOUNT_KEY="a/b+c=="\n'
        'export PATH=/x/bin:"$PATH"\n'
    )
    variables = parse_env_file(text)
    assert variables["SNAKEMAKE_STORAGE_AZBLOB_ACCOUNT_KEY"] == "a/b+c=="
    (tmp_path / ".dev").mkdir()
    (tmp_path / ".dev" / "env.sh").write_text(text)
    env = load_dev_environment(tmp_path)
    assert env.path_with("/usr/bin") == "/x/bin:/usr/bin"
    (tmp_path / ".dev" / "env.sh").write_text("export KUBECONFIG=/x\n")
    with pytest.raises(DevEnvironmentMissing, match="SNAKEMAKE_STORAGE_AZBLOB_ENDPOINT_URL"):
        load_dev_environment(tmp_path)


def test_missing_binaries_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    # The rule scripts' helper, loaded from its file as Snakemake's script runner finds it.
    spec = importlib.util.spec_from_file_location(
        "jobtools", EXAMPLE_DIR / "scripts" / "jobtools.py"
    )
    assert spec is not None and spec.loader is not None
    jobtools = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(jobtools)

    monkeypatch.setattr(jobtools.shutil, "which", lambda name: None)
    assert jobtools.use_binaries("python") is False
    assert jobtools.use_binaries("auto") is False
    with pytest.raises(RuntimeError, match="bwa, samtools, bcftools not found"):
        jobtools.use_binaries("binaries")
    with pytest.raises(ValueError, match="'tools' must be python, binaries or auto"):
        jobtools.use_binaries("conda")


def test_the_reference_is_prepared_from_the_committed_genome(tmp_path: Path) -> None:
    files = prepare_reference(tmp_path)
    names = sorted(path.name for path in files)
    assert names == [f"genome.fa{suffix}" for suffix in ("", ".amb", ".ann", ".bwt", ".fai")] + [
        "genome.fa.pac",
        "genome.fa.sa",
    ]
    assert (tmp_path / "genome.fa.fai").read_text().split("\t")[:2] == ["I", "230218"]
    built = {path.name: path.stat().st_mtime_ns for path in files}
    prepare_reference(tmp_path)
    assert {path.name: path.stat().st_mtime_ns for path in files} == built, "rebuilt needlessly"


def test_a_changed_genome_gets_fresh_indexes(tmp_path: Path) -> None:
    prepare_reference(tmp_path / "ref")
    other = tmp_path / "other.fa"
    other.write_text(">chrX\n" + "ACGT" * 500 + "\n")
    prepare_reference(tmp_path / "ref", other)
    assert (tmp_path / "ref" / "genome.fa.fai").read_text().split("\t")[:2] == ["chrX", "2000"]


def test_no_tracked_file_reads_the_folder_beside_the_clone() -> None:
    """A clone in an empty folder has no `shared` folder beside it; nothing may depend on one."""
    repo = EXAMPLE_DIR.parents[1]
    found = subprocess.run(
        [
            "git",
            "grep",
            "-l",
            "-E",
            r"\.\./shared|parents?(\[\d\])? / .shared.",
            "--",
            ".",
            f":!{Path(__file__).relative_to(repo)}",
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    assert found.returncode in (0, 1), found.stderr  # 1: no match
    assert found.stdout.split() == [], (
        f"tracked files refer to a folder beside the clone: {found.stdout}"
    )


def test_scale_story_prints_events_once_and_node_counts_when_they_change() -> None:
    story = ScaleStory(started=100.0)
    later = story.since + timedelta(seconds=3)

    def event(uid: str, reason: str, count: int = 1, when: datetime | None = later) -> SeenEvent:
        return SeenEvent(uid, count, reason, "Pod", "sm-bwa-map-1", f"{reason} text", when)

    assert story.observe_nodes(["system", "nodepool1"], now=100.0) == [
        "  [nodes] +   0s nodepool1 1, system 1"
    ]
    assert story.observe_nodes(["nodepool1", "system"], now=101.0) == []
    old = event("e0", "TriggeredScaleUp", when=story.since - timedelta(minutes=5))
    lines = story.observe_events(
        [event("e1", "TriggeredScaleUp"), event("e2", "Scheduled"), old], now=102.0
    )
    assert lines == [
        "  [autoscaler] +   2s TriggeredScaleUp pod/sm-bwa-map-1: TriggeredScaleUp text"
    ]
    assert story.observe_events([event("e1", "TriggeredScaleUp")], now=103.0) == []
    assert len(story.observe_events([event("e1", "TriggeredScaleUp", count=2)], now=104.0)) == 1
    assert story.observe_nodes(["system"] + ["nodepool1"] * 3, now=120.0) == [
        "  [nodes] +  20s nodepool1 3, system 1"
    ]
    story.observe_nodes(["system", "nodepool1", "nodepool1"], now=300.0)
    assert story.summary(120, Path("/k")) == [
        "nodepool1: 1 -> 3 nodes (now 2)",
        "scale-down follows after 120 s idle: watch with KUBECONFIG=/k kubectl get nodes -w",
    ]
    assert story.reasons_seen() == {"TriggeredScaleUp"}


def test_scale_story_says_when_nothing_scaled() -> None:
    story = ScaleStory()
    story.observe_nodes(["nodepool1"])
    assert story.summary(120, None) == ["node pools did not change size (nodes: nodepool1 1)"]
