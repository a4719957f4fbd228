"""Job controller behaviour, driven without the node agent by patching pod status as a
kubelet would: pod template and ownership, completion, backoffLimit, podFailurePolicy
(FailJob / Ignore / Count, onExitCodes and onPodConditions), activeDeadlineSeconds, and
status/conditions as a 1.30+ controller writes them
(https://kubernetes.io/docs/concepts/workloads/controllers/job/)."""

from __future__ import annotations

from kubernetes import client

from localcluster.testing import condition_types, finish_pod, job_manifest, job_pods, wait_until


def _job(batch: client.BatchV1Api, namespace: str, name: str = "j") -> client.V1Job:
    return batch.read_namespaced_job(name, namespace)


def _wait_condition(batch: client.BatchV1Api, namespace: str, kind: str) -> client.V1Job:
    return wait_until(
        lambda: (job := _job(batch, namespace)) and kind in condition_types(job) and job,
        f"job condition {kind}",
    )


def _one_pending_pod(core: client.CoreV1Api, namespace: str, done: int = 0) -> client.V1Pod:
    """The single live pod after ``done`` pods finished (job pods are never recreated early)."""
    pods = wait_until(
        lambda: (
            len(job_pods(core, namespace, "j")) == done + 1
            and job_pods(core, namespace, "j", "Pending")
        ),
        f"pod number {done + 1}",
    )
    assert len(pods) == 1
    return pods[0]


def test_job_pods_are_owned_and_labelled(
    core: client.CoreV1Api, batch: client.BatchV1Api, namespace: str
) -> None:
    job = batch.create_namespaced_job(namespace, job_manifest("j"))
    uid = job.metadata.uid
    assert job.spec.selector.match_labels == {"batch.kubernetes.io/controller-uid": uid}
    assert (job.spec.backoff_limit, job.spec.completions, job.spec.parallelism) == (0, 1, 1)
    pod = _one_pending_pod(core, namespace)
    assert pod.metadata.name.startswith("j-") and len(pod.metadata.name) == len("j-") + 5
    assert pod.metadata.labels == {
        "app": "j",
        "batch.kubernetes.io/controller-uid": uid,
        "batch.kubernetes.io/job-name": "j",
        "controller-uid": uid,
        "job-name": "j",
    }
    (owner,) = pod.metadata.owner_references
    assert (owner.kind, owner.name, owner.uid, owner.controller, owner.block_owner_deletion) == (
        "Job",
        "j",
        uid,
        True,
        True,
    )
    status = wait_until(
        lambda: _job(batch, namespace).status.active == 1 and _job(batch, namespace).status,
        "active=1",
    )
    assert status.start_time is not None and status.succeeded is None and status.ready == 0
    events = core.list_namespaced_event(namespace, field_selector=f"involvedObject.uid={uid}")
    assert [(e.reason, e.message) for e in events.items] == [
        ("SuccessfulCreate", f"Created pod: {pod.metadata.name}")
    ]


def test_success_sets_complete_and_completion_time(
    core: client.CoreV1Api, batch: client.BatchV1Api, namespace: str
) -> None:
    batch.create_namespaced_job(namespace, job_manifest("j", completions=2, parallelism=1))
    first = _one_pending_pod(core, namespace)
    finish_pod(core, namespace, first.metadata.name, "Succeeded")
    second = _one_pending_pod(core, namespace, done=1)
    finish_pod(core, namespace, second.metadata.name, "Succeeded")
    job = _wait_condition(batch, namespace, "Complete")
    status = job.status
    assert (status.succeeded, status.failed, status.active) == (2, None, None)
    assert status.completion_time is not None and status.completion_time >= status.start_time
    # 1.31+: SuccessCriteriaMet precedes Complete.
    assert condition_types(job) == ["SuccessCriteriaMet", "Complete"]
    complete = job.status.conditions[-1]
    assert complete.reason == "CompletionsReached"


def test_backoff_limit_exceeded(
    core: client.CoreV1Api, batch: client.BatchV1Api, namespace: str
) -> None:
    batch.create_namespaced_job(namespace, job_manifest("j", backoffLimit=2))
    for done in range(3):
        pod = _one_pending_pod(core, namespace, done=done)
        finish_pod(core, namespace, pod.metadata.name, "Failed", exit_code=1)
    job = _wait_condition(batch, namespace, "Failed")
    assert condition_types(job) == ["FailureTarget", "Failed"]
    failed = job.status.conditions[-1]
    assert (failed.reason, failed.message) == (
        "BackoffLimitExceeded",
        "Job has reached the specified backoff limit",
    )
    assert job.status.failed == 3 and job.status.active is None
    # Failed jobs get no completionTime.
    assert job.status.completion_time is None
    assert len(job_pods(core, namespace, "j")) == 3


def test_pod_failure_policy_fail_job_on_exit_code(
    core: client.CoreV1Api, batch: client.BatchV1Api, namespace: str
) -> None:
    policy = {
        "rules": [
            {
                "action": "FailJob",
                "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]},
            }
        ]
    }
    batch.create_namespaced_job(
        namespace, job_manifest("j", backoffLimit=5, podFailurePolicy=policy)
    )
    pod = _one_pending_pod(core, namespace)
    finish_pod(core, namespace, pod.metadata.name, "Failed", exit_code=42)
    job = _wait_condition(batch, namespace, "Failed")
    failed = job.status.conditions[-1]
    assert failed.reason == "PodFailurePolicy"
    assert failed.message == (
        f"Container main for pod {namespace}/{pod.metadata.name} failed with exit code 42 "
        "matching FailJob rule at index 0"
    )
    assert job.status.failed == 1


