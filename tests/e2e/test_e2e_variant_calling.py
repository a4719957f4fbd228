"""The users' reference scenario end to end: Snakemake's variant-calling tutorial on the local
Kubernetes cluster, every job a pod, every file staged through Blob storage (Azurite), the
credentials passed with --envvars exactly as the tutorial does, on the seed's autoscaled
cluster: mapping three samples with 3 threads each grows nodepool1 from its one node."""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from localcluster.accounts import write_executor_kubeconfig
from localcluster.azurite import Azurite
from localcluster.launcher import RunningCluster
from localcluster.observer import (
    ALL_KINDS,
    ClusterObserver,
    Observation,
    existing_run_ids,
    local_pod_logs,
    wait_for_no_leftovers,
)
from support.tutorial import RunResult, TutorialSetup, prepare
from vcdemo.scalewatch import ScaleStory, ScaleWatcher

# Generous: the first test also pays for building the job image when it is not cached yet.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

SAMPLES = ("A", "B", "C")
JOBS_PER_RUN = 3 * len(SAMPLES) + 2  # map, sort, index per sample; call; plot
# Snakemake asks the executor for job states every 10 s by default; the executor answers from
# its watch, so polling it more often costs no API requests and shortens the test.
FAST_POLLING = ["--seconds-between-status-checks", "2"]
RESULT_FOLDERS = ("mapped_reads", "sorted_reads", "calls", "plots", "logs")
EXPECTED_BLOBS = (
    {f"data/genome.fa{s}" for s in ("", ".amb", ".ann", ".bwt", ".pac", ".sa", ".fai")}
    | {f"data/samples/{s}.fastq" for s in SAMPLES}
    | {f"mapped_reads/{s}.bam" for s in SAMPLES}
    | {f"sorted_reads/{s}.bam" for s in SAMPLES}
    | {f"sorted_reads/{s}.bam.bai" for s in SAMPLES}
    | {"calls/all.vcf", "plots/quals.svg"}
    | {
        f"logs/{rule}/{s}.log"
        for rule in ("bwa_map", "samtools_sort", "samtools_index")
        for s in SAMPLES
    }
    | {"logs/bcftools_call/all.log", "logs/plot_quals/all.log"}
)


@dataclass
class TutorialOutcome:
    setup: TutorialSetup
    first: RunResult
    first_recording: Observation
    second: RunResult
    second_recording: Observation
    second_run_ids: set[str]
    second_leftovers: list[str]
    run_id: str
    leftovers: list[str]
    node_logs: dict[str, str]
    scale: ScaleStory
    scale_lines: list[str]


@pytest.fixture(scope="module")
def tutorial(
    tmp_path_factory: pytest.TempPathFactory,
    azurite: Azurite,
    aks_tutorial_cluster: RunningCluster,
) -> Iterator[TutorialOutcome]:
    cluster = aks_tutorial_cluster
    kube_api = cluster.api_client()
    # as `nox -s demo`: the executor's least-privilege ServiceAccount
    executor_kubeconfig = write_executor_kubeconfig(
        Path(cluster.kubeconfig),
        tmp_path_factory.mktemp("executor-account") / "kubeconfig",
        "default",
    )
    # Build the job image up front (cached across sessions) so the run measures the run.
    from localcluster.nodeagent.images import ImageCatalog

    ImageCatalog.from_environment().build("bio")
    container = f"tutorial-{uuid.uuid4().hex[:12]}"
    setup = prepare(
        tmp_path_factory.mktemp("tutorial"),
        container,
        azurite.blob_endpoint,
        azurite.account_key,
        executor_kubeconfig,
    )
    earlier_runs = existing_run_ids(kube_api)
    scale_lines: list[str] = []
    # The demo's watcher, as the cluster admin (the executor's account cannot list nodes).
    watcher = ScaleWatcher(Path(cluster.kubeconfig), interval=0.5, emit=scale_lines.append)
    with (
        ClusterObserver(kube_api, kinds=ALL_KINDS, everything=True) as first_recorder,
        watcher as scale,
    ):
        first = setup.run(FAST_POLLING)
    run_ids = first_recorder.seen.run_ids - earlier_runs
    assert first.returncode == 0, first.output[-6000:]
    assert len(run_ids) == 1, f"expected the objects of one run, saw run ids {run_ids}"
    run_id = run_ids.pop()
    remaining = wait_for_no_leftovers(kube_api, run_id)
    earlier_runs = existing_run_ids(kube_api) | {run_id}
    with ClusterObserver(kube_api, kinds=ALL_KINDS, everything=True) as second_recorder:
        second = setup.run(FAST_POLLING)
    second_run_ids = second_recorder.seen.run_ids - earlier_runs
    second_leftovers = [
        name for run in second_run_ids for name in wait_for_no_leftovers(kube_api, run)
    ]
    yield TutorialOutcome(
        setup=setup,
        first=first,
        first_recording=first_recorder.seen,
        second=second,
        second_recording=second_recorder.seen,
        second_run_ids=second_run_ids,
        second_leftovers=second_leftovers,
        run_id=run_id,
        leftovers=remaining,
        node_logs=local_pod_logs(cluster.state_dir),
        scale=scale.story,
        scale_lines=scale_lines,
    )
    azurite.service_client().delete_container(container)
    kube_api.close()


