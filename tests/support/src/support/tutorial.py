"""Run the variant-calling example (examples/variant-calling) as the users' tutorial does:
inputs in a Blob container, every job a pod, credentials passed with --envvars."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from vcdemo.blobs import service_client, upload_files
from vcdemo.command import snakemake_command, snakemake_environment
from vcdemo.reference import prepare_reference
from vcdemo.simulate import SimulationSettings
from vcdemo.workspace import install_workflow, simulate_once, upload_plan

# Fewer reads than the demo: a 30 kb stretch of chromosome I at depth 25 still puts every
# planted SNP under at least 20 reads on average, which is what the recall check is about.
SMALL_SIMULATION = SimulationSettings(
    depth=25, snps_per_sample=6, region_start=20_000, region_end=50_000, seed=7
)


@dataclass
class RunResult:
    returncode: int
    output: str  # stdout and stderr of snakemake, interleaved
    command: list[str] = field(default_factory=list)


@dataclass
class TutorialSetup:
    submit_dir: Path  # the folder snakemake runs in (pods must never see it)
    inputs_dir: Path
    truth: Path
    container: str
    endpoint_url: str
    account_key: str
    kubeconfig: Path

    def run(
        self, extra: list[str] | None = None, image: str = "snakemake-k8s-azblob-bio:latest"
    ) -> RunResult:
        command = snakemake_command(self.container, jobs=3, image=image, extra=extra)
        env = snakemake_environment(
            dict(os.environ), str(self.kubeconfig), self.endpoint_url, self.account_key
        )
        completed = subprocess.run(
            command,
            cwd=self.submit_dir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=600,
        )
        return RunResult(completed.returncode, completed.stdout, command)


def prepare(
    base: Path,
    container: str,
    endpoint_url: str,
    account_key: str,
    kubeconfig: Path,
    settings: SimulationSettings = SMALL_SIMULATION,
) -> TutorialSetup:
    """Simulate reads, upload them with the reference, and lay out the submitting folder."""
    inputs_dir, submit_dir, reference_dir = base / "inputs", base / "submit", base / "reference"
    prepare_reference(reference_dir)
    truth = simulate_once(reference_dir / "genome.fa", inputs_dir, settings)
    service = service_client(endpoint_url, account_key)
    container_client = service.get_container_client(container)
    if not container_client.exists():
        container_client.create_container()
    upload_files(container_client, upload_plan(reference_dir, inputs_dir, settings))
    install_workflow(submit_dir)
    return TutorialSetup(
        submit_dir, inputs_dir, truth, container, endpoint_url, account_key, kubeconfig
    )
