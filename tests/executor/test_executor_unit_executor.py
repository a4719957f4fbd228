"""The Executor class end to end against the local cluster's API server (in process, with its
Job controller and garbage collector but no node agent: the tests play the kubelet by setting
pod status): submission, the run Secret, status rounds from the watch cache, success/failure
handling, cancel and shutdown."""

from __future__ import annotations

import asyncio
import base64
import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from localcluster.testing import wait_until
from snakemake_executor_plugin_kubernetes.launch import boot_script
from snakemake_executor_plugin_kubernetes.plugin_deploy import (
    install_missing_command,
    install_missing_statements,
)
from support.executor_harness import (
    STORAGE_KEY,
    TOKEN,
    FakeJob,
    finish,
    job_conditions,
    nothing_left,
    run_pod,
    status_round,
    terminated,
    writes,
)


def test_submission_secret_and_success(api, make_executor):
    executor = make_executor()
    jobs = [FakeJob("align", 1), FakeJob("sort", 2, resources={"_cores": 2, "mem_mb": 100})]
    for job in jobs:
        executor.run_job(job)
    names = api.names("jobs")
    assert len(names) == 2 and api.control.count_requests("POST", "/jobs$") == 2
    assert executor.workflow.scheduler.submitted == ["align", "sort"]
    assert all(job.registered for job in jobs)

    # The one Secret holds the values; the Jobs reference them by name.
    (secret_name,) = api.names("secrets")
    secret = api.get("secrets", secret_name)
    assert base64.b64decode(secret["data"]["E1_TOKEN"]).decode() == TOKEN
    assert secret["metadata"]["labels"]["snakemake.io/run-id"] == executor.run_id
    job = api.get("jobs", names[0])
    command = job["spec"]["template"]["spec"]["containers"][0]["args"][0]
    # One Python start per pod: deploy the sources, then run the job, and record the
    # job's usage for the efficiency report in the same interpreter (see launch.py).
    words = shlex.split(command)
    assert words[:3] == ["python", "-c", boot_script()]
    assert words[3:9] == [
        "--message-file", "../dev/termination-log",
        "--deploy-sources", "az://c/archive.tar.gz", "abc", "::",
    ]  # fmt: skip
    assert words[9] == "--snakefile"
    assert "--general-args" in command and "--mode 'remote'" in command
    assert executor.workflow.spawned_job_args_factory.seen_auto_deploy is False

    # First round: one PATCH adds both Jobs as owners of the Secret, nothing finished.
    assert sorted(status_round(executor)) == names
    assert api.control.count_requests("PATCH", "/secrets/") == 1
    owners = api.get("secrets", secret_name)["metadata"]["ownerReferences"]
    assert sorted(o["name"] for o in owners) == names
    assert all(o["kind"] == "Job" and o["uid"] for o in owners)

    # Success of one Job: reported once, the Job deleted, logs not fetched.
    finish(api, names[0])
    wait_until(lambda: "Complete" in job_conditions(executor, names[0]), "completion seen")
    api.control.reset_requests()
    assert status_round(executor) == [names[1]]
    assert executor.workflow.scheduler.finished == ["align"]
    assert writes(api) == [("DELETE", f"/apis/batch/v1/namespaces/default/jobs/{names[0]}")]
    assert api.control.count_requests(path="/log") == 0

    executor.shutdown()
    wait_until(lambda: nothing_left(api, "jobs", "secrets", "pods"), "everything removed")


def test_no_secret_value_in_anything_the_executor_sends_but_the_secret(api, make_executor):
    api.control.reset_requests()
    executor = make_executor()
    executor.run_job(FakeJob("align", 1))
    status_round(executor)
    executor.shutdown()
    sent = [
        r for r in api.requests() if not (r["path"].endswith("/secrets") and r["method"] == "POST")
    ]
    assert len(sent) > 3
    for request in sent:
        text = json.dumps([request["path"], request["query"], request["body"]])
        assert TOKEN not in text and STORAGE_KEY not in text
    assert TOKEN not in executor.logger.text()


def job_command(api: Any, name: str) -> str:
    """The job's shell command, as the usage recorder (efficiency report) runs it."""
    (box,) = api.get("jobs", name)["spec"]["template"]["spec"]["containers"]
    assert box["command"] == ["/bin/sh", "-c"]
    wrapped = box["args"][0]
    assert "exec python -m snakemake_executor_plugin_kubernetes.usage " in wrapped
    return shlex.split(wrapped)[-1]


def test_the_shell_job_command_keeps_snakemakes_two_starts(api, make_executor):
    executor = make_executor(job_command="shell")
    executor.run_job(FakeJob("align", 1))
    (name,) = api.names("jobs")
    assert job_command(api, name).startswith(
        "python -m snakemake --deploy-sources az://c/archive.tar.gz abc && "
        "python -m snakemake --snakefile "
    )
    executor.shutdown()


