"""Each outcome of a job on the cluster, as a user of `snakemake --executor kubernetes` sees it.

Workflows run as `python -m snakemake` subprocesses against the session's cluster (the local
one, or a real one through KUBECONFIG) with Azure Blob storage on Azurite. Every run must leave
no Job, Pod or Secret of its own behind, and no secret value may appear anywhere but in the
run's Secret.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from support.snakefiles import CHAIN_SNAKEFILE, ONE_JOB_SNAKEFILE
from support.workflows import (
    paragraphs_mentioning,
    places_with_secret,
    secret_values_of_run,
)

SUCCESS_SNAKEFILE = """
rule all:
    input:
        "summary.txt",

rule make:
    output:
        "items/{i}.txt",
    shell:
        "echo item-{wildcards.i} > {output}"

rule summary:
    input:
        expand("items/{i}.txt", i=range(3)),
    output:
        "summary.txt",
    run:
        import hashlib, os

        token = os.environ["E2_PIPELINE_TOKEN"]
        with open(output[0], "w") as out:
            for path in input:
                out.write(open(path).read())
            out.write(hashlib.sha256(token.encode()).hexdigest() + "\\n")
"""


def test_success_runs_every_job_as_a_pod_and_leaves_nothing(
    k8s_workflow, azurite, container, secret_env
):
    run = k8s_workflow.run(SUCCESS_SNAKEFILE, jobs=3)

    assert run.returncode == 0, run.output
    blobs = azurite.service_client().get_container_client(container)
    summary = blobs.download_blob("summary.txt").readall().decode()
    token_digest = hashlib.sha256(secret_env["E2_PIPELINE_TOKEN"].encode()).hexdigest()
    assert summary.splitlines() == ["item-0", "item-1", "item-2", token_digest]

    jobs = run.observed.of_kind("Job")
    rules = sorted(job["metadata"]["labels"]["snakemake.io/rule"] for job in jobs)
    assert rules == ["make", "make", "make", "summary"]
    assert len(run.observed.run_ids) == 1
    assert run.leftovers == set()

    # The token and the storage key reached the pods through the run's Secret only.
    secrets = [secret_env["E2_PIPELINE_TOKEN"], azurite.account_key]
    assert set(secrets) <= secret_values_of_run(run)
    assert run.observed.pod_logs, "no pod log was read: the scan below would prove nothing"
    assert places_with_secret(run, secrets) == []


def test_endings_are_reported_without_waiting_for_the_status_interval(
    k8s_workflow, azurite, container
):
    # An hour between status rounds: the run can end within the harness's timeout
    # (minutes) only if each job's end, success or failure, wakes a round early.
    run = k8s_workflow.run(
        CHAIN_SNAKEFILE, jobs=2, extra_args=("--seconds-between-status-checks", "3600")
    )

    assert run.returncode != 0
    blobs = azurite.service_client().get_container_client(container)
    assert blobs.download_blob("first.txt").readall() == b"one\n"
    assert paragraphs_mentioning(run.output, "second", "exit code 3"), run.output
    assert run.leftovers == set()


FAILURES_SNAKEFILE = """
rule all:
    input:
        "hog_memory.txt",
        "overrun.txt",
        "unplaceable.txt",
        "exit_three.txt",

rule hog_memory:
    output:
        "hog_memory.txt",
    resources:
        mem_mb=500,
    shell:
        "python -c 'import time; x = bytes(range(256)) * 6000000; time.sleep(30)'; touch {output}"

rule overrun:
    output:
        "overrun.txt",
    resources:
        runtime=1,
    shell:
        "sleep 600; touch {output}"

rule unplaceable:
    output:
        "unplaceable.txt",
    resources:
        k8s_node_selector="e2.example/pool=nowhere",
    shell:
        "touch {output}"

rule exit_three:
    output:
        "exit_three.txt",
    shell:
        "echo about-to-fail; exit 3"
