"""Per-rule pod options (k8s_image, k8s_pod_template, k8s_affinity, k8s_service_account),
unknown k8s_* resources, and --kubernetes-cpu-limit-scalar: rendered, validated strictly,
and refused before submission when wrong."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from snakemake.api import SnakemakeApi
from snakemake.settings.types import OutputSettings, ResourceSettings
from snakemake_interface_common.exceptions import WorkflowError

from snakemake_executor_plugin_kubernetes.affinity import parse_affinity
from snakemake_executor_plugin_kubernetes.config import build_run_config
from snakemake_executor_plugin_kubernetes.images import check_image_reference
from snakemake_executor_plugin_kubernetes.scheduling import check_rules
from snakemake_executor_plugin_kubernetes.settings import ExecutorSettings
from support.rendering import FakeJob, container, pod_spec, render, validate


def job(**resources: Any) -> FakeJob:
    return FakeJob(resources={"_cores": 1, "mem_mb": 500, **resources})


# ----- k8s_image ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "image",
    [
        "myregistry.azurecr.io/tools/gatk:4.5.0.0",
        "localhost:5000/bwa_tools:0.7-r1",
        "ghcr.io/org/a__b.c-d/e:v1",
        "ubuntu:24.04",
        "myregistry.azurecr.io/bio@sha256:" + "a" * 64,
        "myregistry.azurecr.io/bio:1.0@sha256:" + "0123456789abcdef" * 4,
    ],
)
def test_k8s_image_replaces_the_run_image_for_that_rule(image: str):
    manifest = render(job(k8s_image=image))
    validate(manifest)
    assert container(manifest)["image"] == image
    assert container(render(job()))["image"] == "snakemake-k8s-azblob:latest"


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        ("myregistry.azurecr.io/Tools/gatk:4.5", "lowercase"),
        ("gatk", "tag"),
        ("myregistry.azurecr.io/gatk", "tag"),
        ("gatk:", "expected"),
        ("gatk:has space", "expected"),
        ("gatk@sha256:abc", "expected"),
        ("https://myregistry.azurecr.io/gatk:1", "expected"),
        ("gatk:" + "x" * 129, "expected"),
    ],
)
def test_bad_k8s_image_is_refused_naming_rule_and_resource(image: str, reason: str):
    with pytest.raises(WorkflowError) as excinfo:
        render(job(k8s_image=image))
    message = str(excinfo.value)
    assert "k8s_image" in message and "rule align" in message and reason in message


def test_image_reference_length_limit():
    long_name = "r.io/" + "a" * 251
    with pytest.raises(WorkflowError):
        check_image_reference(long_name + ":1", "x")
    assert check_image_reference("r.io/" + "a" * 200 + ":1", "x")


# ----- k8s_pod_template ---------------------------------------------------------------------


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_rule_template_merges_over_the_run_template_and_under_the_rendered_pod(tmp_path):
    run_template = write(
        tmp_path,
        "run.yaml",
        """
        metadata:
          labels: {team: bio, tier: run}
        spec:
          hostname: from-run
          dnsPolicy: ClusterFirst
          containers:
            - name: snakemake
              env: [{name: FROM_RUN, value: "1"}]
        """,
    )
    rule_template = write(
        tmp_path,
        "rule.yaml",
        """
        metadata:
          labels: {tier: rule}
        spec:
          hostname: from-rule
          restartPolicy: Always
          containers:
            - env: [{name: FROM_RULE, value: "2"}]
        """,
    )
    manifest = render(job(k8s_pod_template=rule_template), pod_template=run_template)
    validate(manifest)
    template = manifest["spec"]["template"]
    assert template["metadata"]["labels"]["team"] == "bio"
    assert template["metadata"]["labels"]["tier"] == "rule"  # the rule's template wins
    pod = pod_spec(manifest)
    assert pod["hostname"] == "from-rule"
    assert pod["dnsPolicy"] == "ClusterFirst"
    assert pod["restartPolicy"] == "Never"  # rendered fields win over both
    env = {e["name"]: e.get("value") for e in container(manifest)["env"]}
    assert env["FROM_RUN"] == "1" and env["FROM_RULE"] == "2"
    # Other rules see the run's template only.
    other = pod_spec(render(job(), pod_template=run_template))
    assert other["hostname"] == "from-run"


def test_a_bad_rule_template_names_the_rule(tmp_path):
    with pytest.raises(WorkflowError) as excinfo:
        render(job(k8s_pod_template=str(tmp_path / "missing.yaml")))
    assert "k8s_pod_template" in str(excinfo.value) and "align" in str(excinfo.value)


# ----- k8s_affinity -------------------------------------------------------------------------


def test_affinity_syntax_maps_onto_node_affinity():
    text = (
        "agentpool=highmem|gpu, kubernetes.io/arch=amd64, !example.com/draining;"
        "required: kubernetes.azure.com/sku-cpu>8;"
        "preferred=80: topology.kubernetes.io/zone!=westeurope-3;"
        "preferred: example.com/ssd"
    )
    affinity = parse_affinity(text, "k8s_affinity")
    node = affinity["nodeAffinity"]
    assert node["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"] == [
        {
            "matchExpressions": [
                {"key": "agentpool", "operator": "In", "values": ["highmem", "gpu"]},
                {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
                {"key": "example.com/draining", "operator": "DoesNotExist"},
            ]
        },
        {
            "matchExpressions": [
                {"key": "kubernetes.azure.com/sku-cpu", "operator": "Gt", "values": ["8"]}
            ]
        },
    ]
    assert node["preferredDuringSchedulingIgnoredDuringExecution"] == [
        {
            "weight": 80,
            "preference": {
                "matchExpressions": [
                    {
                        "key": "topology.kubernetes.io/zone",
                        "operator": "NotIn",
                        "values": ["westeurope-3"],
                    }
                ]
            },
        },
        {
            "weight": 50,
            "preference": {"matchExpressions": [{"key": "example.com/ssd", "operator": "Exists"}]},
        },
    ]
    manifest = render(job(k8s_affinity=text))
    validate(manifest)
    assert pod_spec(manifest)["affinity"] == affinity


def test_affinity_combines_with_the_spot_preference():
    manifest = render(job(k8s_affinity="agentpool=batch"), spot=True)
    validate(manifest)
    node = pod_spec(manifest)["affinity"]["nodeAffinity"]
    assert node["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"] == [
        {"matchExpressions": [{"key": "agentpool", "operator": "In", "values": ["batch"]}]}
    ]
    (spot,) = node["preferredDuringSchedulingIgnoredDuringExecution"]
    assert spot["weight"] == 100
    assert spot["preference"]["matchExpressions"][0]["key"] == (
        "kubernetes.azure.com/scalesetpriority"
    )


@pytest.mark.parametrize(
    ("text", "culprit"),
    [
        ("pool=", "pool="),
        ("pool=a||b", "pool=a||b"),
        ("cores>many", "integer"),
        ("preferred=0: a=b", "weight"),
        ("preferred=101: a=b", "weight"),
        ("bad key=x", "bad key"),
        ("a=not valid", "not valid"),
        ("required:", "empty"),
    ],
)
def test_bad_affinity_is_refused_naming_rule_and_resource(text: str, culprit: str):
    with pytest.raises(WorkflowError) as excinfo:
        render(job(k8s_affinity=text))
    message = str(excinfo.value)
    assert "k8s_affinity" in message and "align" in message and culprit in message


# ----- k8s_service_account, unknown k8s_* -------------------------------------------------


def test_rule_service_account_overrides_the_run_setting_and_mounts_the_token():
    manifest = render(job(k8s_service_account="blob-writer"), service_account_name="reader")
    validate(manifest)
    pod = pod_spec(manifest)
    assert pod["serviceAccountName"] == "blob-writer"
    assert pod["automountServiceAccountToken"] is True
    assert pod_spec(render(job(), service_account_name="reader"))["serviceAccountName"] == (
        "reader"
    )


def test_unknown_k8s_resource_is_refused_naming_rule_and_resource():
    with pytest.raises(WorkflowError) as excinfo:
        render(job(k8s_node_selectr="pool=a", k8s_imag="x:1"))
    message = str(excinfo.value)
    assert "k8s_imag, k8s_node_selectr" in message and "rule align" in message


# ----- --kubernetes-cpu-limit-scalar --------------------------------------------------------


def test_no_cpu_limit_by_default():
    assert "cpu" not in container(render(FakeJob(threads=4, resources={"_cores": 4})))[
        "resources"
    ].get("limits", {})


def test_cpu_limit_scalar_gives_a_limit_relative_to_the_request():
    manifest = render(FakeJob(threads=4, resources={"_cores": 4}), cpu_limit_scalar=1.5)
    validate(manifest)
    resources = container(manifest)["resources"]
    assert resources["requests"]["cpu"] == "3800m"
    assert resources["limits"]["cpu"] == "5700m"
    # scale=0 (0.5.1) sets its own limit: the threads
    fixed = render(FakeJob(threads=4, resources={"_cores": 4, "scale": 0}), cpu_limit_scalar=1.5)
    assert container(fixed)["resources"]["limits"]["cpu"] == "4000m"


@pytest.mark.parametrize("value", [0.5, -1])
def test_cpu_limit_scalar_below_one_is_refused(value: float):
    with pytest.raises(WorkflowError) as excinfo:
        build_run_config(ExecutorSettings(cpu_limit_scalar=value))
    assert "--kubernetes-cpu-limit-scalar" in str(excinfo.value)


# ----- before the first submission: every rule of the Snakefile -----------------------------


def parsed_rules(tmp_path: Path, snakefile: str, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    (tmp_path / "Snakefile").write_text(textwrap.dedent(snakefile))
    monkeypatch.chdir(tmp_path)
    with SnakemakeApi(OutputSettings(quiet=None)) as api:
        workflow_api = api.workflow(
            resource_settings=ResourceSettings(nodes=1),
            snakefile=tmp_path / "Snakefile",
            workdir=tmp_path,
        )
        return list(workflow_api._workflow.rules)


GOOD_RULES = """
rule a:
    output: "a.txt"
    resources:
        k8s_image="myregistry.azurecr.io/tools:1.0",
        k8s_affinity="agentpool=batch",
        # a value per job is checked when the job is rendered
        k8s_labels=lambda wildcards, attempt: f"attempt={attempt}",
    shell: "touch {output}"
"""


def test_rules_with_valid_k8s_resources_pass_the_start_check(tmp_path, monkeypatch):
    check_rules(
        parsed_rules(tmp_path, GOOD_RULES, monkeypatch), build_run_config(ExecutorSettings())
    )


@pytest.mark.parametrize(
    ("resources", "culprits"),
    [
        ('k8s_tolerationz="a=b:NoSchedule"', ["k8s_tolerationz", "rule b"]),
        ('k8s_image="Tools"', ["k8s_image", "rule b", "Tools"]),
        ('k8s_affinity="x>y"', ["k8s_affinity", "rule b", "integer"]),
    ],
)
def test_bad_rules_are_refused_before_any_submission(tmp_path, monkeypatch, resources, culprits):
    snakefile = (
        GOOD_RULES
        + f"""
rule b:
    output: "b.txt"
    resources: {resources}
    shell: "touch {{output}}"
"""
    )
    rules = parsed_rules(tmp_path, snakefile, monkeypatch)
    with pytest.raises(WorkflowError) as excinfo:
        check_rules(rules, build_run_config(ExecutorSettings()))
    for culprit in culprits:
        assert culprit in str(excinfo.value)