def test_pod_failure_policy_ignore_disruptions_and_count_others(
    core: client.CoreV1Api, batch: client.BatchV1Api, namespace: str
) -> None:
    policy = {
        "rules": [
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
            {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [0]}},
        ]
    }
    batch.create_namespaced_job(
        namespace, job_manifest("j", backoffLimit=0, podFailurePolicy=policy)
    )
    evicted = _one_pending_pod(core, namespace)
    disruption = [
        {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager"}
    ]
    finish_pod(
        core, namespace, evicted.metadata.name, "Failed", exit_code=137, conditions=disruption
    )
    # Ignored: a replacement is created and nothing counts against backoffLimit=0.
    replacement = _one_pending_pod(core, namespace, done=1)
    assert _job(batch, namespace).status.failed is None
    finish_pod(core, namespace, replacement.metadata.name, "Failed", exit_code=3)
    job = _wait_condition(batch, namespace, "Failed")
    assert job.status.conditions[-1].reason == "BackoffLimitExceeded"
    assert job.status.failed == 1


def test_deleted_running_pod_counts_as_failed(
    core: client.CoreV1Api, batch: client.BatchV1Api, namespace: str
) -> None:
    batch.create_namespaced_job(namespace, job_manifest("j", backoffLimit=1))
    pod = _one_pending_pod(core, namespace)
    core.patch_namespaced_pod_status(pod.metadata.name, namespace, {"status": {"phase": "Running"}})
    core.delete_namespaced_pod(pod.metadata.name, namespace)
    wait_until(lambda: _job(batch, namespace).status.failed == 1, "vanished pod counted as failed")
    replacement = wait_until(lambda: job_pods(core, namespace, "j", "Pending"), "replacement pod")
    finish_pod(core, namespace, replacement[0].metadata.name, "Succeeded")
    job = _wait_condition(batch, namespace, "Complete")
    assert (job.status.failed, job.status.succeeded) == (1, 1)


def test_active_deadline_exceeded_kills_active_pods(
    core: client.CoreV1Api, batch: client.BatchV1Api, namespace: str
) -> None:
    batch.create_namespaced_job(
        namespace, job_manifest("j", activeDeadlineSeconds=1, backoffLimit=3)
    )
    _one_pending_pod(core, namespace)
    job = _wait_condition(batch, namespace, "Failed")
    failed = job.status.conditions[-1]
    assert (failed.reason, failed.message) == (
        "DeadlineExceeded",
        "Job was active longer than specified deadline",
    )
    assert job_pods(core, namespace, "j") == [] and job.status.active is None


def test_parallelism_runs_pods_side_by_side(
    core: client.CoreV1Api, batch: client.BatchV1Api, namespace: str
) -> None:
    batch.create_namespaced_job(namespace, job_manifest("j", completions=3, parallelism=2))
    pods = wait_until(
        lambda: len(job_pods(core, namespace, "j")) == 2 and job_pods(core, namespace, "j"),
        "two pods",
    )
    finish_pod(core, namespace, pods[0].metadata.name, "Succeeded")
    wait_until(lambda: len(job_pods(core, namespace, "j")) == 3, "third pod")
    assert wait_until(lambda: _job(batch, namespace).status.active == 2, "active=2")


def test_invalid_jobs_are_rejected(batch: client.BatchV1Api, namespace: str) -> None:
    import json

    import pytest

    always = job_manifest("j", template_spec={"restartPolicy": "Always"})
    with pytest.raises(client.ApiException) as caught:
        batch.create_namespaced_job(namespace, always)
    causes = json.loads(caught.value.body)["details"]["causes"]
    assert caught.value.status == 422
    assert {c["field"] for c in causes} == {"spec.template.spec.restartPolicy"}
    long_name = job_manifest("j" * 64)
    with pytest.raises(client.ApiException) as caught:
        batch.create_namespaced_job(namespace, long_name)
    assert caught.value.status == 422
    with pytest.raises(client.ApiException) as caught:
        batch.create_namespaced_job(namespace, job_manifest("j", backoffLimit=-1))
    assert caught.value.status == 422


def test_suspend_and_resume(
    core: client.CoreV1Api, batch: client.BatchV1Api, namespace: str
) -> None:
    batch.create_namespaced_job(namespace, job_manifest("j", backoffLimit=0))
    _one_pending_pod(core, namespace)
    batch.patch_namespaced_job("j", namespace, {"spec": {"suspend": True}})
    job = _wait_condition(batch, namespace, "Suspended")
    assert job.status.conditions[-1].reason == "JobSuspended"
    assert job.status.start_time is None and job.status.active is None
    assert job_pods(core, namespace, "j") == []
    batch.patch_namespaced_job("j", namespace, {"spec": {"suspend": False}})
    pod = _one_pending_pod(core, namespace)
    job = wait_until(
        lambda: (j := _job(batch, namespace)) and "Suspended" not in condition_types(j) and j,
        "resumed job",
    )
    (suspended,) = job.status.conditions
    assert (suspended.type, suspended.status, suspended.reason) == (
        "Suspended",
        "False",
        "JobResumed",
    )
    # Pods deleted for the suspension did not count against backoffLimit=0.
    finish_pod(core, namespace, pod.metadata.name, "Succeeded")
    job = _wait_condition(batch, namespace, "Complete")
    assert (job.status.failed, job.status.succeeded) == (None, 1)
