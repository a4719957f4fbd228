"""The executor in namespaces as hard as production ones, always as the least-privilege
ServiceAccount bound to the documented Role: Pod Security "restricted", privileged rules,
classic and native sidecars, a ResourceQuota that blocks, and a missing permission.

Each test gets its own namespace (labels, quota and account set up by the admin kubeconfig);
the local cluster answers with the real admission and RBAC messages (docs/local-cluster.md).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from localcluster.accounts import rules_without, write_executor_kubeconfig
from localcluster.admission import SIDECAR_LABEL
from localcluster.pytest_fixtures import require_control
from snakemake_executor_plugin_kubernetes.client import USER_AGENT
from snakemake_executor_plugin_kubernetes.permissions import ROLE_RULES
from support.snakefiles import CHAIN_SNAKEFILE, ONE_JOB_SNAKEFILE
from support.workflows import WorkflowRunner, paragraphs_mentioning

pytestmark = pytest.mark.slow

RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/warn": "restricted",
}

Factory = Callable[..., WorkflowRunner]


@pytest.fixture
def hardened_workflow(
    local_cluster, kube_api, azurite, container, tmp_path: Path, secret_env
) -> Iterator[Factory]:
    """Runners in fresh namespaces: (labels, quota hard limits, Role rules) -> runner."""
    require_control(local_cluster)
    core = client.CoreV1Api(kube_api)
    made: list[str] = []

    def make(
        labels: dict[str, str] | None = None,
        quota: dict[str, str] | None = None,
        rules: list[dict[str, Any]] | None = None,
    ) -> WorkflowRunner:
        namespace = f"h-{uuid.uuid4().hex[:10]}"
        core.create_namespace({"metadata": {"name": namespace, "labels": labels or {}}})
        made.append(namespace)
        if quota:
            core.create_namespaced_resource_quota(
                namespace, {"metadata": {"name": "compute"}, "spec": {"hard": quota}}
            )
        account = write_executor_kubeconfig(
            Path(local_cluster.kubeconfig),
            tmp_path / f"{namespace}.kubeconfig",
            namespace,
            rules=rules,
        )
        return WorkflowRunner(
            kubeconfig=Path(local_cluster.kubeconfig),
            azurite=azurite,
            container=container,
            tmp_path=tmp_path,
            secret_env=secret_env,
            local=True,
            executor_kubeconfig=account,
            namespace=namespace,
        )

    yield make
    for namespace in made:
        core.delete_namespace(namespace)


def _failed_creates(run) -> list[dict[str, Any]]:
    return [e for e in run.events if e.get("reason") == "FailedCreate"]


def test_restricted_namespace_least_privilege_account_runs_and_cleans_up(hardened_workflow):
    runner = hardened_workflow(labels=RESTRICTED)
    run = runner.run(
        CHAIN_SNAKEFILE.replace('"echo stopping-here; exit 3"', '"cp {input} {output}"')
    )
    assert run.returncode == 0, run.output
    pods = run.observed.of_kind("Pod")
    assert len(pods) == 2
    for pod in pods:
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert _failed_creates(run) == []
    assert "would violate PodSecurity" not in run.output
    # Cleanup (deletecollection) works with exactly the documented Role.
    assert run.leftovers == set()


PRIVILEGED_SNAKEFILE = """
rule all:
    input:
        "root.txt",

rule needs_root:
    output:
        "root.txt",
    resources:
        k8s_privileged=True,
    shell:
        "touch {output}"
"""


def test_privileged_rule_fails_before_submission_in_a_restricted_namespace(hardened_workflow):
    runner = hardened_workflow(labels=RESTRICTED)
    run = runner.run(PRIVILEGED_SNAKEFILE)
    assert run.returncode != 0
    assert paragraphs_mentioning(
        run.output,
        "needs_root",
        'enforces Pod Security level "restricted"',
        "nothing was submitted",
    ), run.output
    assert run.observed.of_kind("Job") == []
    assert run.leftovers == set()


def test_privileged_rule_refusal_is_quoted_when_the_namespace_cannot_be_read(
    hardened_workflow,
):
    without_namespaces = [r for r in ROLE_RULES if r["resources"] != ["namespaces"]]
    runner = hardened_workflow(labels=RESTRICTED, rules=without_namespaces)
    run = runner.run(PRIVILEGED_SNAKEFILE)
    assert run.returncode != 0
    assert paragraphs_mentioning(
        run.output,
        "needs_root",
        "Kubernetes refused to create the pod",
        'violates PodSecurity "restricted:latest": privileged',
    ), run.output
    assert _failed_creates(run), "the refusal must come from the Job's FailedCreate event"
    assert run.leftovers == set()


SIDECAR_SNAKEFILE = """
rule all:
    input:
        "ok.txt",
        "bad.txt",

