"""The watch cache keeps a projection of each Job and Pod: every reader of the cache must
judge the projection exactly as the whole object, and the projection must be much smaller."""

from __future__ import annotations

import copy
import json
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest

from localcluster.pytest_fixtures import RunningCluster
from localcluster.testing import ApiDriver, wait_until
from snakemake_executor_plugin_kubernetes.cachefields import project
from snakemake_executor_plugin_kubernetes.clusterview import is_unschedulable
from snakemake_executor_plugin_kubernetes.efficiency import job_row, pod_is_final
from snakemake_executor_plugin_kubernetes.naming import ATTEMPT_LABEL
from snakemake_executor_plugin_kubernetes.occupancy import is_on_a_node
from snakemake_executor_plugin_kubernetes.outcomes import (
    JobTracker,
    describe_failure,
    judge,
)
from snakemake_executor_plugin_kubernetes.placement import ClusterFacts, diagnose
from snakemake_executor_plugin_kubernetes.watcher import RunCache, owning_job, shows_an_ending
from support.job_states import LIMITS, job, pod, waiting
from support.rendering import render

USAGE = (
    '{"kind": "snakemake-usage", "cpu_seconds": 1.5, "wall_seconds": 2.0, "exit_code": 0, '
    '"peak_memory_bytes": 1048576}'
)
NODE = {
    "metadata": {"name": "node-1", "labels": {"kubernetes.io/os": "linux"}},
    "spec": {"taints": [{"key": "spot", "value": "true", "effect": "NoSchedule"}]},
    "status": {"allocatable": {"cpu": "1", "memory": "2Gi"}},
}


def terminated(reason: str, code: int, message: str = "") -> dict[str, Any]:
    state = {"terminated": {"reason": reason, "exitCode": code, "message": message}}
    return {"containerStatuses": [{"name": "snakemake", "state": state}]}


def unschedulable(message: str) -> dict[str, Any]:
    condition = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": message,
    }
    return {"conditions": [condition]}


def decorated(obj: dict[str, Any], owner: str = "sm-x-1") -> dict[str, Any]:
    """A recorded state with what a real object carries besides: fields no reader reads."""
    obj = copy.deepcopy(obj)
    meta = obj.setdefault("metadata", {})
    meta.update(
        resourceVersion="17",
        uid="0b7c",
        creationTimestamp="2026-11-28T07:00:00Z",
        managedFields=[{"manager": "kube-controller-manager", "fieldsV1": {"f:status": {}}}],
        labels={"job-name": owner, ATTEMPT_LABEL: "2", "controller-uid": "0b7c"},
        ownerReferences=[{"kind": "Job", "name": owner, "uid": "0b7c", "controller": True}],
    )
    spec = obj.setdefault("spec", {})
    spec.update(
        volumes=[{"name": "workdir", "emptyDir": {}}],
        tolerations=[{"key": "spot", "operator": "Exists"}],
        nodeSelector={"kubernetes.io/os": "linux"},
    )
    for c in spec.get("containers", []):
        c.update(env=[{"name": "X", "value": "y" * 200}], args=["python -m snakemake " * 20])
        c.setdefault("resources", {"requests": {"cpu": "2", "memory": "1Gi"}})
    obj.setdefault("status", {}).update(hostIP="10.0.0.4", qosClass="Burstable")
    return obj


