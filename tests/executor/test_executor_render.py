"""Rendered Job manifests: a matrix of resources and settings, each validated by
kubernetes-validate in strict mode against Kubernetes 1.28 and the newest schema it ships."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from snakemake_interface_common.exceptions import WorkflowError

from snakemake_executor_plugin_kubernetes.config import build_run_config
from snakemake_executor_plugin_kubernetes.settings import ExecutorSettings
from support.rendering import (
    RUN_ID,
    SCHEMA_VERSIONS,
    SECRET_VALUE,
    FakeJob,
    Preemptible,
    container,
    pod_spec,
    render,
    validate,
)


def test_schema_versions_are_distinct_and_include_1_28():
    assert SCHEMA_VERSIONS[0] == "1.28.0"
    assert SCHEMA_VERSIONS[1] != "1.28.0"


def test_minimal_job_has_secure_defaults_and_disruption_policy():
    manifest = render()
    validate(manifest)
    spec = manifest["spec"]
    assert spec["backoffLimit"] == 0
    rules = spec["podFailurePolicy"]["rules"]
    assert rules[0]["action"] == "Ignore"
    assert rules[0]["onPodConditions"] == [{"type": "DisruptionTarget", "status": "True"}]
    assert rules[1]["action"] == "FailJob"
    assert rules[1]["onExitCodes"] == {
        "containerName": "snakemake",
        "operator": "NotIn",
        "values": [0],
    }
    assert spec["ttlSecondsAfterFinished"] == 86400
    pod = pod_spec(manifest)
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in pod
    box = container(manifest)
    assert box["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert box["command"] == ["/bin/sh", "-c"]
    assert box["args"][0].startswith("python -m snakemake")
    assert box["workingDir"] == "/workdir"
    assert box["volumeMounts"] == [{"name": "workdir", "mountPath": "/workdir"}]
    assert pod["volumes"] == [{"name": "workdir", "emptyDir": {}}]
    # No mem_mb: --kubernetes-default-mem-mb (1000) gives request and limit.
    assert box["resources"] == {
        "requests": {"cpu": "950m", "memory": "1000M"},
        "limits": {"memory": "1000M"},
    }
    labels = manifest["metadata"]["labels"]
    assert labels["snakemake.io/run-id"] == RUN_ID
    assert labels["snakemake.io/rule"] == "align"
    assert labels["snakemake.io/jobid"] == "7"
    assert labels["snakemake.io/attempt"] == "1"
    assert manifest["spec"]["template"]["metadata"]["labels"] == labels


@pytest.mark.parametrize(
    ("resources", "requests", "limits", "selector", "deadline"),
    [
        (
            {"_cores": 4, "mem_mb": 2000, "disk_mb": 10000},
            {"cpu": "3800m", "memory": "2000M", "ephemeral-storage": "10000M"},
            {"memory": "2000M"},
            {},
            None,
        ),
        (
            {"_cores": 1, "runtime": 90, "machine_type": "Standard_D4s_v5"},
            {"cpu": "950m", "memory": "1000M"},
            {"memory": "1000M"},
            {"node.kubernetes.io/instance-type": "Standard_D4s_v5"},
            5400,
        ),
        (
            {"_cores": 2, "gpu": 2, "gpu_model": "NVIDIA-A100-SXM4-80GB"},
            {"cpu": "1900m", "nvidia.com/gpu": "2", "memory": "1000M"},
            {"nvidia.com/gpu": "2", "memory": "1000M"},
            {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"},
            None,
        ),
        (
            {"_cores": 1, "gpu": 1, "gpu_manufacturer": "AMD", "mem_mb": 1},
            {"cpu": "950m", "amd.com/gpu": "1", "memory": "1M"},
            {"amd.com/gpu": "1", "memory": "1M"},
            {},
            None,
        ),
        (
            {"_cores": 0.001, "runtime": 0.5},
            {"cpu": "1m", "memory": "1000M"},
            {"memory": "1000M"},
            {},
            30,
        ),
    ],
)
def test_resources_map_to_requests_limits_selectors_and_deadline(
    resources, requests, limits, selector, deadline
):
    manifest = render(FakeJob(threads=int(resources["_cores"]) or 1, resources=resources))
    validate(manifest)
    box = container(manifest)
    assert box["resources"]["requests"] == requests
    assert box["resources"].get("limits") == limits
    pod = pod_spec(manifest)
    assert pod.get("nodeSelector", {}) == selector
    assert pod.get("activeDeadlineSeconds") == deadline
    if "gpu" in resources:
        vendor = str(resources.get("gpu_manufacturer", "nvidia")).lower()
        assert {"key": f"{vendor}.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
            "tolerations"
        ]


def test_memory_limit_scalar_scales_or_drops_the_limit():
    job = FakeJob(resources={"_cores": 1, "mem_mb": 1000})
    scaled = render(job, memory_limit_scalar=1.5)
    validate(scaled)
    assert container(scaled)["resources"]["limits"] == {"memory": "1500M"}
    unlimited = render(job, memory_limit_scalar=0)
    validate(unlimited)
    assert "limits" not in container(unlimited)["resources"]
    assert container(unlimited)["resources"]["requests"]["memory"] == "1000M"


def test_every_run_wide_setting_lands_in_the_pod():
    manifest = render(
        namespace="pipelines",
        node_selector="agentpool=batch,kubernetes.io/os=linux",
        tolerations="dedicated=snakemake:NoSchedule,example.com/flaky:NoExecute",
        priority_class="batch-low",
        runtime_class="kata",
        scheduler_name="bin-packer",
        service_account="workload-id",
        image_pull_secrets="acr-pull,other-pull",
        image_pull_policy="IfNotPresent",
        labels="team=genomics,app.kubernetes.io/part-of=pipeline",
        annotations="example.com/cost-center=42 A,note=free text: ok",
        ttl_seconds_after_finished=None,
    )
    validate(manifest)
    assert manifest["metadata"]["namespace"] == "pipelines"
    assert "ttlSecondsAfterFinished" not in manifest["spec"]
    pod = pod_spec(manifest)
    assert pod["nodeSelector"] == {"agentpool": "batch", "kubernetes.io/os": "linux"}
    assert pod["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "snakemake", "effect": "NoSchedule"},
        {"key": "example.com/flaky", "operator": "Exists", "effect": "NoExecute"},
    ]
    assert pod["priorityClassName"] == "batch-low"
    assert pod["runtimeClassName"] == "kata"
    assert pod["schedulerName"] == "bin-packer"
    assert pod["serviceAccountName"] == "workload-id"
    assert pod["automountServiceAccountToken"] is True
    assert pod["imagePullSecrets"] == [{"name": "acr-pull"}, {"name": "other-pull"}]
    assert container(manifest)["imagePullPolicy"] == "IfNotPresent"
    for meta in (manifest["metadata"], manifest["spec"]["template"]["metadata"]):
        assert meta["labels"]["team"] == "genomics"
        assert meta["labels"]["app.kubernetes.io/part-of"] == "pipeline"
        assert meta["annotations"]["example.com/cost-center"] == "42 A"
        assert meta["annotations"]["note"] == "free text: ok"


def test_per_rule_k8s_resources_override_and_extend_run_settings():
    job = FakeJob(
        resources={
            "_cores": 1,
            "k8s_node_selector": "pool=highmem",
            "k8s_tolerations": "pool=highmem:NoSchedule",
            "k8s_labels": "tier=heavy",
            "k8s_annotations": "example.com/why=big genome",
            "k8s_priority_class": "batch-high",
            "k8s_service_account": "rule-identity",
            "k8s_runtime_class": "gvisor",
            "k8s_privileged": "true",
            "k8s_image_pull_policy": "Always",
        }
    )
    manifest = render(
        job,
        node_selector="agentpool=batch",
        tolerations="dedicated=snakemake:NoSchedule",
        priority_class="batch-low",
        labels="team=genomics",
    )
    validate(manifest)
    pod = pod_spec(manifest)
    assert pod["nodeSelector"] == {"agentpool": "batch", "pool": "highmem"}
    assert [t["key"] for t in pod["tolerations"]] == ["dedicated", "pool"]
    assert pod["priorityClassName"] == "batch-high"
    assert pod["serviceAccountName"] == "rule-identity"
    assert pod["automountServiceAccountToken"] is True
    assert pod["runtimeClassName"] == "gvisor"
    box = container(manifest)
    assert box["imagePullPolicy"] == "Always"
    assert box["securityContext"]["privileged"] is True
    labels = manifest["metadata"]["labels"]
    assert labels["team"] == "genomics" and labels["tier"] == "heavy"
    assert manifest["metadata"]["annotations"]["example.com/why"] == "big genome"


@pytest.mark.parametrize("how", ["setting", "preemptible-rules"])
def test_spot_adds_toleration_and_preferred_affinity(how):
    job = FakeJob(name="call_variants", resources={"_cores": 1})
    if how == "setting":
        manifest = render(job, spot=True)
    else:
        manifest = render(job, preemptible=Preemptible({"call_variants"}))
    validate(manifest)
    pod = pod_spec(manifest)
    assert pod["tolerations"] == [
        {
            "key": "kubernetes.azure.com/scalesetpriority",
            "operator": "Equal",
            "value": "spot",
            "effect": "NoSchedule",
        }
    ]
    preferred = pod["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert preferred[0]["preference"]["matchExpressions"] == [
        {"key": "kubernetes.azure.com/scalesetpriority", "operator": "In", "values": ["spot"]}
    ]
    other = render(FakeJob(name="index"), preemptible=Preemptible({"call_variants"}))
    assert "affinity" not in pod_spec(other) and "tolerations" not in pod_spec(other)


def test_group_job_and_long_odd_rule_names_give_valid_unique_names():
    group = FakeJob(
        name="9f1c2d_bwa_map_samtools_sort",
        group=True,
        group_rules=("bwa_map", "samtools_sort"),
        jobid="db924d7a-25db-52ee-8602-be4b7d17c071",  # Snakemake's group jobs have UUIDs
        attempt=3,
    )
    long_name = "Align_Reads_With_A_Very_Long_Rule_Name_That_Goes_On_And_On_And_On_Forever"
    names = set()
    for job in (
        group,
        FakeJob(name=long_name, jobid=1),
        FakeJob(name=long_name + "2", jobid=1),
        FakeJob(name="__weird..rule__", jobid=2, attempt=2),
    ):
        manifest = render(job)
        validate(manifest)
        name = manifest["metadata"]["name"]
        assert len(name) <= 63 and name == name.lower()
        assert f"-{RUN_ID}-" in name and name.endswith(f"-{job.attempt}")
        assert manifest["metadata"]["labels"]["snakemake.io/jobid"] == str(job.jobid)
        names.add(name)
        assert manifest["metadata"]["annotations"]["snakemake.io/rule-name"] == job.name
    assert len(names) == 4
    again = render(FakeJob(**{**group.__dict__, "attempt": 4}))["metadata"]["name"]
    assert again not in names


def test_apptainer_jobs_are_privileged_others_not():
    containerized = FakeJob(is_containerized=True)
    manifest = render(containerized, apptainer=True)
    validate(manifest)
    assert container(manifest)["securityContext"]["privileged"] is True
    assert container(render(FakeJob(), apptainer=True))["securityContext"].get("privileged") is None
    assert container(render(containerized))["securityContext"].get("privileged") is None
    assert container(render(FakeJob(), privileged=True))["securityContext"]["privileged"] is True


POD_TEMPLATE = """
metadata:
  labels:
    from-template: "yes"
    snakemake.io/run-id: must-be-overridden
