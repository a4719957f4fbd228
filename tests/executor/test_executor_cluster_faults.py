"""API server faults during a run, and the cost of status checks, seen in the request log.

These need the local cluster's control API (request log, fault injection); against a real
cluster they skip with a reason.
"""

from __future__ import annotations

import re

from support.chaos import EXECUTOR_USER_AGENT, JOBS_PATH, PODS_PATH, SECRETS_PATH


def parallel_snakefile(count: int, folder: str = "parallel") -> str:
    return f"""
rule all:
    input:
        expand("{folder}/{{i}}.txt", i=range({count})),

rule parallel:
    output:
        "{folder}/{{i}}.txt",
    shell:
        "echo {{wildcards.i}} > {{output}}"
"""


def assert_all_outputs(azurite, container: str, count: int) -> None:
    blobs = azurite.service_client().get_container_client(container)
    for i in range(count):
        assert blobs.download_blob(f"parallel/{i}.txt").readall().decode().strip() == str(i)


def test_submission_survives_throttling_server_errors_and_dropped_connections(
    k8s_workflow, cluster_control, azurite, container
):
    cluster_control.reset_requests()
    cluster_control.inject_fault(503, SECRETS_PATH, method="POST")
    cluster_control.inject_fault(429, JOBS_PATH, method="POST", count=2, retry_after=1)
    cluster_control.inject_fault(500, JOBS_PATH, method="POST")
    cluster_control.inject_fault("drop", JOBS_PATH, method="POST")

    run = k8s_workflow.run(parallel_snakefile(3), jobs=3)

    assert run.returncode == 0, run.output
    assert_all_outputs(azurite, container, 3)
    posts = [
        entry
        for entry in cluster_control.requests(user_agent=EXECUTOR_USER_AGENT)
        if entry["method"] == "POST" and re.search(JOBS_PATH, entry["path"])
    ]
    statuses = sorted(entry["status"] for entry in posts)
    assert statuses.count(429) == 2 and statuses.count(500) == 1, statuses
    assert len({job["metadata"]["name"] for job in run.observed.of_kind("Job")}) == 3
    assert run.leftovers == set()


def test_status_watches_survive_errors_early_ends_and_expiry(
    k8s_workflow, cluster_control, azurite, container
):
    cluster_control.reset_requests()
    # Lists and watches share their paths: the first reads of each kind fail, whichever.
    cluster_control.inject_fault(500, PODS_PATH, method="GET")
    cluster_control.inject_fault(503, PODS_PATH, method="GET")
    cluster_control.inject_fault("drop", JOBS_PATH, method="GET", count=2)
    cluster_control.expire_next_watch()

    def end_watches_mid_run(observer):
        observer.wait_for_pod("parallel")
        cluster_control.close_watches()

    run = k8s_workflow.run(parallel_snakefile(4), jobs=4, while_running=end_watches_mid_run)

    assert run.returncode == 0, run.output
    assert_all_outputs(azurite, container, 4)
    watches = [
        entry
        for entry in cluster_control.requests(user_agent=EXECUTOR_USER_AGENT)
        if entry["method"] == "GET" and "watch=" in (entry.get("query") or "")
    ]
    assert cluster_control.faults() == [], "an injected fault never hit the executor"
    # one watch per kind to start, and at least one resumed after the early end
    assert len(watches) >= 3, watches
    assert run.leftovers == set()


def status_reads(entries: list[dict]) -> list[dict]:
    """GETs of Jobs and Pods (lists, watches, single objects); pod logs excluded."""
    return [
        entry
        for entry in entries
        if entry["method"] == "GET"
        and re.search(r"/(jobs|pods)(/[^/]+)?$", entry["path"])
        and not entry["path"].endswith("/log")
    ]


def test_status_checks_cost_the_same_for_one_job_as_for_four(k8s_workflow, cluster_control):
    reads = {}
    # four pods fit the local cluster's two default nodes at once, so both runs last about
    # as long: watch resumptions (time-driven, not job-driven) stay comparable
    for count in (1, 4):
        cluster_control.reset_requests()
        run = k8s_workflow.run(
            parallel_snakefile(count, folder=f"batch{count}"), jobs=count, name=f"jobs{count}"
        )
        assert run.returncode == 0, run.output
        entries = cluster_control.requests(user_agent=EXECUTOR_USER_AGENT)
        single_object_reads = [
            entry for entry in status_reads(entries) if re.search(r"/(jobs|pods)/", entry["path"])
        ]
        assert single_object_reads == [], "a status round read jobs or pods one by one"
        reads[count] = len(status_reads(entries))
        submitted = [entry for entry in entries if entry["method"] == "POST"]
        assert len([e for e in submitted if re.search(JOBS_PATH, e["path"])]) == count

    assert reads[1] > 0
    # one watch per kind may be resumed once more in the longer run
    assert reads[4] <= reads[1] + 2, reads