def test_storage_plugin_is_installed_in_the_pod_only_when_the_image_lacks_it(api, make_executor):
    executor = make_executor(job_command="shell")  # deployment default: auto
    executor.workflow.storage_settings.default_storage_provider = "azblob"
    executor.run_job(FakeJob("align", 1))
    executor.run_job(FakeJob("sort", 2))
    check = install_missing_command(["snakemake_storage_plugin_azblob"], "python")
    for name in api.names("jobs"):
        assert job_command(api, name).startswith(f"{check} && python -m snakemake --deploy-sources")
    # Snakemake's own unconditional pip install stays off.
    assert executor.workflow.spawned_job_args_factory.seen_auto_deploy is False
    executor.shutdown()


def test_the_launcher_runs_the_storage_plugin_check_in_its_own_interpreter(api, make_executor):
    executor = make_executor()  # defaults: launcher, auto
    executor.workflow.storage_settings.default_storage_provider = "azblob"
    executor.run_job(FakeJob("align", 1))
    (name,) = api.names("jobs")
    (box,) = api.get("jobs", name)["spec"]["template"]["spec"]["containers"]
    command = box["args"][0]
    check = install_missing_statements(["snakemake_storage_plugin_azblob"])
    # One Python start: the check, then the launcher (or Snakemake's two steps where the
    # image lacks this plugin), all in the boot program.
    assert command.count("python -") == 1
    assert shlex.split(command)[:3] == ["python", "-c", boot_script(check)]
    assert executor.workflow.spawned_job_args_factory.seen_auto_deploy is False
    executor.shutdown()


@pytest.mark.parametrize(("mode", "snakemake_installs"), [("always", True), ("never", False)])
def test_storage_plugin_deployment_always_and_never(api, make_executor, mode, snakemake_installs):
    executor = make_executor(auto_deploy_storage_plugins=mode, job_command="shell")
    executor.workflow.storage_settings.default_storage_provider = "azblob"
    executor.run_job(FakeJob("align", 1))
    (name,) = api.names("jobs")
    # No check of ours: 'always' is Snakemake's pip install (in its precommand), 'never' none.
    assert job_command(api, name).startswith("python -m snakemake --deploy-sources")
    assert executor.workflow.spawned_job_args_factory.seen_auto_deploy is snakemake_installs
    executor.shutdown()


def test_status_rounds_cost_no_requests_with_many_active_jobs(api, make_executor):
    executor = make_executor()
    for jobid in range(300):
        executor.run_job(FakeJob(f"r{jobid % 7}", jobid))
    status_round(executor)  # includes the one owner PATCH
    api.control.reset_requests()
    for _ in range(5):
        assert len(status_round(executor)) == 300
    assert writes(api) == []
    assert api.control.count_requests("GET", "/(jobs|pods|secrets)$") == 0  # lists, watches
    executor.shutdown()


def test_a_job_ending_wakes_the_next_status_round_early(api, make_executor):
    executor = make_executor()  # an hour between status rounds
    for jobid in (1, 2):
        executor.run_job(FakeJob("step", jobid))
    first, second = api.names("jobs")
    status_round(executor)  # a round at the interval: it adds the owners
    patches = api.control.count_requests("PATCH", "/secrets/")

    with pytest.raises(TimeoutError):
        asyncio.run(asyncio.wait_for(executor.sleep(), 1.5))
    assert not executor.pacing.woken_early, "nothing ended, yet the wait was cut short"

    executor.run_job(FakeJob("step", 3))  # a new owner for the Secret
    (third,) = set(api.names("jobs")) - {first, second}
    finish(api, first)
    wait_until(lambda: executor.watcher.cache.endings.is_set(), "the ending seen")
    wait_until(lambda: "Complete" in job_conditions(executor, first), "completion seen")
    asyncio.run(asyncio.wait_for(executor.sleep(), 30))
    assert executor.pacing.woken_early

    assert sorted(status_round(executor)) == sorted([second, third])
    assert executor.workflow.scheduler.finished == ["step"]
    assert api.control.count_requests("PATCH", "/secrets/") == patches, "an early round patched"
    status_round(executor)  # the next round at the interval brings the owners up to date
    assert api.control.count_requests("PATCH", "/secrets/") == patches + 1
    executor.shutdown()