def test_calls_recover_the_planted_snps(tutorial: TutorialOutcome, azurite: Azurite) -> None:
    from vcdemo.recall import compare
    from vcdemo.simulate import read_truth

    blob = azurite.service_client().get_blob_client(tutorial.setup.container, "calls/all.vcf")
    vcf = blob.download_blob().readall().decode()
    truth = read_truth(tutorial.setup.truth)
    report = compare(truth, vcf, min_depth=20)
    assert report.evaluated >= 0.8 * len(truth), report.summary()
    assert report.recall >= 0.9, report.summary() + f"; missed {report.missed}"
    header = next(line for line in vcf.splitlines() if line.startswith("#CHROM"))
    assert header.split("\t")[9:] == list(SAMPLES)


def test_container_holds_inputs_results_and_logs_only(
    tutorial: TutorialOutcome, azurite: Azurite
) -> None:
    container = azurite.service_client().get_container_client(tutorial.setup.container)
    names = {blob.name for blob in container.list_blobs()}
    # No source archive, no partial uploads, nothing outside the workflow's declared files.
    assert names == EXPECTED_BLOBS, (
        f"unexpected: {sorted(names - EXPECTED_BLOBS)}; missing: {sorted(EXPECTED_BLOBS - names)}"
    )
    svg = container.get_blob_client("plots/quals.svg").download_blob().readall()
    assert b"<svg" in svg


def test_every_job_ran_in_its_own_pod(tutorial: TutorialOutcome) -> None:
    pods = {
        p["metadata"]["name"]: p for p in tutorial.first_recording.of_run("pods", tutorial.run_id)
    }
    rules = [p["metadata"]["labels"].get("snakemake.io/rule") for p in pods.values()]
    assert len(pods) == JOBS_PER_RUN, sorted(pods)
    assert sorted(rules) == sorted(
        ["bwa_map"] * 3
        + ["samtools_sort"] * 3
        + ["samtools_index"] * 3
        + ["bcftools_call", "plot_quals"]
    )
    images = {c["image"] for p in pods.values() for c in p["spec"]["containers"]}
    assert images == {"snakemake-k8s-azblob-bio:latest"}
    # No pod without a memory request and limit (issue 15, section 4).
    for name, pod in pods.items():
        for box in pod["spec"]["containers"]:
            resources = box.get("resources") or {}
            assert "memory" in (resources.get("requests") or {}), name
            assert "memory" in (resources.get("limits") or {}), name