FAILED_JOB = job({"type": "Failed", "status": "True", "reason": "PodFailurePolicy"})
DEADLINE_JOB = job({"type": "Failed", "status": "True", "reason": "DeadlineExceeded"})
COMPLETE_JOB = job({"type": "Complete", "status": "True"})
RUNNING_JOB = job()
DISRUPTED = {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"}
SIDECAR_STATUSES = [
    *terminated("Error", 1)["containerStatuses"],
    {"name": "istio-proxy", "state": {"running": {}}},
]
CASES = [
    (RUNNING_JOB, [pod()]),
    (RUNNING_JOB, [pod(**unschedulable("0/1 nodes are available: 1 Insufficient cpu."))]),
    (RUNNING_JOB, [pod(**waiting("ImagePullBackOff", "back-off pulling"))]),
    (RUNNING_JOB, [pod(**waiting("CreateContainerConfigError", "secret not found"))]),
    (COMPLETE_JOB, [pod(phase="Succeeded", **terminated("Completed", 0, USAGE))]),
    (FAILED_JOB, [pod(phase="Failed", **terminated("OOMKilled", 137))]),
    (FAILED_JOB, [pod(phase="Failed", **terminated("Error", 3, "Traceback: boom"))]),
    (DEADLINE_JOB, [pod(phase="Failed", reason="DeadlineExceeded", message="too long")]),
    (RUNNING_JOB, [pod(phase="Failed", reason="Evicted", conditions=[DISRUPTED])]),
    (RUNNING_JOB, [pod(phase="Running", containerStatuses=SIDECAR_STATUSES)]),
    (FAILED_JOB, []),
]


def verdict_of(job_obj: dict[str, Any], pods: list[dict[str, Any]]) -> tuple[Any, ...]:
    verdict = judge(job_obj, pods, LIMITS, JobTracker(), now=10_000.0, last_occupied=0.0)
    return (verdict.state, verdict.message, verdict.pod, verdict.notices, verdict.waiting)


def readings(pod_obj: dict[str, Any]) -> tuple[Any, ...]:
    facts = ClusterFacts(nodes=[NODE], autoscaler=False)
    row = job_row("rule", {"i": "1"}, "1", "succeeded", "sm-x-1", pod_obj)
    return (
        owning_job(pod_obj),
        shows_an_ending("pods", pod_obj),
        is_on_a_node(pod_obj),
        is_unschedulable(pod_obj),
        pod_is_final(pod_obj),
        row.cells(),
        diagnose(pod_obj, facts) if is_unschedulable(pod_obj) else None,
    )


@pytest.mark.parametrize("job_obj, pods", CASES)
def test_every_reader_judges_the_projection_as_the_whole_object(job_obj, pods):
    full_job = decorated(job_obj)
    full_pods = [decorated(p) for p in pods]
    slim_job = project("jobs", full_job)
    slim_pods = [project("pods", p) for p in full_pods]
    before = copy.deepcopy((slim_job, slim_pods))
    assert verdict_of(slim_job, slim_pods) == verdict_of(full_job, full_pods)
    assert shows_an_ending("jobs", slim_job) == shows_an_ending("jobs", full_job)
    last = full_pods[-1] if full_pods else None
    assert describe_failure(slim_job, slim_pods[-1] if slim_pods else None) == describe_failure(
        full_job, last
    )
    for full, slim in zip(full_pods, slim_pods, strict=True):
        assert readings(slim) == readings(full)
        assert "managedFields" not in slim["metadata"] and "volumes" not in slim["spec"]
    # Equal specs and statuses are shared between cached objects: no reader may change them.
    assert (slim_job, slim_pods) == before


def test_equal_specs_and_statuses_are_one_object():
    first, second = (project("pods", decorated(pod(name))) for name in ("a", "b"))
    assert first["spec"] is second["spec"] and first["status"] is second["status"]
    assert first["metadata"]["name"] != second["metadata"]["name"]


def test_a_record_reads_like_the_projected_object():
    full = decorated(pod("a", phase="Pending"), owner="sm-x-7")
    record = project("pods", full)
    assert record["metadata"] == {
        "name": "a",
        "resourceVersion": "17",
        "creationTimestamp": "2026-11-28T07:00:00Z",
        "labels": {ATTEMPT_LABEL: "2"},
        "ownerReferences": [{"kind": "Job", "name": "sm-x-7"}],
    }
    assert record.get("status") is record["status"] and record.get("nope", 1) == 1
    assert set(record) == {"metadata", "spec", "status"} and dict(record)["spec"] == record.spec
    with pytest.raises(KeyError):
        record["nope"]
    # A Job's pods name it with the Job's own (interned) name string.
    job_record = project("jobs", decorated(job()))
    owner = "".join(["sm-x-", "1"])  # equal to the Job's name, another string
    assert owner is not job_record.name
    assert project("pods", decorated(pod("b"), owner=owner)).job is job_record.name


@pytest.fixture
def api(api_server: RunningCluster) -> Iterator[ApiDriver]:
    driver = ApiDriver(api_server)
    yield driver
    driver.close()


def bytes_held(lines: list[tuple[str, str]], cache: RunCache | None) -> int:
    """Bytes held after decoding every line as the watch does (tracemalloc), into the
    cache or, without one, kept whole."""
    kept = []
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for kind, line in lines:
            if cache is None:
                kept.append(json.loads(line))
            else:
                cache.put(kind, json.loads(line))
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def renamed(obj: dict[str, Any], name: str) -> str:
    copied = copy.deepcopy(obj)
    copied["metadata"]["name"] = name
    copied["metadata"]["uid"] = f"uid-{name}"
    for ref in copied["metadata"].get("ownerReferences", []):
        ref["name"] = name
    for label in ("job-name", "batch.kubernetes.io/job-name"):
        if label in copied["metadata"].get("labels", {}):
            copied["metadata"]["labels"][label] = name
    return json.dumps(copied)


def test_the_cache_holds_a_fraction_of_the_decoded_objects(api: ApiDriver, capsys):
    """A rendered Job and the Pending pod the local API server makes of it, 1,000 of
    each decoded as the watch decodes them: the cache's bytes against the objects'."""
    manifest = render()
    manifest["metadata"]["namespace"] = "default"
    created = api.create("jobs", manifest)
    name = created["metadata"]["name"]
    wait_until(lambda: api.pods_of(name), "the Job's pod")
    job_obj = api.get("jobs", name)
    pod_obj = api.pods_of(name)[0]
    assert job_obj is not None
    lines = [
        (kind, renamed(obj, f"{name}-{i}"))
        for i in range(1000)
        for kind, obj in (("jobs", job_obj), ("pods", pod_obj))
    ]
    full_bytes = bytes_held(lines, None)
    cache = RunCache()
    slim_bytes = bytes_held(lines, cache)
    assert cache.job(f"{name}-999") is not None and len(cache.pods_by_job()) == 1000
    with capsys.disabled():
        print(
            f"\n1,000 Jobs + 1,000 Pods ({len(lines[0][1])} + {len(lines[1][1])} bytes of "
            f"JSON each): decoded {full_bytes / 2**20:.2f} MiB, cached {slim_bytes / 2**20:.2f} MiB"
        )
    assert slim_bytes * 3 < full_bytes
    # What 10,000 Pending jobs cost the executor: a Job and a Pod record with their names
    # and versions (specs and statuses are shared), about 0.5 KiB, was 1.7 as dicts.
    assert slim_bytes / 1000 < 640
