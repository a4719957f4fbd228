"""kubectl smoke tests against the local cluster through the kubeconfig it writes:
discovery (aggregated discovery declined, /openapi answered 404), server-side tables,
describe, logs and delete with its default wait."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from kubernetes import client

from localcluster.paths import log_path
from localcluster.testing import finish_pod, job_manifest, job_pods, wait_until

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"

pytestmark = pytest.mark.skipif(
    not os.path.exists(KUBECTL), reason="kubectl is not installed on this machine"
)


def kubectl(cluster, namespace: str, *args: str) -> str:
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
    env.pop("HTTPS_PROXY", None)
    completed = subprocess.run(
        [KUBECTL, "--namespace", namespace, "--request-timeout=30s", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def test_kubectl_get_describe_logs_delete(
    api_cluster, core: client.CoreV1Api, batch: client.BatchV1Api, namespace: str
) -> None:
    batch.create_namespaced_job(namespace, job_manifest("kj"))
    pod = wait_until(lambda: job_pods(core, namespace, "kj"), "job pod")[0]
    name = pod.metadata.name

    jobs = kubectl(api_cluster, namespace, "get", "jobs").splitlines()
    assert jobs[0].split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert jobs[1].split()[:3] == ["kj", "Running", "0/1"]
    pods = kubectl(api_cluster, namespace, "get", "pods").splitlines()
    assert pods[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert pods[1].split()[:4] == [name, "0/1", "Pending", "0"]
    as_json = json.loads(kubectl(api_cluster, namespace, "get", "pod", name, "-o", "json"))
    assert as_json["metadata"]["uid"] == pod.metadata.uid

    described = kubectl(api_cluster, namespace, "describe", "pod", name)
    assert f"Name:             {name}" in described
    assert "Controlled By:    Job/kj" in described
    described_job = kubectl(api_cluster, namespace, "describe", "job", "kj")
    assert f"Created pod: {name}" in described_job
    events = kubectl(api_cluster, namespace, "get", "events").splitlines()
    assert events[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert events[1].split()[1:] == [
        "Normal",
        "SuccessfulCreate",
        "job/kj",
        "Created",
        "pod:",
        name,
    ]

    log_file = log_path(api_cluster.state_dir, namespace, name, "main")
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.write_text("first\nsecond\nthird\n")
    finish_pod(core, namespace, name, "Succeeded")
    assert kubectl(api_cluster, namespace, "logs", name) == "first\nsecond\nthird\n"
    assert kubectl(api_cluster, namespace, "logs", name, "--tail=1") == "third\n"

    wait_until(lambda: batch.read_namespaced_job("kj", namespace).status.succeeded, "job done")
    assert "Complete" in kubectl(api_cluster, namespace, "get", "jobs")
    deleted = kubectl(api_cluster, namespace, "delete", "job", "kj")
    assert deleted.strip() == 'job.batch "kj" deleted'
    # kubectl deletes jobs with propagationPolicy=Background, so the pod goes too.
    wait_until(lambda: not core.list_namespaced_pod(namespace).items, "pods collected")


def test_kubectl_get_nodes_and_namespaces(api_cluster, namespace: str) -> None:
    namespaces = kubectl(api_cluster, namespace, "get", "namespaces").splitlines()
    assert namespaces[0].split() == ["NAME", "STATUS", "AGE"]
    assert any(line.split()[:2] == [namespace, "Active"] for line in namespaces[1:])
    resources = kubectl(api_cluster, namespace, "api-resources", "--no-headers").splitlines()
    assert {line.split()[0] for line in resources} >= {"pods", "jobs", "secrets", "events"}


def test_table_watch_for_kubectl_get_w(core: client.CoreV1Api, namespace: str) -> None:
    from localcluster.testing import pod_manifest

    rv = core.create_namespaced_pod(namespace, pod_manifest("p")).metadata.resource_version
    core.delete_namespaced_pod("p", namespace)
    response = core.list_namespaced_pod(
        namespace,
        watch=True,
        resource_version=str(int(rv) - 1),
        timeout_seconds=1,
        _preload_content=False,
        _headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"},
    )
    events = [json.loads(line) for line in response.read().splitlines() if line]
    assert [e["type"] for e in events] == ["ADDED", "DELETED"]
    assert all(e["object"]["kind"] == "Table" for e in events)
    assert [e["object"]["rows"][0]["cells"][2] for e in events] == ["Pending", "Terminating"]


def test_kubectl_auth_can_i_and_a_denial_as_the_executor_account(
    api_cluster, namespace: str, tmp_path
) -> None:
    from localcluster.accounts import write_executor_kubeconfig

    account = write_executor_kubeconfig(
        api_cluster.kubeconfig, tmp_path / "executor.kubeconfig", namespace
    )
    env = {**os.environ, "KUBECONFIG": str(account)}
    env.pop("HTTPS_PROXY", None)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [KUBECTL, "--namespace", namespace, "--request-timeout=30s", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    # `kubectl auth can-i` answers yes/no through a SelfSubjectAccessReview (exit 0/1).
    assert run("auth", "can-i", "deletecollection", "jobs.batch").stdout.strip() == "yes"
    assert run("auth", "can-i", "get", "pods", "--subresource=log").stdout.strip() == "yes"
    refused = run("auth", "can-i", "create", "configmaps")
    assert (refused.returncode, refused.stdout.strip()) == (1, "no")
    denied = run("get", "configmaps")
    assert denied.returncode != 0
    assert (
        'Error from server (Forbidden): configmaps is forbidden: User "system:serviceaccount:'
        f'{namespace}:snakemake-executor" cannot list resource "configmaps" in API group "" '
        f'in the namespace "{namespace}"'
    ) in denied.stderr
    assert run("get", "jobs,pods").returncode == 0


def test_kubectl_as_impersonates_a_service_account_for_the_admin(
    api_cluster, namespace: str, tmp_path
) -> None:
    from localcluster.accounts import write_executor_kubeconfig

    write_executor_kubeconfig(api_cluster.kubeconfig, tmp_path / "executor.kubeconfig", namespace)
    who = f"--as=system:serviceaccount:{namespace}:snakemake-executor"
    env = {**os.environ, "KUBECONFIG": str(api_cluster.kubeconfig)}
    env.pop("HTTPS_PROXY", None)

    def can_i(*args: str) -> str:
        return subprocess.run(
            [KUBECTL, "--namespace", namespace, "auth", "can-i", *args, who],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        ).stdout.strip()

    assert can_i("watch", "pods") == "yes"
    assert can_i("list", "secrets") == "yes"
    assert can_i("list", "nodes") == "no"
    assert can_i("create", "configmaps") == "no"


def test_kubectl_get_quota_and_rolebindings_print_the_real_columns(
    api_cluster, api_client, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_resource_quota(
        namespace,
        {
            "metadata": {"name": "compute"},
            "spec": {"hard": {"requests.cpu": "1", "limits.memory": "1Gi", "pods": "3"}},
        },
    )
    wait_until(
        lambda: (
            (status := core.read_namespaced_resource_quota("compute", namespace).status)
            and status.used
        ),
        "quota status",
    )
    lines = kubectl(api_cluster, namespace, "get", "quota").splitlines()
    assert lines[0].split() == ["NAME", "AGE", "REQUEST", "LIMIT"]
    assert "pods: 0/3, requests.cpu: 0/1" in lines[1]
    assert lines[1].rstrip().endswith("limits.memory: 0/1Gi")
    client.RbacAuthorizationV1Api(api_client).create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "rb"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
            "subjects": [{"kind": "ServiceAccount", "name": "bot", "namespace": namespace}],
        },
    )
    wide = kubectl(api_cluster, namespace, "get", "rolebindings", "-o", "wide").splitlines()
    assert wide[0].split() == ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    assert wide[1].split()[:2] == ["rb", "Role/r"]
    assert wide[1].split()[-1] == f"{namespace}/bot"
