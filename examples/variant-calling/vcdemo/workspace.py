"""Lay out a run of the example: the workflow copy, simulated reads, and what to upload.

Snakemake ships only sources below its working folder to the pods, so the workflow files are
copied into the run's folder rather than referenced from the repository.
"""

from __future__ import annotations

import filecmp
import shutil
from pathlib import Path

from vcdemo.simulate import SimulationSettings, fastq_names, simulate

EXAMPLE_DIR = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = ("Snakefile", "config.yaml")
REFERENCE_SUFFIXES = ("", ".amb", ".ann", ".bwt", ".pac", ".sa", ".fai")
REFERENCE_NAME = "genome.fa"


def copy_if_changed(source: Path, target: Path) -> bool:
    if target.exists() and filecmp.cmp(source, target, shallow=False):
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)
    return True


def install_workflow(work_dir: Path, example_dir: Path = EXAMPLE_DIR) -> list[Path]:
    """Copy Snakefile, config and scripts into work_dir; return the files that changed."""
    changed = []
    sources = [example_dir / name for name in WORKFLOW_FILES]
    sources += sorted(p for p in (example_dir / "scripts").glob("*.py"))
    for source in sources:
        target = work_dir / source.relative_to(example_dir)
        if copy_if_changed(source, target):
            changed.append(target)
    return changed


def reference_files(reference_dir: Path) -> list[Path]:
    files = [reference_dir / f"{REFERENCE_NAME}{suffix}" for suffix in REFERENCE_SUFFIXES]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(
            f"reference folder {reference_dir} lacks {', '.join(missing)} "
            "(genome.fa with its BWA index and .fai)"
        )
    return files


def simulate_once(reference: Path, inputs_dir: Path, settings: SimulationSettings) -> Path:
    """Simulate reads unless this exact simulation is already there; return truth.tsv."""
    stamp = inputs_dir / "simulation.txt"
    description = repr(settings)
    truth = inputs_dir / "truth.tsv"
    if truth.exists() and stamp.exists() and stamp.read_text() == description:
        return truth
    simulate(reference, inputs_dir, settings)
    stamp.write_text(description)
    return truth


def upload_plan(
    reference_dir: Path, inputs_dir: Path, settings: SimulationSettings
) -> list[tuple[Path, str]]:
    """(local file, blob name) pairs, laid out as the Snakefile expects under data/."""
    plan = [(path, f"data/{path.name}") for path in reference_files(reference_dir)]
    for sample in settings.samples:
        for name in fastq_names(sample, settings.paired):
            plan.append((inputs_dir / "samples" / name, f"data/samples/{name}"))
    return plan
