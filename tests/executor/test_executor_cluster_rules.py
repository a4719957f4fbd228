"""Per-rule pod options on the cluster: a rule's own image and node affinity take effect,
and an unknown k8s_* resource stops the run before anything is submitted."""

from __future__ import annotations

BIO_IMAGE = "snakemake-k8s-azblob-bio:latest"

RULES_SNAKEFILE = f"""
rule all:
    input:
        "tools.txt",
        "plain.txt",

# pysam is in the bio image only
rule tools:
    output:
        "tools.txt",
    resources:
        k8s_image="{BIO_IMAGE}",
        k8s_affinity="kubernetes.io/hostname!=node-1",
    shell:
        "python -c 'import pysam' && echo pysam > {{output}} || echo none > {{output}}"

rule plain:
    output:
        "plain.txt",
    shell:
        "python -c 'import pysam' && echo pysam > {{output}} || echo none > {{output}}"
"""


def test_rule_image_and_affinity_take_effect(k8s_workflow, azurite, container):
    run = k8s_workflow.run(RULES_SNAKEFILE, jobs=2)
    assert run.returncode == 0, run.output
    blobs = azurite.service_client().get_container_client(container)
    assert blobs.download_blob("tools.txt").readall().decode().strip() == "pysam"
    assert blobs.download_blob("plain.txt").readall().decode().strip() == "none"

    pods = {
        pod["metadata"]["labels"]["snakemake.io/rule"]: pod for pod in run.observed.of_kind("Pod")
    }
    assert set(pods) == {"tools", "plain"}
    images = {rule: pod["spec"]["containers"][0]["image"] for rule, pod in pods.items()}
    assert images["tools"] == BIO_IMAGE
    assert images["plain"] == "snakemake-k8s-azblob:latest"
    node = pods["tools"]["spec"]["nodeName"]
    assert node != "node-1"
    if k8s_workflow.local:
        assert node == "node-2"
    assert run.leftovers == set()


def test_unknown_k8s_resource_stops_the_run_before_any_submission(k8s_workflow):
    snakefile = """
rule all:
    input:
        "a.txt",

rule typo:
    output:
        "a.txt",
    resources:
        k8s_nodeselector="agentpool=batch",
    shell:
        "touch {output}"
"""
    run = k8s_workflow.run(snakefile, jobs=1)
    assert run.returncode != 0
    assert "Unknown resource k8s_nodeselector in rule typo" in run.output, run.output
    assert run.observed.of_kind("Job") == []
    assert run.leftovers == set()
