"""On the cluster: the efficiency report, pod logs kept in Blob storage, the job-name prefix.

Workflows run as `python -m snakemake` subprocesses against the session's cluster with Azure
Blob storage on Azurite (see cluster_harness).
"""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET

from snakemake_executor_plugin_kubernetes.efficiency import COLUMNS

# `grow` holds about 120 MB for a moment; `idle` sleeps a second.
REPORT_SNAKEFILE = """
rule all:
    input:
        expand("grown/{n}.txt", n=[1, 2]),
        "idle.txt",

rule grow:
    output:
        "grown/{n}.txt",
    resources:
        mem_mb=2000,
    shell:
        "python -c \\"b = bytearray(120 * 1000 * 1000); b[::4096] = b'x' * len(b[::4096])\\" "
        "&& echo {wildcards.n} > {output}"

rule idle:
    output:
        "idle.txt",
    resources:
        mem_mb=500,
    shell:
        "sleep 1; echo idle > {output}"

rule broken:
    output:
        "broken.txt",
    shell:
        "echo about-to-fail; exit 4"
"""


def _report(run) -> tuple[list[dict[str, str]], str]:
    (tsv,) = (run.workdir / ".snakemake" / "log").glob("*.kubernetes-efficiency.tsv")
    (log,) = (run.workdir / ".snakemake" / "log").glob("*.snakemake.log")
    assert tsv.name.removesuffix(".kubernetes-efficiency.tsv") == log.name.removesuffix(
        ".snakemake.log"
    ), "the report is not named after Snakemake's log"
    with tsv.open() as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        assert tuple(reader.fieldnames or ()) == COLUMNS
        rows = list(reader)
    svg = tsv.with_suffix(".svg").read_text()
    return rows, svg


def test_the_efficiency_report_measures_every_job(k8s_workflow):
    run = k8s_workflow.run(
        REPORT_SNAKEFILE, jobs=3, extra_args=("--kubernetes-job-name-prefix", "eff")
    )
    assert run.returncode == 0, run.output
    rows, svg = _report(run)
    assert sorted((r["rule"], r["wildcards"]) for r in rows) == [
        ("grow", "n=1"),
        ("grow", "n=2"),
        ("idle", ""),
    ]
    for row in rows:
        assert row["status"] == "succeeded"
        assert row["usage_source"] == "rusage"  # local cluster pods have no cgroup of their own
        assert row["node"], row
        assert row["attempt"] == "1"
        assert row["kubernetes_job"].startswith("eff-")
        assert float(row["wall_seconds"]) > 0
    grow = [r for r in rows if r["rule"] == "grow"]
    for row in grow:
        assert row["requested_mem_mb"] == "2000"
        assert float(row["requested_cpu"]) == 0.95
        # the largest process of the job's tree: the 120 MB python, not Snakemake
        assert 120 <= float(row["peak_mem_mb"]) < 1000
    idle = next(r for r in rows if r["rule"] == "idle")
    assert float(idle["wall_seconds"]) >= 1
    assert "grow (2)" in svg and "idle (1)" in svg
    ET.fromstring(svg)

    assert "Memory most over-requested: rule" in run.output
    assert "suggested mem_mb=" in run.output
    assert "CPU least used: rule" in run.output
    assert "kubernetes-efficiency.tsv" in run.output
    jobs = run.observed.of_kind("Job")
    assert jobs and all(j["metadata"]["name"].startswith("eff-") for j in jobs)
    assert run.leftovers == set()


def test_failed_jobs_logs_are_stored_under_the_storage_prefix(k8s_workflow, azurite, container):
    snakefile = REPORT_SNAKEFILE.replace('"idle.txt",\n', '"idle.txt",\n        "broken.txt",\n', 1)
    # --keep-going: without it Snakemake may pick `broken` among its first three jobs and then
    # never start `idle`, whose log the assertions below look for.
    run = k8s_workflow.run(
        snakefile, jobs=3, extra_args=("--kubernetes-save-all-logs", "--keep-going")
    )
    assert run.returncode != 0
    blobs = azurite.service_client().get_container_client(container)
    stored = {
        b.name: blobs.download_blob(b.name).readall().decode(errors="replace")
        for b in blobs.list_blobs(name_starts_with=".snakemake/kubernetes-logs/")
    }
    (run_id,) = run.observed.run_ids
    broken = [name for name in stored if "-broken-" in name]
    assert len(broken) == 1, sorted(stored)
    assert broken[0].startswith(f".snakemake/kubernetes-logs/{run_id}/sm-broken-")
    assert "about-to-fail" in stored[broken[0]]
    assert f"Its pod log is also stored at az://{container}/{broken[0]}" in run.output
    # --kubernetes-save-all-logs: the successful jobs' logs too, locally and in storage
    assert any("-idle-" in name for name in stored), sorted(stored)
    assert any("-idle-" in name for name in run.saved_logs())
    # the failed job is in the efficiency report too
    rows, _ = _report(run)
    assert [r["status"] for r in rows if r["rule"] == "broken"] == ["failed"]
    assert run.leftovers == set()


def test_no_efficiency_report_runs_the_command_unwrapped(k8s_workflow):
    run = k8s_workflow.run(
        REPORT_SNAKEFILE.replace('expand("grown/{n}.txt", n=[1, 2]),\n', ""),
        jobs=2,
        extra_args=("--kubernetes-no-efficiency-report",),
    )
    assert run.returncode == 0, run.output
    assert not list((run.workdir / ".snakemake" / "log").glob("*.kubernetes-efficiency.*"))
    pods = run.observed.of_kind("Pod")
    assert pods
    for pod in pods:
        (args,) = pod["spec"]["containers"][0]["args"]
        assert "snakemake_executor_plugin_kubernetes.usage" not in args
    assert "Memory most over-requested" not in run.output