"""


def test_failures_name_the_rule_and_the_kubernetes_reason(k8s_workflow):
    run = k8s_workflow.run(
        FAILURES_SNAKEFILE,
        jobs=4,
        extra_args=("--keep-going", "--kubernetes-unschedulable-timeout", "5"),
    )

    assert run.returncode != 0
    assert paragraphs_mentioning(run.output, "hog_memory", "OOMKilled", "500"), run.output
    assert paragraphs_mentioning(run.output, "overrun", "DeadlineExceeded"), run.output
    # Decided (no node has the label, no autoscaler) or timed out, whichever comes first:
    # both quote the scheduler.
    assert paragraphs_mentioning(
        run.output, "unplaceable", "Unschedulable", "nodes are available"
    ), run.output
    # The container exits with Snakemake's 1; the executor finds the command's 3 in its log.
    assert paragraphs_mentioning(run.output, "exit_three", "exit code 3"), run.output
    assert "about-to-fail" in run.output, "the failed job's last log lines are not shown"
    saved = run.saved_logs()
    assert any("about-to-fail" in text for text in saved.values()), sorted(saved)
    assert run.leftovers == set()


def test_an_image_that_cannot_be_pulled_fails_after_the_grace(k8s_workflow):
    image = "registry.invalid/e2/no-such-image:1"
    run = k8s_workflow.run(
        ONE_JOB_SNAKEFILE,
        image=image,
        extra_args=("--kubernetes-image-pull-grace", "3"),
    )

    assert run.returncode != 0
    assert paragraphs_mentioning(run.output, "one", "ImagePull") or paragraphs_mentioning(
        run.output, "one", "ErrImagePull"
    ), run.output
    assert image in run.output
    assert run.leftovers == set()


MISSING_SECRET_TEMPLATE = """
spec:
  containers:
    - env:
        - name: E2_FROM_A_MISSING_SECRET
          valueFrom:
            secretKeyRef:
              name: e2-no-such-secret
              key: token
"""


def test_a_missing_secret_fails_with_create_container_config_error(k8s_workflow, tmp_path):
    template = tmp_path / "pod-template.yaml"
    template.write_text(MISSING_SECRET_TEMPLATE)
    run = k8s_workflow.run(
        ONE_JOB_SNAKEFILE,
        extra_args=(
            "--kubernetes-pod-template",
            str(template),
            "--kubernetes-image-pull-grace",
            "3",
        ),
    )

    assert run.returncode != 0
    assert paragraphs_mentioning(run.output, "one", "CreateContainerConfigError"), run.output
    assert "e2-no-such-secret" in run.output
    assert run.leftovers == set()


STANDARD_LABEL_PREFIXES = ("kubernetes.io/", "node.kubernetes.io/", "beta.kubernetes.io/")


def node_spec_of(node: dict) -> dict:
    """The local cluster's NodeSpec (as a dict) that registers a Node like `node` again."""
    capacity = node["status"]["capacity"]
    labels = node["metadata"].get("labels") or {}
    return {
        "name": node["metadata"]["name"],
        "cpu": capacity["cpu"],
        "memory": capacity["memory"],
        "ephemeral_storage": capacity.get("ephemeral-storage", "50Gi"),
        "gpus": int(capacity.get("nvidia.com/gpu", 0)),
        "labels": {k: v for k, v in labels.items() if not k.startswith(STANDARD_LABEL_PREFIXES)},
        "taints": [
            {"key": t["key"], "value": t.get("value", ""), "effect": t["effect"]}
            for t in (node.get("spec") or {}).get("taints") or []
        ],
    }


@pytest.fixture
def restore_lost_nodes(kube_api, cluster_control):
    """Node loss removes a node of the session's cluster: register it again afterwards."""
    from kubernetes import client

    listed = client.CoreV1Api(kube_api).list_node(_preload_content=False)
    specs = [node_spec_of(node) for node in json.loads(listed.data)["items"]]
    yield
    present = set(cluster_control.nodes())
    for spec in specs:
        if spec["name"] not in present:
            cluster_control.add_node(spec)


