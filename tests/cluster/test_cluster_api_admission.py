"""Admission as a 1.30 API server applies it: Pod Security from namespace labels (enforce and
warn), LimitRange defaults and bounds, ResourceQuota with its status, sidecar injection, and
the Job controller's FailedCreate events for pods admission refuses.

Expected messages: kubernetes/pod-security-admission policy/check_*.go and
admission/admission.go; kubernetes plugin/pkg/admission/limitranger/admission.go;
apiserver pkg/admission/plugin/resourcequota/controller.go; pkg/controller/controller_utils.go
("Error creating: %v")."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from localcluster.testing import container, job_manifest, pod_manifest, wait_until

RESTRICTED_OK = {
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _label(core: client.CoreV1Api, namespace: str, labels: dict[str, str]) -> None:
    core.patch_namespace(namespace, {"metadata": {"labels": labels}})


def _refusal(call: Any) -> dict[str, Any]:
    with pytest.raises(ApiException) as caught:
        call()
    assert caught.value.status == 403
    return json.loads(caught.value.body)


def test_restricted_enforce_refuses_a_plain_pod_with_the_real_message(
    core: client.CoreV1Api, namespace: str
) -> None:
    _label(core, namespace, {"pod-security.kubernetes.io/enforce": "restricted"})
    body = _refusal(lambda: core.create_namespaced_pod(namespace, pod_manifest("plain")))
    assert body["reason"] == "Forbidden" and body["code"] == 403
    assert body["details"] == {"name": "plain", "kind": "pods"}  # omitempty: no group
    assert body["message"] == (
        'pods "plain" is forbidden: violates PodSecurity "restricted:latest": '
        'allowPrivilegeEscalation != false (container "main" must set '
        "securityContext.allowPrivilegeEscalation=false), unrestricted capabilities "
        '(container "main" must set securityContext.capabilities.drop=["ALL"]), '
        'runAsNonRoot != true (pod or container "main" must set '
        'securityContext.runAsNonRoot=true), seccompProfile (pod or container "main" must '
        'set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")'
    )
    compliant = pod_manifest("ok", containers=[container(securityContext=RESTRICTED_OK)])
    assert core.create_namespaced_pod(namespace, compliant).metadata.name == "ok"


def test_baseline_refuses_privileged_and_host_namespaces_but_not_root(
    core: client.CoreV1Api, namespace: str
) -> None:
    _label(core, namespace, {"pod-security.kubernetes.io/enforce": "baseline"})
    privileged = pod_manifest(
        "priv", hostPID=True, containers=[container(securityContext={"privileged": True})]
    )
    body = _refusal(lambda: core.create_namespaced_pod(namespace, privileged))
    assert body["message"] == (
        'pods "priv" is forbidden: violates PodSecurity "baseline:latest": host namespaces '
        '(hostPID=true), privileged (container "main" must not set '
        "securityContext.privileged=true)"
    )
    root = pod_manifest("root", containers=[container(securityContext={"runAsUser": 0})])
    assert core.create_namespaced_pod(namespace, root).metadata.name == "root"


def test_warn_label_answers_a_warning_header_and_creates(
    core: client.CoreV1Api, namespace: str
) -> None:
    _label(core, namespace, {"pod-security.kubernetes.io/warn": "restricted"})
    context = {k: v for k, v in RESTRICTED_OK.items() if k != "runAsNonRoot"}
    spec = {"containers": [container(securityContext=context)]}
    _, status, headers = core.create_namespaced_pod_with_http_info(
        namespace, pod_manifest("warned", **spec)
    )
    assert status == 201
    assert headers["Warning"] == (
        '299 - "would violate PodSecurity \\"restricted:latest\\": runAsNonRoot != true '
        '(pod or container \\"main\\" must set securityContext.runAsNonRoot=true)"'
    )


def test_enforce_on_a_job_warns_and_its_pods_fail_to_create_with_events(
    core: client.CoreV1Api, batch: client.BatchV1Api, namespace: str
) -> None:
    _label(core, namespace, {"pod-security.kubernetes.io/enforce": "restricted"})
    template = {"containers": [container(securityContext={**RESTRICTED_OK, "privileged": True})]}
    _, status, headers = batch.create_namespaced_job_with_http_info(
        namespace, job_manifest("j", template_spec=template)
    )
    # Workload templates are only warned about (warn defaults to the enforce level).
    assert status == 201
    assert 'would violate PodSecurity \\"restricted:latest\\": privileged' in headers["Warning"]
    events = wait_until(
        lambda: (
            core.list_namespaced_event(
                namespace, field_selector="involvedObject.name=j,reason=FailedCreate"
            ).items
        ),
        "FailedCreate event",
    )
    assert events[0].type == "Warning"
    assert events[0].involved_object.kind == "Job"
    assert events[0].message.startswith('Error creating: pods "j-')
    assert events[0].message.endswith(
        'is forbidden: violates PodSecurity "restricted:latest": privileged '
        '(container "main" must not set securityContext.privileged=true)'
    )
    assert core.list_namespaced_pod(namespace).items == []


def test_limit_range_sets_defaults_and_refuses_over_the_maximum(
    core: client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_limit_range(
        namespace,
        {
            "metadata": {"name": "limits"},
            "spec": {
                "limits": [
                    {
                        "type": "Container",
                        "default": {"cpu": "500m", "memory": "256Mi"},
                        "defaultRequest": {"cpu": "100m"},
                        "max": {"cpu": "1"},
                    }
                ]
            },
        },
    )
    created = core.create_namespaced_pod(namespace, pod_manifest("defaulted"))
    resources = created.spec.containers[0].resources
    assert resources.limits == {"cpu": "500m", "memory": "256Mi"}
    assert resources.requests == {"cpu": "100m", "memory": "256Mi"}
    assert created.metadata.annotations["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: cpu, memory request for container main; "
        "cpu, memory limit for container main"
    )
    big = pod_manifest(
        "big", containers=[container(resources={"limits": {"cpu": "2", "memory": "1Gi"}})]
    )
    body = _refusal(lambda: core.create_namespaced_pod(namespace, big))
    assert body["message"] == (
        'pods "big" is forbidden: maximum cpu usage per Container is 1, but limit is 2'
    )


def test_resource_quota_refuses_with_used_and_hard_and_keeps_status(
    core: client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_resource_quota(
        namespace,
        {"metadata": {"name": "compute"}, "spec": {"hard": {"requests.cpu": "1", "pods": "5"}}},
    )

    def cpu_pod(name: str, cpu: str) -> dict[str, Any]:
        return pod_manifest(name, containers=[container(resources={"requests": {"cpu": cpu}})])

    core.create_namespaced_pod(namespace, cpu_pod("first", "600m"))
    quota = wait_until(
        lambda: (
            (q := core.read_namespaced_resource_quota("compute", namespace)).status
            and q.status.used
            and q.status.used.get("pods") == "1"
            and q
        ),
        "quota status",
    )
    assert quota.status.hard == {"requests.cpu": "1", "pods": "5"}
    assert quota.status.used == {"requests.cpu": "600m", "pods": "1"}
    body = _refusal(lambda: core.create_namespaced_pod(namespace, cpu_pod("second", "500m")))
    assert body["message"] == (
        'pods "second" is forbidden: exceeded quota: compute, requested: requests.cpu=500m, '
        "used: requests.cpu=600m, limited: requests.cpu=1"
    )
    no_request = pod_manifest("bare")
    body = _refusal(lambda: core.create_namespaced_pod(namespace, no_request))
    assert body["message"] == (
        'pods "bare" is forbidden: failed quota: compute: must specify requests.cpu for: main'
    )
    core.delete_namespaced_pod("first", namespace)
    wait_until(
        lambda: (
            core.read_namespaced_resource_quota("compute", namespace).status.used
            == {"requests.cpu": "0", "pods": "0"}
        ),
        "quota usage released",
    )
    assert core.create_namespaced_pod(namespace, cpu_pod("second", "500m"))


@pytest.mark.parametrize("mode", ["classic", "native"])
def test_sidecar_injection_label_adds_a_proxy_container(
    core: client.CoreV1Api, namespace: str, mode: str
) -> None:
    _label(
        core,
        namespace,
        {
            "localcluster.io/sidecar-injection": mode,
            "pod-security.kubernetes.io/enforce": "restricted",
        },
    )
    created = core.create_namespaced_pod(
        namespace, pod_manifest("meshed", containers=[container(securityContext=RESTRICTED_OK)])
    )
    if mode == "classic":
        assert [c.name for c in created.spec.containers] == ["main", "mesh-proxy"]
        assert not created.spec.init_containers
    else:
        assert [c.name for c in created.spec.containers] == ["main"]
        (sidecar,) = created.spec.init_containers
        assert (sidecar.name, sidecar.restart_policy) == ("mesh-proxy", "Always")
