"""The executor on a hardened cluster, without a cluster: its pods pass Pod Security
"restricted", privileged jobs in such a namespace fail before submission, permanent 401/403
fail a watch at once with the permission to grant, refused pods (FailedCreate) end or wait,
and a classic sidecar does not keep a finished job running."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from localcluster import podsecurity
from localcluster.accounts import write_executor_kubeconfig
from localcluster.launcher import RunningCluster
from localcluster.testing import wait_until
from snakemake_executor_plugin_kubernetes import permissions
from snakemake_executor_plugin_kubernetes.client import ApiError, KubeClient
from snakemake_executor_plugin_kubernetes.outcomes import JobTracker, judge
from snakemake_executor_plugin_kubernetes.permissions import ROLE_NAME, ROLE_RULES, Access, explain
from snakemake_executor_plugin_kubernetes.podsecurity import privilege_refusal
from snakemake_executor_plugin_kubernetes.refusals import RefusalScanner, judge_refusal
from snakemake_executor_plugin_kubernetes.render import JOB_GROUP_ID, JOB_USER_ID
from snakemake_executor_plugin_kubernetes.watcher import RunWatcher
from support.job_states import LIMITS, job, pod

ROOT = Path(__file__).resolve().parents[2]


def _rendered_pod_spec(privileged: bool = False) -> dict[str, Any]:
    from support.rendering import FakeJob, render  # the render tests' helpers

    return render(FakeJob(resources={"k8s_privileged": True} if privileged else {}))


def test_rendered_pods_pass_pod_security_restricted_as_the_dockerfile_user() -> None:
    manifest = _rendered_pod_spec()
    spec = manifest["spec"]["template"]["spec"]
    # The local cluster's admission is the real check list; nothing fails it.
    assert podsecurity.evaluate("restricted", spec) == []
    context = spec["securityContext"]
    assert context["runAsNonRoot"] is True
    user = re.search(r"^USER (\d+):(\d+)$", (ROOT / "Dockerfile").read_text(), re.M)
    assert user is not None
    assert (context["runAsUser"], context["runAsGroup"], context["fsGroup"]) == (
        int(user[1]),
        int(user[2]),
        int(user[2]),
    )
    assert (int(user[1]), int(user[2])) == (JOB_USER_ID, JOB_GROUP_ID)


def test_a_privileged_job_is_refused_before_submission_where_pods_must_be_restricted() -> None:
    manifest = _rendered_pod_spec(privileged=True)
    spec = manifest["spec"]["template"]["spec"]
    assert podsecurity.evaluate("baseline", spec)  # the API server would refuse it
    restricted = {"pod-security.kubernetes.io/enforce": "restricted"}
    message = privilege_refusal(manifest, "work", restricted)
    assert message is not None
    assert 'enforces Pod Security level "restricted"' in message
    assert "k8s_privileged" in message and "nothing was submitted" in message
    assert privilege_refusal(manifest, "work", {}) is None  # privileged by default
    assert privilege_refusal(manifest, "work", None) is None  # labels unknown: ask the server
    assert privilege_refusal(_rendered_pod_spec(), "work", restricted) is None


def test_documented_role_is_exactly_the_role_the_executor_needs() -> None:
    text = (ROOT / "docs" / "executor" / "further.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    roles = [doc for block in blocks for doc in yaml.safe_load_all(block) if doc]
    by_kind_and_name = {(doc["kind"], doc["metadata"]["name"]): doc for doc in roles}
    role = by_kind_and_name[("Role", ROLE_NAME)]
    assert role["rules"] == ROLE_RULES
    # The optional diagnosis reads: exactly the requests clusterview.py makes.
    nodes = by_kind_and_name[("ClusterRole", permissions.DIAGNOSIS_ROLE_NAME)]
    assert nodes["rules"] == permissions.NODE_READ_RULES
    status = by_kind_and_name[("Role", permissions.DIAGNOSIS_ROLE_NAME)]
    assert status["metadata"]["namespace"] == permissions.AUTOSCALER_STATUS_NAMESPACE
    assert status["rules"] == permissions.AUTOSCALER_STATUS_RULES
    verbs = {(r, v) for rule in ROLE_RULES for r in rule["resources"] for v in rule["verbs"]}
    assert ("jobs", "deletecollection") in verbs  # cleanup deletes a run's Jobs at once
    assert ("pods", "delete") in verbs  # ends a pod a classic sidecar keeps running


def test_a_refusal_names_the_verb_the_resource_and_the_can_i_line() -> None:
    error = ApiError(
        403,
        "Forbidden",
        'pods is forbidden: User "system:serviceaccount:ns:sa" cannot watch resource "pods" '
        'in API group "" in the namespace "ns"',
    )
    text = explain(error, Access("watch", "pods"), "ns")
    assert "may not watch pods in namespace ns" in text
    assert "kubectl auth can-i watch pods -n ns" in text
    assert (
        Access("get", "pods/log").can_i("ns")
        == "kubectl auth can-i get pods --subresource=log -n ns"
    )
    assert (
        Access("create", "jobs", "batch").can_i("ns")
        == "kubectl auth can-i create jobs.batch -n ns"
    )
    unauthorized = explain(
        ApiError(401, "Unauthorized", "Unauthorized"), Access("list", "jobs", "batch"), "ns"
    )
    assert "401 Unauthorized" in unauthorized and "--kubernetes-kubeconfig" in unauthorized
    missing = ApiError(404, "Not Found", 'namespaces "ns" not found')
    assert "kubectl create namespace ns" in explain(
        missing, Access("create", "jobs", "batch"), "ns"
    )


def refused_pods_kubeconfig(cluster: RunningCluster, target: Path, status: int) -> Path:
    """The executor's account on the cluster, refused by the API server itself: 403 with
    the documented Role minus the pods permissions (RBAC), 401 with a token it never issued."""
    rules = [
        {**rule, "resources": [r for r in rule["resources"] if r != "pods"]} for rule in ROLE_RULES
    ]
    written = write_executor_kubeconfig(Path(cluster.kubeconfig), target, "default", rules=rules)
    if status == 401:
        config = json.loads(written.read_text())
        config["users"][0]["user"]["token"] = "a-token-this-cluster-never-issued"
        written.write_text(json.dumps(config))
    return written


@pytest.mark.parametrize("status", [401, 403])
def test_a_permanent_refusal_of_a_watch_is_not_retried(
    api_server: RunningCluster, tmp_path: Path, status: int
) -> None:
    control = api_server.control
    assert control is not None
    kubeconfig = refused_pods_kubeconfig(api_server, tmp_path / "kubeconfig", status)
    client = KubeClient.from_kubeconfig(str(kubeconfig), None, sleep=lambda s: None)
    # Every list of pods is refused (a 401 survives the client's one credential reload).
    control.reset_requests()
    watcher = RunWatcher(client, "default", "snakemake.io/run-id=r1", min_watch_timeout=30)
    watcher.start()
    try:
        wait_until(lambda: watcher.fatal is not None, "the watch gives up")
        assert watcher.cache.endings.is_set()
        time.sleep(0.5)
        attempts = control.count_requests("GET", "/pods$")
        assert attempts == (2 if status == 401 else 1)  # 401: once more after a reload
        if status == 403:  # only the pods are refused: the fatal error names them
            assert "list pods" in watcher.fatal
            assert "kubectl auth can-i list pods -n default" in watcher.fatal
        else:  # every list is refused; the first to fail names it
            assert (
                "401 Unauthorized" in watcher.fatal and "--kubernetes-kubeconfig" in watcher.fatal
            )
    finally:
        watcher.stop()


def test_transient_errors_of_a_watch_keep_their_retries(api_server: RunningCluster) -> None:
    control = api_server.control
    assert control is not None
    client = KubeClient.from_kubeconfig(str(api_server.kubeconfig), None, sleep=lambda s: None)
    control.inject_fault(503, path="/pods$", method="GET", count=3)
    watcher = RunWatcher(client, "default", "snakemake.io/run-id=r1", min_watch_timeout=30)
    watcher.start()
    try:
        assert watcher.wait_synced(30)
        assert watcher.fatal is None
    finally:
        watcher.stop()


POD_SECURITY = (
    'Error creating: pods "sm-x-1-abcde" is forbidden: violates PodSecurity '
    '"restricted:latest": privileged (container "snakemake" must not set '
    "securityContext.privileged=true)"
)


def quota(requested: str, used: str, limited: str) -> str:
    return (
        f'Error creating: pods "sm-x-1-abcde" is forbidden: exceeded quota: compute, '
        f"requested: {requested}, used: {used}, limited: {limited}"
    )


def test_pod_security_refusal_fails_the_job_with_the_servers_words() -> None:
    verdict = judge_refusal("sm-x-1", POD_SECURITY, LIMITS, JobTracker(), now=0.0)
    assert verdict is not None and verdict.state == "failed" and verdict.delete_job
    assert 'violates PodSecurity "restricted:latest": privileged' in verdict.message
    assert "pod-security.kubernetes.io/enforce" in verdict.message


def test_a_quota_the_pod_can_never_fit_fails_at_once() -> None:
    message = quota("requests.cpu=2", "requests.cpu=0", "requests.cpu=1")
    verdict = judge_refusal("sm-x-1", message, LIMITS, JobTracker(), now=0.0)
    assert verdict is not None and verdict.state == "failed"
    assert "can never fit" in verdict.message and "exceeded quota: compute" in verdict.message


def test_a_quota_held_by_other_pods_waits_then_fails_after_the_timeout() -> None:
    tracker = JobTracker()
    message = quota("requests.cpu=500m", "requests.cpu=800m", "requests.cpu=1")
    first = judge_refusal("sm-x-1", message, LIMITS, tracker, now=0.0)
    assert first is not None and first.state == "running"
    assert first.notices and "waiting, Kubernetes retries" in first.notices[0]
    assert judge_refusal("sm-x-1", message, LIMITS, tracker, now=300.0) is None
    last = judge_refusal("sm-x-1", message, LIMITS, tracker, now=600.5)
    assert last is not None and last.state == "failed"
    assert "--kubernetes-unschedulable-timeout=600s" in last.message


def test_event_scanner_lists_failed_creates_rarely_and_stops_when_forbidden() -> None:
    class Client:
        def __init__(self) -> None:
            self.calls = 0
            self.refuse = False

        def request(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
            self.calls += 1
            assert kw["query"] == [("fieldSelector", "involvedObject.kind=Job,reason=FailedCreate")]
            if self.refuse:
                raise ApiError(403, "Forbidden", "events is forbidden")
            return {
                "items": [
                    {
                        "involvedObject": {"name": "sm-x-1"},
                        "lastTimestamp": "2026-01-01T00:00:01Z",
                        "message": POD_SECURITY,
                    }
                ]
            }

    clock = [0.0]
    warnings: list[str] = []
    client = Client()
    scanner = RefusalScanner(client, "ns", warnings.append, clock=lambda: clock[0])
    assert scanner.refusals([]) == {} and client.calls == 0  # every Job has a pod
    assert scanner.refusals(["sm-x-1", "sm-x-2"]) == {"sm-x-1": POD_SECURITY}
    assert scanner.refusals(["sm-x-1"]) == {"sm-x-1": POD_SECURITY}
    assert client.calls == 1  # within the interval: the last list is reused
    clock[0] = 10.0
    client.refuse = True
    scanner.refusals(["sm-x-2"])
    clock[0] = 20.0
    scanner.refusals(["sm-x-2"])
    assert client.calls == 2 and scanner.disabled
    assert len(warnings) == 1 and "kubectl auth can-i list events -n ns" in warnings[0]


def _sidecar_pod(exit_code: int) -> dict[str, Any]:
    statuses = [
        {"name": "snakemake", "state": {"terminated": {"exitCode": exit_code, "reason": "Error"}}},
        {"name": "istio-proxy", "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}},
    ]
    return pod(phase="Running", containerStatuses=statuses)


def test_classic_sidecar_job_outcome_is_the_job_containers_exit_code() -> None:
    done = judge(job(), [_sidecar_pod(0)], LIMITS, JobTracker(), now=0.0)
    assert done.state == "succeeded" and done.end_pod and done.pod == "sm-x-1-a"
    failed = judge(job(), [_sidecar_pod(3)], LIMITS, JobTracker(), now=0.0)
    assert failed.state == "failed" and failed.end_pod
    assert "exit code 3" in failed.message and "istio-proxy" in failed.message
    running = pod(
        phase="Running",
        containerStatuses=[{"name": "snakemake", "state": {"running": {}}}],
    )
    assert judge(job(), [running], LIMITS, JobTracker(), now=0.0).state == "running"
