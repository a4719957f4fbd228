"""One workflow of many Snakemake features, run locally and in pods: same outputs.

Reduced to keep `nox -s tests` short: the features share one Snakefile (one main run per
executor), and the command-line features (--summary, --list-changes, --forcerun/--until,
--touch) are follow-up runs in the same working folder, most of which start no pod.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from support.compat_compare import (
    comparable,
    executed_rules,
    executor_logs,
    finish_local,
    local_outputs,
    start_local,
    storage_outputs,
    without_storage_prefix,
    workflow_files,
    write_workflow,
)
from support.workflows import WorkflowRun, WorkflowRunner

WORKFLOW = Path(__file__).resolve().parent / "workflows" / "features"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

MAIN_ARGS = ("--keep-going", "--retries", "1", "--group-components", "grp=2")
FAILING = ("--config", "fail_code=1")
CPU_SCALAR = 0.95  # the executor's default --kubernetes-cpu-scalar


def job_manifests(run: WorkflowRun, rule: str) -> list[dict]:
    return [
        job
        for job in run.observed.of_kind("Job")
        if job["metadata"]["labels"].get("snakemake.io/rule") == rule
    ]


def group_manifests(run: WorkflowRun, groupid: str) -> list[dict]:
    """Jobs of a group: Snakemake names a group job GROUPID_RULE1_RULE2..."""
    return [
        job
        for job in run.observed.of_kind("Job")
        if job["metadata"]["labels"].get("snakemake.io/rule", "").startswith(f"{groupid}_")
    ]


def container_of(job: dict) -> dict:
    return job["spec"]["template"]["spec"]["containers"][0]


def command_line(job: dict) -> str:
    container = container_of(job)
    return " ".join(container.get("command", []) + container.get("args", []))


def test_features_give_the_same_outputs_locally_and_in_pods(
    pods: WorkflowRunner, tmp_path: Path
) -> None:
    local_dir = tmp_path / "local"
    local_dir.mkdir()
    write_workflow(WORKFLOW, local_dir)
    files = workflow_files(WORKFLOW)
    snakefile = files.pop("Snakefile")
    # The local run goes on while the pods run: most of their time is waiting.
    local_process = start_local(local_dir, *MAIN_ARGS, *FAILING)
    run = pods.run(snakefile, files=files, extra_args=(*MAIN_ARGS, *FAILING), name="features")
    local = finish_local(local_process)
    output = run.output

    # --keep-going: both end the same way, with everything but the failing branch made.
    assert run.returncode == local.returncode, output[-6000:]
    expected = comparable(local_outputs(local_dir))
    assert "failing/after.txt" not in expected and "params/a.txt" in expected
    assert comparable(storage_outputs(pods)) == expected, output[-6000:]
    # The failing job's log reached storage (it is part of `expected`).
    assert expected["logs/failing.log"] == b"failing with code 1\n"
    # ... and so did the failing pod's own log, kept by the executor beside the outputs.
    assert [name for name in executor_logs(pods) if "-failing-" in name], executor_logs(pods)
    # temp(): the unread temp output was made, stored and removed, as locally.
    assert "Removing temporary output az://" in output
    # No Job is left Running (nor anything else) once the run has ended.
    assert run.leftovers == set()

    # Group pods: the pipe group and the service group run two jobs at once, so they
    # request two jobs' CPUs and their Snakemake is given 2 cores; the group of two jobs
    # in sequence requests one job's CPUs.
    pipe_jobs = [j for j in run.observed.of_kind("Job") if "numbers" in command_line(j)]
    assert pipe_jobs, "no Job ran the pipe group"
    assert container_of(pipe_jobs[0])["resources"]["requests"]["cpu"] == "1900m"
    assert "--cores 2" in command_line(pipe_jobs[0])
    (seq_job,) = group_manifests(run, "seq")
    assert container_of(seq_job)["resources"]["requests"]["cpu"] == "950m"
    assert "--cores 1" in command_line(seq_job)
    # --group-components grp=2: both samples' groups in one pod.
    assert len(group_manifests(run, "grp")) == 1
    # Follow-up runs in the same folders: the command-line features.
    follow_ups(pods, run.workdir, local_dir)


def summary_rows(output: str, container: str) -> set[tuple[str, ...]]:
    """--summary as (file, rule, log files, status, plan): all but the dates."""
    rows = set()
    for line in without_storage_prefix(output, container).splitlines():
        cells = line.split("\t")
        if len(cells) == 6 and cells[0] != "output_file":
            rows.add((cells[0], cells[2], cells[3], cells[4], cells[5]))
    return rows


def listed_files(output: str, container: str) -> set[str]:
    """The file names a --list-changes run prints (one per line, among Snakemake's notes)."""
    text = without_storage_prefix(output, container)
    return {line for line in text.splitlines() if re.fullmatch(r"[\w./-]+\.\w+|dirs/made", line)}


def follow_ups(pods: WorkflowRunner, pods_dir: Path, local_dir: Path) -> None:
    files = workflow_files(WORKFLOW)
    snakefile = files.pop("Snakefile")

    def both(*args: str) -> tuple[str, str]:
        local_process = start_local(local_dir, *args)
        remote = pods.run(snakefile, workdir=pods_dir, extra_args=args)
        local = finish_local(local_process)
        assert local.returncode == 0, local.stderr[-4000:]
        assert remote.returncode == 0, remote.output[-4000:]
        assert remote.leftovers == set()
        return local.stdout + local.stderr, remote.output

    # --retries with attempt-dependent resources: attempt 1 asks for 1000 MB and fails,
    # attempt 2 for 2000 MB; the same output as locally.
    local_process = start_local(local_dir, "--retries", "1", "retries/attempt.txt")
    retry_run = pods.run(
        snakefile, workdir=pods_dir, extra_args=("--retries", "1", "retries/attempt.txt")
    )
    local = finish_local(local_process)
    assert local.returncode == 0, local.stderr[-4000:]
    assert retry_run.returncode == 0, retry_run.output[-4000:]
    assert retry_run.leftovers == set()
    retried = [
        container_of(j)["resources"]["requests"]["memory"]
        for j in job_manifests(retry_run, "retried")
    ]
    assert retried == ["1000M", "2000M"]
    assert storage_outputs(pods)["retries/attempt.txt"] == b"mem_mb 2000\n"
    assert local_outputs(local_dir)["retries/attempt.txt"] == b"mem_mb 2000\n"

    # --summary reads the outputs' state from storage: same files, rules, status, plans.
    local, remote = both("--summary", *FAILING)
    expected = summary_rows(local, pods.container)
    assert ("failing/out.txt", "failing", "logs/failing.log", "missing", "update pending") in (
        expected
    )
    assert summary_rows(remote, pods.container) == expected

    # --list-changes params: the same outputs would be redone for a changed parameter.
    local, remote = both("--list-changes", "params", "--config", "greeting=hello", "fail_code=1")
    assert listed_files(remote, pods.container) == listed_files(local, pods.container)
    assert "params/a.txt" in listed_files(local, pods.container)

    # --forcerun/--until: only the forced jobs run, with the new parameter.
    local, remote = both("--forcerun", "greet", "--until", "greet", "--config", "greeting=hello")
    assert sorted(executed_rules(remote)) == sorted(executed_rules(local)) == ["greet", "greet"]
    assert comparable(storage_outputs(pods)) == comparable(local_outputs(local_dir))
    assert local_outputs(local_dir)["params/a.txt"].startswith(b"hello a")

    # --touch: outputs are marked up to date, not made again; afterwards nothing to do.
    before = storage_outputs(pods)
    local, remote = both(
        "--touch", "--forcerun", "source", "--until", "greet", "--config", "greeting=hello"
    )
    assert storage_outputs(pods) == before
    local, remote = both("--dry-run", "--until", "greet", "--config", "greeting=hello")
    for text in (local, remote):
        assert "Nothing to be done" in text, text[-3000:]