rule ok:
    output:
        "ok.txt",
    shell:
        "echo fine > {output}"

rule bad:
    output:
        "bad.txt",
    shell:
        "echo about-to-fail; exit 3"
"""


@pytest.mark.parametrize("mode", ["classic", "native"])
def test_jobs_end_by_their_container_beside_a_sidecar(
    hardened_workflow, local_cluster, azurite, container, mode
):
    runner = hardened_workflow(labels={**RESTRICTED, SIDECAR_LABEL: mode})
    run = runner.run(SIDECAR_SNAKEFILE, extra_args=("--keep-going",))
    assert run.returncode != 0
    blobs = azurite.service_client().get_container_client(container)
    assert blobs.download_blob("ok.txt").readall() == b"fine\n"
    assert paragraphs_mentioning(run.output, "bad", "exit code 3"), run.output
    pods = run.observed.of_kind("Pod")
    # One pod per job: ending a pod never makes its Job run the job again.
    assert len(pods) == len(run.observed.of_kind("Job")) == 2
    for pod in pods:
        spec = pod["spec"]
        names = [c["name"] for c in spec["containers"]]
        init = [(c["name"], c.get("restartPolicy")) for c in spec.get("initContainers") or []]
        if mode == "classic":
            assert names == ["snakemake", "mesh-proxy"]
        else:
            assert names == ["snakemake"] and init == [("mesh-proxy", "Always")]
    # The executor deletes each pod a classic sidecar keeps running; a native sidecar is
    # stopped by Kubernetes, which ends the pod itself.
    pod_deletes = [
        entry
        for entry in local_cluster.control.requests()
        if entry["method"] == "DELETE"
        and re.fullmatch(rf"/api/v1/namespaces/{runner.namespace}/pods/[^/]+", entry["path"])
        and (entry.get("user_agent") or "").startswith(USER_AGENT)
    ]
    assert len(pod_deletes) == (2 if mode == "classic" else 0), pod_deletes
    assert run.leftovers == set()


def test_a_quota_the_job_can_never_fit_fails_it_with_the_quota_message(hardened_workflow):
    runner = hardened_workflow(labels=RESTRICTED, quota={"requests.cpu": "500m"})
    run = runner.run(ONE_JOB_SNAKEFILE)
    assert run.returncode != 0
    assert paragraphs_mentioning(run.output, "one", "exceeded quota: compute", "can never fit"), (
        run.output
    )
    assert run.leftovers == set()


QUEUED_SNAKEFILE = """
rule all:
    input:
        expand("q/{i}.txt", i=range(3)),

rule q:
    output:
        "q/{i}.txt",
    shell:
        "sleep 1; touch {output}"
"""


def test_jobs_wait_for_quota_held_by_their_siblings(hardened_workflow):
    # 950m per job (cpu_scalar 0.95): one pod at a time fits, the others wait for room.
    runner = hardened_workflow(quota={"requests.cpu": "1500m"})
    run = runner.run(QUEUED_SNAKEFILE, jobs=3)
    assert run.returncode == 0, run.output
    assert _failed_creates(run), "the quota never blocked a pod: the test proves nothing"
    assert "waiting, Kubernetes retries" in run.output
    assert run.leftovers == set()


def test_a_missing_permission_fails_the_run_with_the_can_i_line(hardened_workflow):
    runner = hardened_workflow(rules=rules_without("pods", "watch"))
    run = runner.run(ONE_JOB_SNAKEFILE)
    assert run.returncode != 0
    namespace = runner.namespace
    assert paragraphs_mentioning(
        run.output, "may not watch pods", f"kubectl auth can-i watch pods -n {namespace}"
    ), run.output
    assert run.leftovers == set()


def test_a_refused_job_creation_ends_the_run_with_one_explained_error(hardened_workflow):
    runner = hardened_workflow(rules=rules_without("jobs", "create"))
    run = runner.run(QUEUED_SNAKEFILE, jobs=3)
    assert run.returncode != 0
    can_i = f"kubectl auth can-i create jobs.batch -n {runner.namespace}"
    assert paragraphs_mentioning(run.output, "may not create jobs", can_i), run.output
    assert run.output.count(can_i) == 1, "one error explains the refusal, not one per job"
    assert "was not submitted: the run ends" in run.output
    assert run.observed.of_kind("Job") == []
    assert run.leftovers == set()