SLOW_PAIR_SNAKEFILE = """
rule all:
    input:
        "short_nap.txt",
        "long_nap.txt",

rule short_nap:
    output:
        "short_nap.txt",
    shell:
        "sleep 6; echo done > {output}"

rule long_nap:
    output:
        "long_nap.txt",
    shell:
        "sleep 6; echo done > {output}"
"""


def test_evicted_and_node_lost_pods_are_retried_without_using_snakemake_retries(
    k8s_workflow, cluster_control, restore_lost_nodes
):
    def disrupt(observer):
        evicted = observer.wait_for_pod("short_nap")
        cluster_control.evict_pod(evicted["metadata"]["namespace"], evicted["metadata"]["name"])
        orphaned = observer.wait_for_pod("long_nap")
        cluster_control.lose_node(orphaned["spec"]["nodeName"], remove=True)

    run = k8s_workflow.run(
        SLOW_PAIR_SNAKEFILE, jobs=2, extra_args=("--retries", "0"), while_running=disrupt
    )

    assert run.returncode == 0, run.output
    assert paragraphs_mentioning(run.output, "short_nap", "evict", "retr"), run.output
    assert paragraphs_mentioning(run.output, "long_nap", "node", "retr"), run.output
    for rule in ("short_nap", "long_nap"):
        pods = [
            pod
            for pod in run.observed.of_kind("Pod")
            if pod["metadata"]["labels"]["snakemake.io/rule"] == rule
        ]
        # at least the disrupted pod and its replacement (a replacement may share the lost node)
        assert len(pods) >= 2, f"rule {rule}: {len(pods)} pod(s)"
        attempts = {pod["metadata"]["labels"]["snakemake.io/attempt"] for pod in pods}
        assert attempts == {"1"}, "a disruption consumed one of Snakemake's --retries"
    jobs = run.observed.of_kind("Job")
    assert len(jobs) == 2, "a disruption made Snakemake submit a new Job"
    assert run.leftovers == set()


QUEUE_SNAKEFILE = """
rule all:
    input:
        expand("queued/{{i}}.txt", i=range(3)),

rule queued:
    output:
        "queued/{{i}}.txt",
    resources:
        mem_mb={mem_mb},
        k8s_node_selector="kubernetes.io/hostname={node}",
    shell:
        "sleep 4; echo {{wildcards.i}} > {{output}}"
"""


def a_schedulable_node(kube_api) -> tuple[str, int]:
    """Name and allocatable memory (MB) of a node without taints that takes pods."""
    from kubernetes import client

    from localcluster.quantity import parse_quantity

    listed = client.CoreV1Api(kube_api).list_node(_preload_content=False)
    for node in json.loads(listed.data)["items"]:
        spec = node.get("spec") or {}
        if not spec.get("taints") and not spec.get("unschedulable"):
            memory = parse_quantity(node["status"]["allocatable"]["memory"])
            return node["metadata"]["name"], int(memory / 10**6)
    raise AssertionError("no untainted, schedulable node in the cluster")


def test_pods_waiting_for_room_on_a_node_are_queued_not_failed(
    k8s_workflow, kube_api, cluster_control
):
    node, memory_mb = a_schedulable_node(kube_api)
    # One pod at a time fits on the node: the others stay Unschedulable for 4-8 s, longer
    # than the timeout, while a pod of the run is on the node.
    snakefile = QUEUE_SNAKEFILE.format(mem_mb=int(memory_mb * 0.6), node=node)
    run = k8s_workflow.run(
        snakefile, jobs=3, extra_args=("--kubernetes-unschedulable-timeout", "2")
    )

    assert run.returncode == 0, run.output
    assert "Unschedulable" not in run.output
    queued_pods = {
        pod["metadata"]["name"]
        for pod in run.observed.of_kind("Pod")
        if pod["metadata"]["labels"]["snakemake.io/rule"] == "queued"
    }
    waited = {
        event["involvedObject"]["name"]
        for event in run.events
        if event.get("reason") == "FailedScheduling"
    }
    assert len(waited & queued_pods) >= 2, "the pods never had to wait: the test proves nothing"
    assert run.leftovers == set()
