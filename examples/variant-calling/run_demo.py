"""The reference scenario on the local cluster: Snakemake's variant-calling tutorial with every
job a Kubernetes pod and every file staged through Blob storage (Azurite).

    nox -s demo                                   # starts the local cluster, then runs this
    python examples/variant-calling/run_demo.py   # after `nox -s up` / `. .dev/env.sh`

Steps: simulate reads for samples A, B, C with planted SNPs; upload them and the reference to
container `snakemake-tutorial`; run
  snakemake --executor kubernetes --default-storage-provider azblob
            --default-storage-prefix az://snakemake-tutorial
            --envvars AZ_BLOB_ACCOUNT_URL AZ_BLOB_CREDENTIAL --jobs 3
            --container-image snakemake-k8s-azblob-bio:latest
in .dev/variant-calling/work, printing the pods, the cluster-autoscaler's events and the node
count of each pool as they change (mapping three samples with 3 threads each needs three
Standard_D3_v2 nodes: nodepool1 grows from 1 to 3); list the container; check the calls against
the planted SNPs. Running it again finds nothing to do.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
from pathlib import Path

from localcluster.devenv import DEV_SCALE_DOWN_UNNEEDED_SECONDS
from vcdemo.blobs import blob_table, download, ensure_container, service_client, upload_files
from vcdemo.command import BIO_IMAGE, snakemake_command, snakemake_environment
from vcdemo.devenv import DevEnvironmentMissing, load_dev_environment
from vcdemo.podwatch import PodWatcher
from vcdemo.recall import compare_files
from vcdemo.reference import COMMITTED_GENOME, prepare_reference
from vcdemo.scalewatch import ScaleWatcher
from vcdemo.simulate import SimulationSettings
from vcdemo.workspace import install_workflow, simulate_once, upload_plan

EXAMPLE_DIR = Path(__file__).resolve().parent
REPO_ROOT = EXAMPLE_DIR.parents[1]
MIN_RECALL = 0.9
MIN_DEPTH = 20


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def run_streaming(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run, echoing the output as it comes, and return (exit code, output)."""
    lines = []
    with subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            print(line, end="", flush=True)
            lines.append(line)
    return process.returncode, "".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo-root", type=Path, default=REPO_ROOT)
    parser.add_argument(
        "--genome",
        type=Path,
        default=COMMITTED_GENOME,
        help="reference FASTA (default: the tutorial's yeast chromosome I, kept in the "
        "example); its BWA index and .fai are built beside a copy when missing",
    )
    parser.add_argument("--container", default="snakemake-tutorial")
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--depth", type=float, default=SimulationSettings.depth)
    parser.add_argument("--image", default=BIO_IMAGE)
    parser.add_argument("--namespace", default="default")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        dev = load_dev_environment(args.repo_root)
    except DevEnvironmentMissing as error:
        print(f"run_demo: {error}", file=sys.stderr)
        return 2
    demo_dir = args.repo_root / ".dev" / "variant-calling"
    work_dir, inputs_dir, results_dir = demo_dir / "work", demo_dir / "inputs", demo_dir / "results"
    reference_dir = demo_dir / "reference"
    settings = SimulationSettings(depth=args.depth)

    step(f"Preparing the reference {args.genome} in {reference_dir}")
    try:
        prepare_reference(reference_dir, args.genome)
    except FileNotFoundError as error:
        print(f"run_demo: --genome: {error}", file=sys.stderr)
        return 2

    step(f"Simulating reads for samples {', '.join(settings.samples)} (seed {settings.seed})")
    truth = simulate_once(reference_dir / "genome.fa", inputs_dir, settings)
    print(f"reads and truth (planted SNPs) in {inputs_dir}")

    step(f"Uploading reference and reads to container '{args.container}' at {dev.endpoint_url}")
    service = service_client(dev.endpoint_url, dev.account_key)
    container = ensure_container(service, args.container)
    plan = upload_plan(reference_dir, inputs_dir, settings)
    uploaded = upload_files(container, plan)
    print(f"uploaded {len(uploaded)} file(s); {len(plan) - len(uploaded)} already there, unchanged")

    step(f"Preparing the workflow in {work_dir}")
    changed = install_workflow(work_dir)
    print(f"{len(changed)} workflow file(s) copied" if changed else "workflow files unchanged")

    command = snakemake_command(args.container, args.jobs, args.image)
    env = snakemake_environment(
        dict(os.environ), str(dev.kubeconfig), dev.endpoint_url, dev.account_key
    )
    env["PATH"] = dev.path_with(os.environ.get("PATH", ""))
    step("Running Snakemake on the local Kubernetes cluster")
    print("$ " + " ".join(["snakemake", *command[3:]]))
    print(
        f"watch the pods yourself:  KUBECONFIG={dev.kubeconfig} kubectl get pods "
        f"-n {args.namespace} -l snakemake.io/run-id -w\n"
        f"inspect one:              KUBECONFIG={dev.kubeconfig} kubectl describe pod POD",
        flush=True,
    )
    if dev.admin_kubeconfig:
        print(
            f"watch the nodes:          KUBECONFIG={dev.admin_kubeconfig} kubectl get nodes -w\n"
            f"and the autoscaler:       KUBECONFIG={dev.admin_kubeconfig} kubectl get events "
            "-A --field-selector reason=TriggeredScaleUp",
            flush=True,
        )
    with contextlib.ExitStack() as watchers:
        watchers.enter_context(PodWatcher(dev.kubeconfig, args.namespace))
        scale = None
        if dev.admin_kubeconfig:
            # The executor's account may not list nodes; the admin's may.
            scale = watchers.enter_context(ScaleWatcher(dev.admin_kubeconfig))
        returncode, output = run_streaming(command, work_dir, env)
    if scale is not None:
        step("Cluster autoscaler")
        for line in scale.story.summary(DEV_SCALE_DOWN_UNNEEDED_SECONDS, dev.admin_kubeconfig):
            print(line)
    else:
        print("(no LOCALCLUSTER_ADMIN_KUBECONFIG in .dev/env.sh: node counts not shown)")
    if returncode != 0:
        print(f"\nrun_demo: snakemake failed (exit {returncode}); see above", file=sys.stderr)
        return 1
    up_to_date = "Nothing to be done" in output

    step(f"Blobs in container '{args.container}'")
    print(blob_table(container))

    step("Checking the calls against the planted SNPs")
    vcf = download(container, "calls/all.vcf", results_dir / "all.vcf")
    download(container, "plots/quals.svg", results_dir / "quals.svg")
    report = compare_files(truth, vcf, MIN_DEPTH)
    print(report.summary())
    for missed in report.missed:
        print(f"  missed: sample {missed.sample} {missed.chrom}:{missed.pos} {missed.alt}")

    step("Done")
    if up_to_date:
        print("Nothing ran: every result in storage was already newer than its inputs.")
    else:
        print(
            f"Ran the tutorial's 5 rules for {len(settings.samples)} samples, each job in its "
            "own Kubernetes pod that fetched its inputs from and sent its outputs to Blob storage."
        )
    print(
        f"Inputs and results live in container '{args.container}' on Azurite "
        f"({dev.endpoint_url}).\n"
        f"Local copies: {results_dir / 'all.vcf'} and {results_dir / 'quals.svg'}.\n"
        "Run this again and Snakemake reports nothing to be done."
    )
    if report.recall < MIN_RECALL:
        print(f"run_demo: recall {report.recall:.3f} is below {MIN_RECALL}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
