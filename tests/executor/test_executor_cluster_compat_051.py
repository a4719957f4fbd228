"""A user of the upstream executor 0.5.1 switches to ours and changes nothing: the same
command line, and the same profile (YAML with kubernetes-* keys), run on the cluster.

The rules set no mem_mb, as most 0.5.1 workflows: their pods still get memory requests and
limits, and the log says where the memory came from.
"""

from __future__ import annotations

import subprocess
import textwrap
from typing import Any

from support.workflows import NAMESPACE, WorkflowRun, cleanup_command

SNAKEFILE = """
rule all:
    input:
        "joined.txt",

rule part:
    output:
        "parts/{i}.txt",
    threads: 2
    shell:
        "echo part-{wildcards.i} > {output}"

rule join:
    input:
        expand("parts/{i}.txt", i=range(2)),
    output:
        "joined.txt",
    shell:
        "cat {input} > {output}"
"""

# What 0.5.1's docs and settings give a user to type, minus --kubernetes-namespace and
# --executor/--jobs, which the harness gives.
UPSTREAM_ARGS = (
    "--kubernetes-cpu-scalar",
    "0.9",
    # "default" exists in every namespace of a real cluster too.
    "--kubernetes-service-account-name",
    "default",
    "--kubernetes-omit-job-cleanup",
    "--kubernetes-persistent-volumes",
    "reference:/ref",
    "scratch:/scratch",
)

# An image with Snakemake but without the storage plugin, as snakemake/snakemake, which 0.5.1
# users give to --container-image (the local cluster's "bare" flavour).
BARE_IMAGE = "snakemake-bare:v9"
INSTALL_LOG = "snakemake-executor-plugin-kubernetes: installing snakemake-storage-plugin-azblob"

ONE_JOB = """
rule one:
    output:
        "one.txt",
    shell:
        "echo one > {output}"
"""

UPSTREAM_PROFILE = """
kubernetes-cpu-scalar: 0.9
kubernetes-service-account-name: default
kubernetes-omit-job-cleanup: true
kubernetes-persistent-volumes:
  - reference:/ref
  - scratch:/scratch
"""


def pods_of(run: WorkflowRun) -> list[dict[str, Any]]:
    pods = run.observed.of_kind("Pod")
    assert pods, "no pod was seen: the run did not run remotely"
    return pods


def assert_upstream_meaning(run: WorkflowRun) -> None:
    assert run.returncode == 0, run.output
    for pod in pods_of(run):
        spec = pod["spec"]
        (box,) = [c for c in spec["containers"] if c["name"] == "snakemake"]
        rule = pod["metadata"]["labels"]["snakemake.io/rule"]
        threads = 2 if rule == "part" else 1
        assert box["resources"]["requests"]["cpu"] == f"{int(threads * 900)}m"
        # No rule sets mem_mb: Snakemake's remote default (1000 MB for these small inputs).
        assert box["resources"]["requests"]["memory"] == "1000M"
        assert box["resources"]["limits"]["memory"] == "1000M"
        assert spec["serviceAccountName"] == "default"
        claims = {
            v["persistentVolumeClaim"]["claimName"]: v["name"]
            for v in spec["volumes"]
            if "persistentVolumeClaim" in v
        }
        assert claims == {"reference": "reference", "scratch": "scratch"}
        mounts = {m["name"]: m["mountPath"] for m in box["volumeMounts"]}
        assert mounts["reference"] == "/ref" and mounts["scratch"] == "/scratch"
    for rule in ("part", "join"):
        assert (
            f"Rule {rule} sets no mem_mb: its pods request 1000 MB of memory from "
            "Snakemake's default resources for remote jobs." in " ".join(run.output.split())
        ), run.output
    assert "Kubernetes executor: snakemake-executor-plugin-kubernetes 1." in run.output

    # omit-job-cleanup: every Job stays (and its pod); the run's Secret is still removed.
    jobs = {("Job", job["metadata"]["name"]) for job in run.observed.of_kind("Job")}
    assert len(jobs) == 3
    assert jobs <= run.leftovers
    assert not [kind for kind, _ in run.leftovers if kind == "Secret"]


def assert_no_plugin_installed(run: WorkflowRun) -> None:
    """The image has the storage plugin: no pod installed it (pods are kept, so their
    logs were read)."""
    assert run.observed.pod_logs, "no pod log was read"
    for pod, log in run.observed.pod_logs.items():
        assert INSTALL_LOG not in log, (pod, log)


def remove_kept_jobs(run: WorkflowRun, kubeconfig: str) -> None:
    for run_id in run.observed.run_ids:
        subprocess.run(
            cleanup_command(run_id, NAMESPACE),
            env={"KUBECONFIG": kubeconfig, "PATH": "/usr/bin:/bin"},
            timeout=120,
            check=True,
        )


def test_upstream_command_line_runs_unchanged(k8s_workflow):
    run = k8s_workflow.run(SNAKEFILE, jobs=3, extra_args=UPSTREAM_ARGS, name="cli051")
    try:
        assert_upstream_meaning(run)
        assert_no_plugin_installed(run)
    finally:
        remove_kept_jobs(run, str(k8s_workflow.kubeconfig))


def test_upstream_profile_runs_unchanged(k8s_workflow, tmp_path):
    profile = tmp_path / "profile051"
    profile.mkdir()
    (profile / "config.yaml").write_text(textwrap.dedent(UPSTREAM_PROFILE))
    run = k8s_workflow.run(
        SNAKEFILE, jobs=3, extra_args=("--profile", str(profile)), name="profile051"
    )
    try:
        assert_upstream_meaning(run)
    finally:
        remove_kept_jobs(run, str(k8s_workflow.kubeconfig))


def test_upstream_command_line_with_an_image_without_the_storage_plugin(
    k8s_workflow, azurite, container
):
    """0.5.1 pip-installs the storage plugin into every pod; ours, unchanged, installs it
    because the image lacks it, and says so in the pod's log."""
    run = k8s_workflow.run(
        ONE_JOB, jobs=1, image=BARE_IMAGE, extra_args=UPSTREAM_ARGS, name="bare051"
    )
    try:
        assert run.returncode == 0, run.output
        (pod,) = pods_of(run)
        assert pod["spec"]["containers"][0]["image"] == BARE_IMAGE
        log = run.observed.pod_logs[pod["metadata"]["name"]]
        (line,) = [line for line in log.splitlines() if INSTALL_LOG in line]
        assert "the image lacks them" in line, log
        # The job ran with the installed plugin: its output reached the storage.
        blobs = azurite.service_client().get_container_client(container)
        assert blobs.download_blob("one.txt").readall() == b"one\n"
    finally:
        remove_kept_jobs(run, str(k8s_workflow.kubeconfig))


def test_never_with_an_image_without_the_storage_plugin_fails_in_the_pod(k8s_workflow):
    run = k8s_workflow.run(
        ONE_JOB,
        jobs=1,
        image=BARE_IMAGE,
        extra_args=("--kubernetes-auto-deploy-storage-plugins", "never"),
        name="barenever",
    )
    assert run.returncode != 0
    # The job's error ends with the pod's last log line: without the plugin, Snakemake in the
    # pod knows none of the storage settings the run passes on.
    assert "error: unrecognized arguments: --storage-azblob-" in run.output
    assert INSTALL_LOG not in run.output