def test_no_pod_saw_the_submitting_folder(tutorial: TutorialOutcome, azurite: Azurite) -> None:
    submit = str(tutorial.setup.submit_dir.resolve())
    container = azurite.service_client().get_container_client(tutorial.setup.container)
    job_dirs = []
    for name in sorted(n for n in EXPECTED_BLOBS if n.startswith("logs/")):
        log = container.get_blob_client(name).download_blob().readall().decode()
        cwd = re.search(r"^cwd: (.+)$", log, re.MULTILINE)
        assert cwd, f"{name} lacks the cwd line:\n{log}"
        job_dirs.append(Path(cwd.group(1)))
    assert len(job_dirs) == JOBS_PER_RUN
    for job_dir in job_dirs:
        assert not job_dir.resolve().is_relative_to(submit), f"a job ran in {job_dir}"
    assert len(set(job_dirs)) == JOBS_PER_RUN, "jobs shared a working folder"
    # Results went to storage, not into the submitting folder.
    written_here = [d for d in RESULT_FOLDERS if (tutorial.setup.submit_dir / d).exists()]
    assert written_here == []
    for pod in tutorial.first_recording.of_run("pods", tutorial.run_id):
        spec = str(pod["spec"])
        assert submit not in spec, f"pod {pod['metadata']['name']} refers to {submit}"


def test_nothing_left_behind(tutorial: TutorialOutcome) -> None:
    assert tutorial.leftovers == []
    kinds_seen = {
        kind
        for kind in ("pods", "jobs", "secrets")
        if tutorial.first_recording.of_run(kind, tutorial.run_id)
    }
    # The run did create them (so the empty list above means something).
    assert kinds_seen == {"pods", "jobs", "secrets"}


def test_the_storage_key_appears_nowhere(tutorial: TutorialOutcome, azurite: Azurite) -> None:
    key = azurite.account_key
    encoded = base64.b64encode(key.encode()).decode()
    texts = list(tutorial.first_recording.texts_outside_secrets())
    texts += list(tutorial.node_logs.items())
    texts += [("snakemake output", tutorial.first.output), ("rerun", tutorial.second.output)]
    assert len(tutorial.first_recording.pod_logs) + len(tutorial.node_logs) > 0
    for where, text in texts:
        assert key not in text, f"the account key appears in {where}"
        assert encoded not in text, f"the base64 account key appears in {where}"
    for pod in tutorial.first_recording.of_run("pods", tutorial.run_id):
        for container in pod["spec"]["containers"]:
            for variable in container.get("env") or []:
                if variable["name"] == "AZ_BLOB_CREDENTIAL":
                    assert "value" not in variable, "the credential is inlined in the pod spec"
                    assert variable["valueFrom"]["secretKeyRef"]


def test_second_run_has_nothing_to_do(tutorial: TutorialOutcome) -> None:
    assert tutorial.second.returncode == 0, tutorial.second.output[-4000:]
    assert "Nothing to be done" in tutorial.second.output
    for run_id in tutorial.second_run_ids:
        assert tutorial.second_recording.of_run("pods", run_id) == []
        assert tutorial.second_recording.of_run("jobs", run_id) == []
    assert tutorial.second_leftovers == []


def test_mapping_scaled_nodepool1_up_from_one_node(tutorial: TutorialOutcome) -> None:
    """The tutorial's story, as the demo prints it: three 3-thread mapping jobs do not fit on
    the one Standard_D3_v2 node, the autoscaler says so with TriggeredScaleUp, nodepool1 grows."""
    story, printed = tutorial.scale, "\n".join(tutorial.scale_lines)
    assert story.first_counts.get("nodepool1") == 1, printed
    assert story.peak_counts["nodepool1"] >= 2, printed
    assert story.first_counts.get("system") == story.peak_counts.get("system") == 1, printed
    assert "TriggeredScaleUp" in story.reasons_seen(), printed
    triggered = [e for e in story.events if e.reason == "TriggeredScaleUp"]
    assert all(e.kind == "Pod" and e.name.startswith("sm-bwa-map") for e in triggered), printed
    assert any("nodepool1" in e.message and "(max: 3)" in e.message for e in triggered), printed
    assert "  [nodes]" in printed and "[autoscaler]" in printed
    summary = story.summary(120, None)
    assert summary[0].startswith("nodepool1: 1 -> "), summary