def test_failure_reports_reason_exit_code_log_tail_and_hints(api, make_executor):
    executor = make_executor(log_tail_lines=2)
    job = FakeJob("exit_three", 5, resources={"_cores": 1, "mem_mb": 500})
    executor.run_job(job)
    (name,) = api.names("jobs")
    pod = run_pod(api, name)
    log = "line one\nCommand 'exit 3' returned non-zero exit status 3.\nabout-to-fail\nlast words\n"
    api.write_log(pod, log)
    api.set_pod_status(pod, phase="Failed", containerStatuses=terminated(1))
    wait_until(lambda: "Failed" in job_conditions(executor, name), "failure seen")
    assert status_round(executor) == []
    assert executor.workflow.scheduler.failed == ["exit_three"]
    (error,) = job.errors
    msg = error["msg"]
    assert "rule exit_three" in msg and "exit code 1" in msg and "PodFailurePolicy" in msg
    first_line = msg.splitlines()[0]
    assert "the rule's command exited with exit code 3" in first_line
    assert "about-to-fail\nlast words" in msg and "line one" not in msg
    assert f"kubectl describe pod {pod} -n default" in msg
    (saved,) = error["aux_logs"]
    assert Path(saved).read_text() == log
    assert Path(saved).parent == Path(".snakemake/logs/kubernetes")
    assert api.names("jobs") == [name], "a failed Job is kept for inspection during the run"
    executor.shutdown()
    wait_until(lambda: nothing_left(api, "jobs", "pods"), "the failed Job removed at the end")


def test_oom_deadline_and_image_pull_messages(api, make_executor):
    executor = make_executor(image_pull_grace=0)
    oom = FakeJob("hog_memory", 1, resources={"_cores": 1, "mem_mb": 500})
    slow = FakeJob("overrun", 2, resources={"_cores": 1, "runtime": 1})
    pull = FakeJob("one", 3)
    for job in (oom, slow, pull):
        executor.run_job(job)
    by_rule = {
        api.get("jobs", n)["metadata"]["labels"]["snakemake.io/rule"]: n for n in api.names("jobs")
    }

    oom_pod = run_pod(api, by_rule["hog_memory"])
    api.set_pod_status(oom_pod, phase="Failed", containerStatuses=terminated(137, "OOMKilled"))
    slow_pod = run_pod(api, by_rule["overrun"])
    api.set_pod_status(
        slow_pod,
        phase="Failed",
        reason="DeadlineExceeded",
        message="Pod was active on the node longer than the specified deadline",
    )
    pull_pod = run_pod(api, by_rule["one"])
    waiting = {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}
    api.set_pod_status(
        pull_pod, phase="Pending", containerStatuses=[{"name": "snakemake", "state": waiting}]
    )
    wait_until(lambda: len(executor.watcher.cache.pods_by_job()) == 3, "pods seen")
    wait_until(
        lambda: all(
            p[0].get("status", {}).get("phase") in ("Failed", "Pending")
            for p in executor.watcher.cache.pods_by_job().values()
        ),
        "statuses seen",
    )
    status_round(executor)  # the image stall is first noticed here
    status_round(executor)
    messages = {job.name: job.errors[0]["msg"] for job in (oom, slow, pull)}
    assert "OOMKilled" in messages["hog_memory"] and "500M" in messages["hog_memory"]
    assert "DeadlineExceeded" in messages["overrun"] and "1 min" in messages["overrun"]
    assert "ImagePullBackOff" in messages["one"]
    assert "snakemake-k8s-azblob:latest" in messages["one"]
    assert by_rule["one"] not in api.names("jobs"), "a stalled Job is deleted by the executor"
    executor.shutdown()


def test_disruptions_are_reported_and_bounded(api, make_executor):
    executor = make_executor(disruption_retries=1)
    job = FakeJob("short_nap", 1)
    executor.run_job(job)
    (name,) = api.names("jobs")
    first = run_pod(api, name)
    wait_until(lambda: executor.watcher.cache.pods_of(name), "the running pod seen")
    # The Eviction API marks the pod DisruptionTarget and deletes it; the Job ignores the
    # failure (its pod failure policy) and makes a new pod.
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": first}}
    api.apis["core"].create_namespaced_pod_eviction(first, "default", eviction)
    wait_until(lambda: executor.watcher.cache.gone_pods(name), "deletion seen")
    assert status_round(executor) == [name]
    assert "evicted" in executor.logger.text() and "retries" in executor.logger.text()
    assert "node-1" in executor.logger.text()

    second = run_pod(api, name, count=1)  # the replacement (the evicted pod is gone)
    assert second != first
    lost = {
        "type": "DisruptionTarget",
        "status": "True",
        "reason": "DeletionByPodGC",
        "message": "PodGC: node no longer exists",
    }
    api.set_pod_status(second, phase="Failed", reason="Terminated", conditions=[lost])
    wait_until(
        lambda: any(
            p.get("status", {}).get("phase") == "Failed"
            for p in executor.watcher.cache.pods_of(name)
        ),
        "second pod's loss seen",
    )
    assert status_round(executor) == []
    (error,) = job.errors
    assert (
        "disrupted 2 times" in error["msg"] and "--kubernetes-disruption-retries=1" in error["msg"]
    )
    assert "lost its node" in error["msg"]
    wait_until(lambda: api.names("jobs") == [], "the Job deleted")
    executor.shutdown()


