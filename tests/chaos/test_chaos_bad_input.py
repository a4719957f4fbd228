"""Bad input is rejected before any Job is created, with a message naming the culprit.

Each row runs `snakemake --executor kubernetes` as a user would, with one wrong setting or
resource; the cluster's request log must show zero Job creations, the run must fail, the
output must name the setting and the value at fault, and must not print any secret.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

import pytest
from azure.storage.blob import ContainerSasPermissions, generate_container_sas

from support.chaos import JOBS_PATH, run_objects, secret_leaks

pytestmark = pytest.mark.chaos


@dataclass(frozen=True)
class BadInput:
    name: str
    culprits: tuple[str, ...]  # all in one line of the output (case-insensitive)
    args: tuple[str, ...] = ()
    resources: str = ""
    files: dict[str, str] = field(default_factory=dict)


NOT_YAML = "kind: Pod\nspec: [unclosed\n  containers: {\n"

BAD_INPUTS = [
    BadInput("negative memory", ("invalid", "mem_mb=-1"), resources="mem_mb=-1"),
    BadInput("non-numeric gpu", ("invalid", "gpu", "abc"), resources='gpu="abc"'),
    BadInput(
        "invalid label",
        ("invalid", "--kubernetes-labels", "bad key!"),
        args=("--kubernetes-labels", "bad key!=x"),
    ),
    BadInput(
        "invalid namespace",
        ("invalid", "--kubernetes-namespace", "Bad_NS"),
        args=("--kubernetes-namespace", "Bad_NS"),
    ),
    BadInput(
        "unknown toleration effect",
        ("invalid", "--kubernetes-tolerations", "Sometimes"),
        args=("--kubernetes-tolerations", "dedicated=gpu:Sometimes"),
    ),
    BadInput(
        "pod template not YAML",
        ("--kubernetes-pod-template", "template.yaml", "not YAML"),
        args=("--kubernetes-pod-template", "template.yaml"),
        files={"template.yaml": NOT_YAML},
    ),
    BadInput(
        "container name with upper case and underscore",
        ("invalid", "A_B"),
        args=("--default-storage-prefix", "az://A_B"),
    ),
    BadInput(
        "image pull policy",
        ("invalid", "--kubernetes-image-pull-policy", "Sometimes"),
        args=("--kubernetes-image-pull-policy", "Sometimes"),
    ),
    BadInput(
        "node selector without a value",
        ("invalid", "--kubernetes-node-selector", "novalue"),
        args=("--kubernetes-node-selector", "novalue"),
    ),
    BadInput(
        "unknown credential mode",
        ("credential_mode", "magic"),
        args=("--storage-azblob-credential-mode", "magic"),
    ),
    BadInput(
        "per-rule node selector without a value",
        ("invalid", "k8s_node_selector", "pool"),
        resources='k8s_node_selector="pool"',
    ),
    BadInput(
        "per-rule label value too long",
        ("invalid", "k8s_labels", "x" * 70),
        resources=f'k8s_labels="team={"x" * 70}"',
    ),
]


def snakefile(resources: str) -> str:
    block = f"    resources:\n        {resources},\n" if resources else ""
    return f"""
localrules: all

rule all:
    input:
        "out.txt",

rule job:
    output:
        "out.txt",
{block}    shell:
        "echo done > {{output}}"
"""


def lines_naming(output: str, culprits: tuple[str, ...]) -> list[str]:
    return [
        line for line in output.splitlines() if all(c.lower() in line.lower() for c in culprits)
    ]


def job_creates(control) -> int:
    return control.count_requests("POST", JOBS_PATH)


def check_rejected(run, control, culprits: tuple[str, ...], secrets: list[str]) -> None:
    assert run.returncode != 0, run.output[-3000:]
    assert job_creates(control) == 0, "a Job was created despite the bad input"
    assert lines_naming(run.output, culprits), f"no line names {culprits}:\n{run.output[-3000:]}"
    assert run.leftovers == set()
    assert secret_leaks(run, secrets) == []


@pytest.mark.parametrize("bad", BAD_INPUTS, ids=[b.name for b in BAD_INPUTS])
def test_bad_input_is_rejected_before_any_job_with_the_culprit_named(
    bad: BadInput, chaos_runner, chaos_control, azurite, chaos_record
):
    workdir_files = chaos_runner.tmp_path / "files"
    workdir_files.mkdir()
    args = tuple(str(workdir_files / a) if a in bad.files else a for a in bad.args)
    for name, content in bad.files.items():
        (workdir_files / name).write_text(content)
    run = chaos_runner.run(snakefile(bad.resources), jobs=1, extra_args=args, name="bad")

    check_rejected(
        run, chaos_control, bad.culprits, [azurite.account_key, *chaos_runner.secret_env.values()]
    )
    chaos_record(job_creates=0, rejected=1)


def test_sas_without_read_permission_is_rejected_before_any_job(
    chaos_runner, chaos_control, chaos_cluster, azurite, container, chaos_record
):
    write_only = generate_container_sas(
        azurite.account_name,
        container,
        account_key=azurite.account_key,
        permission=ContainerSasPermissions(write=True, create=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    before = run_objects(chaos_cluster.kubeconfig)
    run = chaos_runner.run(
        snakefile(""),
        jobs=1,
        extra_args=(
            "--storage-azblob-credential-mode",
            "sas",
            "--storage-azblob-sas-token",
            write_only,
        ),
        name="sas",
    )

    signature = unquote(re.search(r"sig=([^&]+)", write_only).group(1))
    check_rejected(
        run,
        chaos_control,
        ("refused", "--storage-azblob-sas-token"),
        [azurite.account_key, signature, *chaos_runner.secret_env.values()],
    )
    assert run_objects(chaos_cluster.kubeconfig) == before
    chaos_record(job_creates=0, rejected=1)
