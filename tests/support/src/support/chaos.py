"""Shared helpers of the executor chaos scenarios: sizes, log parsing, request counting,
leftover and secret scans.

Workflows run through the executor tests' harness (support.workflows) on a
local cluster of the chaos suite's own (see conftest.py), so its request log and nodes belong
to these scenarios alone.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from localcluster.observer import RUN_ID_LABEL, api_client_for
from support.workflows import (
    WorkflowRun,
    encodings,
    places_with_secret,
)

FULL_SCALE = os.environ.get("CHAOS_SCALE", "reduced") == "full"
EXECUTOR_USER_AGENT = "snakemake-executor-plugin-kubernetes"
JOBS_PATH = r"/apis/batch/v1/namespaces/[^/]+/jobs$"
PODS_PATH = r"/api/v1/namespaces/[^/]+/pods$"
SECRETS_PATH = r"/api/v1/namespaces/[^/]+/secrets$"
FINISHED_LINE = re.compile(r"^Finished jobid: (\d+) \(Rule: ([^)]+)\)", re.MULTILINE)
RUN_ID_LINE = re.compile(r"Kubernetes run id (\S+) in namespace")


def scaled(reduced: int, full: int) -> int:
    """`full` under CHAOS_SCALE=full (nox -s chaos), else `reduced` (nox -s tests)."""
    return full if FULL_SCALE else reduced


def fan_out_snakefile(count: int, rule: str = "work") -> str:
    """`count` independent jobs, each writing its index, gathered by a local rule."""
    return f"""
localrules: all

rule all:
    input:
        expand("{rule}/{{i}}.txt", i=range({count})),

rule {rule}:
    output:
        "{rule}/{{i}}.txt",
    shell:
        "echo {{wildcards.i}} > {{output}}"
"""


def finished_jobs(output: str) -> Counter[tuple[int, str]]:
    """How often Snakemake reported each (jobid, rule) as finished."""
    return Counter((int(jobid), rule) for jobid, rule in FINISHED_LINE.findall(output))


def assert_each_job_finished_once(output: str, rule: str, count: int) -> None:
    finished = finished_jobs(output)
    of_rule = {key: n for key, n in finished.items() if key[1] == rule}
    repeated = {key: n for key, n in of_rule.items() if n != 1}
    assert repeated == {}, f"jobs reported finished more than once: {repeated}"
    assert len(of_rule) == count, f"{len(of_rule)} of {count} {rule} jobs reported finished"


def assert_outputs(azurite, container: str, rule: str, count: int) -> None:
    """Every output blob exists with the content its job wrote."""
    blobs = azurite.service_client().get_container_client(container)
    found = {blob.name: blob.size for blob in blobs.list_blobs(name_starts_with=f"{rule}/")}
    assert len(found) == count, f"{len(found)} of {count} outputs in the container"
    wrong = [
        i
        for i in range(count)
        if blobs.download_blob(f"{rule}/{i}.txt").readall().decode().strip() != str(i)
    ]
    assert wrong == [], f"outputs with wrong content: {wrong}"


def run_id_of(output: str) -> str:
    found = RUN_ID_LINE.findall(output)
    assert len(found) == 1, f"expected one run id line in the output, found {found}"
    return found[0]


def request_figures(entries: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Totals of the executor's requests: all, answered with an injected fault (each one
    retried), Job creations."""
    entries = list(entries)
    faulted = [e for e in entries if e.get("fault")]
    job_posts = [
        e
        for e in entries
        if e["method"] == "POST" and re.search(JOBS_PATH, e["path"]) and e["status"] == 201
    ]
    return {
        "api_requests": len(entries),
        "faults_served": len(faulted),
        "job_creates": len(job_posts),
    }


def job_posts_by_name(entries: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The executor's Job creation requests (POST to a jobs collection), by the Job name in
    their body, in the order they reached the API server."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        if entry["method"] == "POST" and re.search(JOBS_PATH, entry["path"]):
            name = ((entry.get("body") or {}).get("metadata") or {}).get("name", "")
            by_name.setdefault(name, []).append(entry)
    return by_name


def assert_each_job_created_once(entries: Iterable[dict[str, Any]], job_names: set[str]) -> None:
    """Every Job of the run was POSTed under one name and created by exactly one of its
    POSTs: at most one answered 201, and a name without one was refused with 409
    AlreadyExists (an earlier attempt was applied though its answer was lost). A Snakemake
    job whose retry rendered another name would show up as an extra name."""
    by_name = job_posts_by_name(entries)
    assert set(by_name) == job_names, (
        f"POSTed Job names and the run's Jobs differ: only posted {set(by_name) - job_names}, "
        f"never posted {job_names - set(by_name)}"
    )
    wrong = {}
    for name, posts in by_name.items():
        statuses = [post["status"] for post in posts]
        created = statuses.count(201)
        if created > 1 or (created == 0 and 409 not in statuses):
            wrong[name] = [(post["status"], post.get("fault")) for post in posts]
    assert wrong == {}, f"Jobs not created exactly once (status, fault) per POST: {wrong}"


def run_objects(kubeconfig: Path, run_id: str | None = None) -> list[tuple[str, str]]:
    """(kind, name) of every Job, Pod, Secret and ConfigMap carrying a run-id label (of
    `run_id` if given), in any namespace."""
    from kubernetes import client

    api = api_client_for(kubeconfig, "chaos-test-audit")
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    selector = f"{RUN_ID_LABEL}={run_id}" if run_id else RUN_ID_LABEL
    listers = {
        "Job": batch.list_job_for_all_namespaces,
        "Pod": core.list_pod_for_all_namespaces,
        "Secret": core.list_secret_for_all_namespaces,
        "ConfigMap": core.list_config_map_for_all_namespaces,
    }
    try:
        found = []
        for kind, lister in listers.items():
            reply = lister(label_selector=selector, _preload_content=False)
            found += [(kind, item["metadata"]["name"]) for item in json.loads(reply.data)["items"]]
        return sorted(found)
    finally:
        api.close()


def snakemake_log_texts(workdir: Path) -> dict[str, str]:
    """Snakemake's own log files (.snakemake/log/*) of a run directory."""
    folder = workdir / ".snakemake" / "log"
    return {
        f"file {path.relative_to(workdir)}": path.read_text(errors="replace")
        for path in sorted(folder.glob("*"))
        if path.is_file()
    }


def secret_leaks(run: WorkflowRun, secrets: Iterable[str], **more_texts: str) -> list[str]:
    """Every place a secret value shows up where it must not: the submitter's output and
    exception messages, Snakemake's log files, the executor's saved pod logs, every object of
    the run seen (Secrets by metadata only), pod logs and events; plus `more_texts`."""
    secrets = [s for s in secrets if s]
    assert secrets, "no secret values to look for: the scan would prove nothing"
    places = set(places_with_secret(run, secrets))
    needles = [needle for secret in secrets for needle in encodings(secret)]
    texts = {**snakemake_log_texts(run.workdir), **more_texts}
    places.update(place for place, text in texts.items() if any(n in text for n in needles))
    return sorted(places)