def test_secret_recreated_if_it_vanished_and_cancel_deletes_everything(api, make_executor):
    executor = make_executor()
    executor.run_job(FakeJob("a", 1))
    (secret,) = api.names("secrets")
    api.delete("secrets", secret)  # e.g. garbage-collected while no Job existed
    executor.run_job(FakeJob("b", 2))
    status_round(executor)
    assert api.names("secrets") == [secret]
    assert len(api.get("secrets", secret)["metadata"]["ownerReferences"]) == 2

    for name in api.names("jobs"):
        run_pod(api, name)
    api.control.reset_requests()
    executor.cancel()
    wait_until(lambda: nothing_left(api, "jobs", "pods", "secrets"), "everything removed")
    deletes = api.requests("DELETE")
    assert deletes and all(r["body"]["propagationPolicy"] == "Background" for r in deletes)
    selector = f"snakemake.io/run-id={executor.run_id}"
    assert any(r["query"].get("labelSelector") == selector for r in deletes)


def test_creation_retry_after_a_dropped_answer_is_not_a_failure(api, make_executor):
    executor = make_executor()
    # The first POST of a Job is stored, but its answer never reaches the client.
    api.control.inject_fault("drop-response", path="/jobs$", method="POST")
    api.control.reset_requests()
    executor.run_job(FakeJob("a", 1))
    assert len(api.names("jobs")) == 1
    assert executor.workflow.scheduler.submitted == ["a"]
    assert [r["status"] for r in api.requests("POST", "/jobs")] == [0, 409]
    executor.shutdown()


def test_save_all_logs_keeps_successful_jobs_logs_and_keep_jobs_keeps_the_job(api, make_executor):
    executor = make_executor(save_all_logs=True, keep_jobs=True)
    executor.run_job(FakeJob("align", 1))
    (name,) = api.names("jobs")
    pod = run_pod(api, name)
    api.write_log(pod, "aligned 42 reads\n")
    api.set_pod_status(pod, phase="Succeeded", containerStatuses=terminated(0, "Completed"))
    wait_until(lambda: "Complete" in job_conditions(executor, name), "completion seen")
    assert status_round(executor) == []
    assert executor.workflow.scheduler.finished == ["align"]
    saved = Path(".snakemake/logs/kubernetes") / f"{name}.log"
    assert saved.read_text() == "aligned 42 reads\n"
    executor.shutdown()
    assert api.names("jobs") == [name]
    wait_until(lambda: nothing_left(api, "secrets"), "the Secret removed")


def test_no_secret_without_jobs_and_never_an_unowned_secret_between_waves(api, make_executor):
    executor = make_executor()
    status_round(executor)
    assert api.names("secrets") == [], "a run with nothing to do creates no Secret"

    executor.run_job(FakeJob("first", 1))
    (first,) = api.names("jobs")
    (secret,) = api.names("secrets")
    owners = api.get("secrets", secret)["metadata"]["ownerReferences"]
    assert [o["name"] for o in owners] == [first], "created already owned by the first Job"

    # The only owner succeeds: its Job stays, or the collector would take the Secret.
    finish(api, first)
    wait_until(lambda: "Complete" in job_conditions(executor, first), "completion seen")
    assert status_round(executor) == []
    assert executor.workflow.scheduler.finished == ["first"]
    assert api.names("jobs") == [first]
    assert api.names("secrets") == [secret]

    # A newer Job becomes an owner in the next round; only then the old one goes.
    executor.run_job(FakeJob("second", 2))
    status_round(executor)
    (second,) = api.names("jobs")
    assert second != first
    owners = api.get("secrets", secret)["metadata"]["ownerReferences"]
    assert second in [o["name"] for o in owners]
    executor.shutdown()
    wait_until(lambda: nothing_left(api, "jobs", "secrets"), "everything removed")


def test_secret_names_only_the_newest_jobs_as_owners(api, make_executor):
    from snakemake_executor_plugin_kubernetes.secrets import MAX_OWNERS

    api.control.reset_requests()
    executor = make_executor()
    for jobid in range(MAX_OWNERS + 36):
        executor.run_job(FakeJob("many", jobid))
    status_round(executor)
    (secret,) = api.names("secrets")
    owners = [o["name"] for o in api.get("secrets", secret)["metadata"]["ownerReferences"]]
    submitted = [r["body"]["metadata"]["name"] for r in api.requests("POST", "/jobs")]
    assert owners == submitted[-MAX_OWNERS:]
    assert api.control.count_requests("PATCH", "/secrets/") == 1
    executor.shutdown()