spec:
  nodeSelector:
    kubernetes.io/os: linux
  tolerations:
    - key: example.com/template
      operator: Exists
      effect: NoSchedule
  containers:
    - name: snakemake
      image: template-image-is-overridden
      env:
        - name: FROM_TEMPLATE
          value: "1"
      volumeMounts:
        - name: refdata
          mountPath: /refdata
    - name: sidecar
      image: busybox:1.36
  volumes:
    - name: refdata
      persistentVolumeClaim:
        claimName: reference-genomes
"""


def test_pod_template_is_merged_under_the_rendered_pod(tmp_path: Path):
    template = tmp_path / "template.yaml"
    template.write_text(POD_TEMPLATE)
    manifest = render(
        FakeJob(resources={"_cores": 1, "k8s_tolerations": "x:NoSchedule"}),
        pod_template=str(template),
    )
    validate(manifest)
    meta = manifest["spec"]["template"]["metadata"]
    assert meta["labels"]["from-template"] == "yes"
    assert meta["labels"]["snakemake.io/run-id"] == RUN_ID
    pod = pod_spec(manifest)
    assert [c["name"] for c in pod["containers"]] == ["snakemake", "sidecar"]
    box = container(manifest)
    assert box["image"] == "snakemake-k8s-azblob:latest"
    assert [e["name"] for e in box["env"]] == ["FROM_TEMPLATE", "AZ_TOKEN"]
    assert {m["name"] for m in box["volumeMounts"]} == {"refdata", "workdir"}
    assert {v["name"] for v in pod["volumes"]} == {"refdata", "workdir"}
    assert [t["key"] for t in pod["tolerations"]] == ["example.com/template", "x"]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}


def test_pod_template_may_be_a_podtemplate_object_with_unnamed_container(tmp_path: Path):
    template = tmp_path / "template.yaml"
    template.write_text(
        "apiVersion: v1\nkind: PodTemplate\ntemplate:\n  spec:\n    containers:\n"
        "      - env: [{name: EXTRA, value: x}]\n"
    )
    manifest = render(pod_template=str(template))
    validate(manifest)
    assert [c["name"] for c in pod_spec(manifest)["containers"]] == ["snakemake"]
    assert container(manifest)["env"][0] == {"name": "EXTRA", "value": "x"}


def test_secret_values_reach_the_pod_only_by_reference():
    manifest = render(secret_env=("AZURE_STORAGE_KEY", "SNAKEMAKE_STORAGE_AZBLOB_ACCOUNT_KEY"))
    validate(manifest)
    env = container(manifest)["env"]
    assert env == [
        {
            "name": name,
            "valueFrom": {"secretKeyRef": {"name": f"snakemake-run-{RUN_ID}", "key": name}},
        }
        for name in ("AZURE_STORAGE_KEY", "SNAKEMAKE_STORAGE_AZBLOB_ACCOUNT_KEY")
    ]
    assert all("value" not in item for item in env)
    assert SECRET_VALUE not in json.dumps(manifest)


def _error(excinfo: pytest.ExceptionInfo[WorkflowError]) -> str:
    return str(excinfo.value)


@pytest.mark.parametrize(
    ("resources", "culprits"),
    [
        ({"mem_mb": -1}, ["mem_mb", "-1", "align"]),
        ({"scale": "sometimes"}, ["scale", "sometimes", "align"]),
        ({"gpu": "abc"}, ["gpu", "abc", "align"]),
        ({"gpu": 1, "gpu_manufacturer": "intel"}, ["gpu_manufacturer", "intel"]),
        ({"disk_mb": 1.5}, ["disk_mb", "1.5"]),
        ({"runtime": "soon"}, ["runtime", "soon"]),
        ({"machine_type": "not a/valid value"}, ["machine_type", "not a/valid value"]),
        ({"gpu": 1, "gpu_model": "A100 80GB"}, ["gpu_model", "A100 80GB"]),
        ({"k8s_labels": "bad key!=x"}, ["k8s_labels", "bad key!"]),
        ({"k8s_labels": "team=-dash-"}, ["k8s_labels", "-dash-"]),
        ({"k8s_node_selector": "noequals"}, ["k8s_node_selector", "noequals"]),
        ({"k8s_tolerations": "a=b:Sometimes"}, ["k8s_tolerations", "Sometimes"]),
        ({"k8s_privileged": "maybe"}, ["k8s_privileged", "maybe"]),
        ({"k8s_image_pull_policy": "Sometimes"}, ["k8s_image_pull_policy", "Sometimes"]),
        ({"k8s_service_account": "Not_Valid"}, ["k8s_service_account", "Not_Valid"]),
    ],
)
def test_bad_resources_name_the_rule_and_resource(resources, culprits):
    with pytest.raises(WorkflowError) as excinfo:
        render(FakeJob(resources={"_cores": 1, **resources}))
    message = _error(excinfo)
    for culprit in culprits:
        assert culprit in message


@pytest.mark.parametrize(
    ("settings", "culprits"),
    [
        ({"namespace": "Bad_Namespace"}, ["--kubernetes-namespace", "Bad_Namespace"]),
        ({"labels": "ok=1,bad/=x"}, ["--kubernetes-labels", "bad/"]),
        ({"node_selector": "a=b c"}, ["--kubernetes-node-selector", "b c"]),
        ({"tolerations": "key=v:NoWhere"}, ["--kubernetes-tolerations", "NoWhere"]),
        ({"tolerations": "justakey"}, ["--kubernetes-tolerations", "justakey"]),
        ({"spot_toleration": "x=y:Never"}, ["--kubernetes-spot-toleration", "Never"]),
        ({"image_pull_policy": "Sometimes"}, ["--kubernetes-image-pull-policy", "Sometimes"]),
        ({"image_pull_secrets": "ok,NOT OK"}, ["--kubernetes-image-pull-secrets", "NOT OK"]),
        ({"memory_limit_scalar": 0.5}, ["--kubernetes-memory-limit-scalar", "0.5"]),
        ({"cpu_scalar": 0}, ["--kubernetes-cpu-scalar", "0"]),
        ({"default_mem_mb": 0}, ["--kubernetes-default-mem-mb", "0"]),
        (
            {"service_account": "a", "service_account_name": "b"},
            ["--kubernetes-service-account", "--kubernetes-service-account-name"],
        ),
        ({"persistent_volumes": ["data"]}, ["--kubernetes-persistent-volumes", "name:path"]),
        ({"persistent_volumes": ["data:rel"]}, ["--kubernetes-persistent-volumes", "absolute"]),
        ({"persistent_volumes": ["Data_X:/data"]}, ["--kubernetes-persistent-volumes", "Data_X"]),
        ({"persistent_volumes": ["d:/workdir"]}, ["--kubernetes-persistent-volumes", "/workdir"]),
        (
            {"persistent_volumes": ["a:/data", "b:/data/"]},
            ["--kubernetes-persistent-volumes", "more than one volume at /data"],
        ),
        ({"disruption_retries": -1}, ["--kubernetes-disruption-retries", "-1"]),
        ({"priority_class": "two,names"}, ["--kubernetes-priority-class", "two,names"]),
    ],
)
def test_bad_settings_name_the_setting_and_value(settings, culprits):
    with pytest.raises(WorkflowError) as excinfo:
        build_run_config(ExecutorSettings(**settings))
    message = _error(excinfo)
    for culprit in culprits:
        assert culprit in message


@pytest.mark.parametrize(
    ("content", "culprit"),
    [
        ("spec: [unclosed", "is not YAML"),
        ("- just\n- a list\n", "expected a mapping"),
        ("kind: Deployment\nspec: {}\n", "kind must be Pod"),
        ("spec:\n  containers: {name: x}\n", "spec.containers"),
        ("spek: {}\n", "spek"),
        ("spec:\n  volumes: nope\n", "spec.volumes"),
    ],
)
def test_bad_pod_templates_are_rejected_clearly(tmp_path: Path, content, culprit):
    template = tmp_path / "template.yaml"
    template.write_text(content)
    with pytest.raises(WorkflowError) as excinfo:
        build_run_config(ExecutorSettings(pod_template=str(template)))
    message = _error(excinfo)
    assert culprit in message
    assert "--kubernetes-pod-template" in message
    assert str(template) in message


def test_missing_pod_template_file_is_named(tmp_path: Path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(WorkflowError, match=r"nope\.yaml"):
        build_run_config(ExecutorSettings(pod_template=str(missing)))
