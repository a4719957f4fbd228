"""The Executor class end to end against the scripted API: submission, the run Secret,
status rounds from the watch cache, success/failure handling, cancel and shutdown."""

from __future__ import annotations

import asyncio
import base64
import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from snakemake_executor_plugin_kubernetes.launch import boot_script
from snakemake_executor_plugin_kubernetes.plugin_deploy import (
    install_missing_command,
    install_missing_statements,
)
from support.executor_harness import (
    STORAGE_KEY,
    TOKEN,
    FakeJob,
    pod_for,
    set_status,
    status_round,
    terminated,
)
from support.fakeapi import wait_until


def test_submission_secret_and_success(server, make_executor):
    api = server.api
    executor = make_executor()
    jobs = [FakeJob("align", 1), FakeJob("sort", 2, resources={"_cores": 2, "mem_mb": 100})]
    for job in jobs:
        executor.run_job(job)
    names = api.names("jobs")
    assert len(names) == 2 and api.count("POST", "/jobs$") == 2
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
    assert api.count("PATCH", "/secrets/") == 1
    owners = api.get("secrets", secret_name)["metadata"]["ownerReferences"]
    assert sorted(o["name"] for o in owners) == names
    assert all(o["kind"] == "Job" and o["uid"] for o in owners)

    # Success of one Job: reported once, the Job deleted, logs not fetched.
    done = api.get("jobs", names[0])
    api.put("pods", {**pod_for(done), "status": {"phase": "Succeeded"}}, event="ADDED")
    set_status(api, "jobs", names[0], conditions=[{"type": "Complete", "status": "True"}])
    wait_until(
        lambda: executor.watcher.cache.job(names[0]).get("status", {}).get("conditions"),
        "completion seen",
    )
    before = len(api.requests)
    assert status_round(executor) == [names[1]]
    assert executor.workflow.scheduler.finished == ["align"]
    new = [(r.method, r.path) for r in api.requests[before:]]
    assert new == [("DELETE", f"/apis/batch/v1/namespaces/default/jobs/{names[0]}")]

    # No secret value in anything the executor sent, except the Secret itself.
    for request in api.requests:
        if "/secrets" in request.path and request.method in ("POST", "PUT"):
            continue
        sent = json.dumps([request.path, request.query, request.body])
        assert TOKEN not in sent and STORAGE_KEY not in sent
    assert TOKEN not in executor.logger.text()

    executor.shutdown()
    assert api.names("jobs") == [] and api.names("secrets") == [] and api.names("pods") == []


def job_command(api: Any, name: str) -> str:
    """The job's shell command, as the usage recorder (efficiency report) runs it."""
    (box,) = api.get("jobs", name)["spec"]["template"]["spec"]["containers"]
    assert box["command"] == ["/bin/sh", "-c"]
    wrapped = box["args"][0]
    assert "exec python -m snakemake_executor_plugin_kubernetes.usage " in wrapped
    return shlex.split(wrapped)[-1]


def test_the_shell_job_command_keeps_snakemakes_two_starts(server, make_executor):
    executor = make_executor(job_command="shell")
    executor.run_job(FakeJob("align", 1))
    (name,) = server.api.names("jobs")
    assert job_command(server.api, name).startswith(
        "python -m snakemake --deploy-sources az://c/archive.tar.gz abc && "
        "python -m snakemake --snakefile "
    )
    executor.shutdown()


def test_storage_plugin_is_installed_in_the_pod_only_when_the_image_lacks_it(server, make_executor):
    executor = make_executor(job_command="shell")  # deployment default: auto
    executor.workflow.storage_settings.default_storage_provider = "azblob"
    executor.run_job(FakeJob("align", 1))
    executor.run_job(FakeJob("sort", 2))
    check = install_missing_command(["snakemake_storage_plugin_azblob"], "python")
    for name in server.api.names("jobs"):
        assert job_command(server.api, name).startswith(
            f"{check} && python -m snakemake --deploy-sources"
        )
    # Snakemake's own unconditional pip install stays off.
    assert executor.workflow.spawned_job_args_factory.seen_auto_deploy is False
    executor.shutdown()


def test_the_launcher_runs_the_storage_plugin_check_in_its_own_interpreter(server, make_executor):
    executor = make_executor()  # defaults: launcher, auto
    executor.workflow.storage_settings.default_storage_provider = "azblob"
    executor.run_job(FakeJob("align", 1))
    (name,) = server.api.names("jobs")
    (box,) = server.api.get("jobs", name)["spec"]["template"]["spec"]["containers"]
    command = box["args"][0]
    check = install_missing_statements(["snakemake_storage_plugin_azblob"])
    # One Python start: the check, then the launcher (or Snakemake's two steps where the
    # image lacks this plugin), all in the boot program.
    assert command.count("python -") == 1
    assert shlex.split(command)[:3] == ["python", "-c", boot_script(check)]
    assert executor.workflow.spawned_job_args_factory.seen_auto_deploy is False
    executor.shutdown()


@pytest.mark.parametrize(("mode", "snakemake_installs"), [("always", True), ("never", False)])
def test_storage_plugin_deployment_always_and_never(
    server, make_executor, mode, snakemake_installs
):
    executor = make_executor(auto_deploy_storage_plugins=mode, job_command="shell")
    executor.workflow.storage_settings.default_storage_provider = "azblob"
    executor.run_job(FakeJob("align", 1))
    (name,) = server.api.names("jobs")
    # No check of ours: 'always' is Snakemake's pip install (in its precommand), 'never' none.
    assert job_command(server.api, name).startswith("python -m snakemake --deploy-sources")
    assert executor.workflow.spawned_job_args_factory.seen_auto_deploy is snakemake_installs
    executor.shutdown()


def test_status_rounds_cost_no_requests_with_many_active_jobs(server, make_executor):
    api = server.api
    executor = make_executor()
    for jobid in range(300):
        executor.run_job(FakeJob(f"r{jobid % 7}", jobid))
    status_round(executor)  # includes the one owner PATCH
    before = len(api.requests)
    for _ in range(5):
        assert len(status_round(executor)) == 300
    assert len(api.requests) == before
    assert api.count("PATCH", "/secrets/") == 1


def test_a_job_ending_wakes_the_next_status_round_early(server, make_executor):
    api = server.api
    executor = make_executor()  # an hour between status rounds
    for jobid in (1, 2):
        executor.run_job(FakeJob("step", jobid))
    first, second = api.names("jobs")
    status_round(executor)  # a round at the interval: it adds the owners
    patches = api.count("PATCH", "/secrets/")

    with pytest.raises(TimeoutError):
        asyncio.run(asyncio.wait_for(executor.sleep(), 1.5))
    assert not executor.woken_early, "nothing ended, yet the wait was cut short"

    executor.run_job(FakeJob("step", 3))  # a new owner for the Secret
    (third,) = set(api.names("jobs")) - {first, second}
    api.put("pods", {**pod_for(api.get("jobs", first)), "status": {"phase": "Succeeded"}})
    set_status(api, "jobs", first, conditions=[{"type": "Complete", "status": "True"}])
    wait_until(lambda: executor.watcher.cache.endings.is_set(), "the ending seen")
    asyncio.run(asyncio.wait_for(executor.sleep(), 30))
    assert executor.woken_early

    assert sorted(status_round(executor)) == sorted([second, third])
    assert executor.workflow.scheduler.finished == ["step"]
    assert api.count("PATCH", "/secrets/") == patches, "an early round patched the Secret"
    status_round(executor)  # the next round at the interval brings the owners up to date
    assert api.count("PATCH", "/secrets/") == patches + 1
    executor.shutdown()


def test_failure_reports_reason_exit_code_log_tail_and_hints(server, make_executor):
    api = server.api
    executor = make_executor(log_tail_lines=2)
    job = FakeJob("exit_three", 5, resources={"_cores": 1, "mem_mb": 500})
    executor.run_job(job)
    (name,) = api.names("jobs")
    pod = pod_for(api.get("jobs", name))
    api.logs[pod["metadata"]["name"]] = (
        "line one\nCommand 'exit 3' returned non-zero exit status 3.\nabout-to-fail\nlast words\n"
    )
    api.put("pods", pod, event="ADDED")
    set_status(
        api, "pods", pod["metadata"]["name"], phase="Failed", containerStatuses=terminated(1)
    )
    set_status(
        api,
        "jobs",
        name,
        conditions=[{"type": "Failed", "status": "True", "reason": "PodFailurePolicy"}],
    )
    wait_until(lambda: executor.watcher.cache.job(name).get("status"), "failure seen")
    assert status_round(executor) == []
    assert executor.workflow.scheduler.failed == ["exit_three"]
    (error,) = job.errors
    msg = error["msg"]
    assert "rule exit_three" in msg and "exit code 1" in msg and "PodFailurePolicy" in msg
    first_line = msg.splitlines()[0]
    assert "the rule's command exited with exit code 3" in first_line
    assert "about-to-fail\nlast words" in msg and "line one" not in msg
    assert f"kubectl describe pod {pod['metadata']['name']} -n default" in msg
    (saved,) = error["aux_logs"]
    assert Path(saved).read_text() == api.logs[pod["metadata"]["name"]]
    assert Path(saved).parent == Path(".snakemake/logs/kubernetes")
    assert api.names("jobs") == [name], "a failed Job is kept for inspection during the run"
    executor.shutdown()
    assert api.names("jobs") == [] and api.names("pods") == []


def test_oom_deadline_and_image_pull_messages(server, make_executor):
    api = server.api
    executor = make_executor(image_pull_grace=0)
    oom = FakeJob("hog_memory", 1, resources={"_cores": 1, "mem_mb": 500})
    slow = FakeJob("overrun", 2, resources={"_cores": 1, "runtime": 1})
    pull = FakeJob("one", 3)
    for job in (oom, slow, pull):
        executor.run_job(job)
    by_rule = {
        api.get("jobs", n)["metadata"]["labels"]["snakemake.io/rule"]: n for n in api.names("jobs")
    }

    oom_pod = pod_for(api.get("jobs", by_rule["hog_memory"]))
    api.put("pods", oom_pod, event="ADDED")
    set_status(
        api,
        "pods",
        oom_pod["metadata"]["name"],
        phase="Failed",
        containerStatuses=terminated(137, "OOMKilled"),
    )
    slow_pod = pod_for(api.get("jobs", by_rule["overrun"]))
    api.put("pods", slow_pod, event="ADDED")
    set_status(
        api,
        "pods",
        slow_pod["metadata"]["name"],
        phase="Failed",
        reason="DeadlineExceeded",
        message="Pod was active on the node longer than the specified deadline",
    )
    pull_pod = pod_for(api.get("jobs", by_rule["one"]))
    waiting = {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}
    api.put("pods", pull_pod, event="ADDED")
    set_status(
        api,
        "pods",
        pull_pod["metadata"]["name"],
        phase="Pending",
        containerStatuses=[{"name": "snakemake", "state": waiting}],
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


def test_disruptions_are_reported_and_bounded(server, make_executor):
    api = server.api
    executor = make_executor(disruption_retries=1)
    job = FakeJob("short_nap", 1)
    executor.run_job(job)
    (name,) = api.names("jobs")
    first = pod_for(api.get("jobs", name), "a")
    api.put("pods", first, event="ADDED")
    api.mutate(
        "pods",
        first["metadata"]["name"],
        lambda p: p["status"].update(
            conditions=[
                {
                    "type": "DisruptionTarget",
                    "status": "True",
                    "reason": "EvictionByEvictionAPI",
                    "message": "Eviction API: evicting",
                }
            ]
        ),
    )
    api.remove("pods", first["metadata"]["name"])  # eviction deletes the running pod
    wait_until(lambda: executor.watcher.cache.gone_pods(name), "deletion seen")
    assert status_round(executor) == [name]
    assert "evicted" in executor.logger.text() and "retries" in executor.logger.text()
    assert "node-1" in executor.logger.text()

    second = pod_for(api.get("jobs", name), "b")
    api.put(
        "pods",
        {
            **second,
            "status": {
                "phase": "Failed",
                "reason": "Terminated",
                "conditions": [
                    {
                        "type": "DisruptionTarget",
                        "status": "True",
                        "reason": "DeletionByPodGC",
                        "message": "PodGC: node no longer exists",
                    }
                ],
            },
        },
        event="ADDED",
    )
    wait_until(lambda: len(executor.watcher.cache.pods_of(name)) == 1, "second pod seen")
    assert status_round(executor) == []
    (error,) = job.errors
    assert (
        "disrupted 2 times" in error["msg"] and "--kubernetes-disruption-retries=1" in error["msg"]
    )
    assert "lost its node" in error["msg"]
    assert api.names("jobs") == []
    executor.shutdown()


def test_secret_recreated_if_it_vanished_and_cancel_deletes_everything(server, make_executor):
    api = server.api
    executor = make_executor()
    executor.run_job(FakeJob("a", 1))
    (secret,) = api.names("secrets")
    api.remove("secrets", secret)  # e.g. garbage-collected while no Job existed
    executor.run_job(FakeJob("b", 2))
    status_round(executor)
    assert api.names("secrets") == [secret]
    assert len(api.get("secrets", secret)["metadata"]["ownerReferences"]) == 2

    for name in api.names("jobs"):
        api.put("pods", pod_for(api.get("jobs", name)), event="ADDED")
    executor.cancel()
    assert api.names("jobs") == [] and api.names("pods") == [] and api.names("secrets") == []
    deletes = [r for r in api.requests if r.method == "DELETE"]
    assert all(r.body and r.body.get("propagationPolicy") == "Background" for r in deletes)
    assert any(
        r.query.get("labelSelector") == f"snakemake.io/run-id={executor.run_id}" for r in deletes
    )


def test_creation_retry_after_a_dropped_answer_is_not_a_failure(server, make_executor):
    api = server.api
    executor = make_executor()
    original = api.handle

    def create_then_drop(handler):
        # the first POST of a Job is stored, but its answer never reaches the client
        if handler.command == "POST" and handler.path.endswith("/jobs") and not api.names("jobs"):
            api.fail_next("POST", "/jobs$", 0)
            length = int(handler.headers.get("Content-Length"))
            body = json.loads(handler.rfile.read(length))
            api.put("jobs", body, event="ADDED")
            handler.close_connection = True
            handler.connection.shutdown(2)
            api.faults.clear()
            return
        original(handler)

    api.handle = create_then_drop
    executor.run_job(FakeJob("a", 1))
    assert len(api.names("jobs")) == 1
    assert executor.workflow.scheduler.submitted == ["a"]
    executor.shutdown()


def test_save_all_logs_keeps_successful_jobs_logs_and_keep_jobs_keeps_the_job(
    server, make_executor
):
    api = server.api
    executor = make_executor(save_all_logs=True, keep_jobs=True)
    executor.run_job(FakeJob("align", 1))
    (name,) = api.names("jobs")
    pod = {**pod_for(api.get("jobs", name)), "status": {"phase": "Succeeded"}}
    api.logs[pod["metadata"]["name"]] = "aligned 42 reads\n"
    api.put("pods", pod, event="ADDED")
    set_status(api, "jobs", name, conditions=[{"type": "Complete", "status": "True"}])
    wait_until(lambda: executor.watcher.cache.job(name).get("status"), "completion seen")
    assert status_round(executor) == []
    assert executor.workflow.scheduler.finished == ["align"]
    saved = Path(".snakemake/logs/kubernetes") / f"{name}.log"
    assert saved.read_text() == "aligned 42 reads\n"
    executor.shutdown()
    assert api.names("jobs") == [name] and api.names("secrets") == []


def test_no_secret_without_jobs_and_never_an_unowned_secret_between_waves(server, make_executor):
    api = server.api
    executor = make_executor()
    status_round(executor)
    assert api.names("secrets") == [], "a run with nothing to do creates no Secret"

    executor.run_job(FakeJob("first", 1))
    (first,) = api.names("jobs")
    (secret,) = api.names("secrets")
    owners = api.get("secrets", secret)["metadata"]["ownerReferences"]
    assert [o["name"] for o in owners] == [first], "created already owned by the first Job"

    # The only owner succeeds: its Job stays, or the collector would take the Secret.
    api.put("pods", {**pod_for(api.get("jobs", first)), "status": {"phase": "Succeeded"}})
    set_status(api, "jobs", first, conditions=[{"type": "Complete", "status": "True"}])
    wait_until(
        lambda: executor.watcher.cache.job(first).get("status", {}).get("conditions"),
        "completion seen",
    )
    assert status_round(executor) == []
    assert executor.workflow.scheduler.finished == ["first"]
    assert api.names("jobs") == [first]

    # A newer Job becomes an owner in the next round; only then the old one goes.
    executor.run_job(FakeJob("second", 2))
    status_round(executor)
    (second,) = api.names("jobs")
    assert second != first
    owners = api.get("secrets", secret)["metadata"]["ownerReferences"]
    assert second in [o["name"] for o in owners]
    executor.shutdown()
    assert api.names("jobs") == [] and api.names("secrets") == []


def test_secret_names_only_the_newest_jobs_as_owners(server, make_executor):
    from snakemake_executor_plugin_kubernetes.secrets import MAX_OWNERS

    api = server.api
    executor = make_executor()
    for jobid in range(MAX_OWNERS + 36):
        executor.run_job(FakeJob("many", jobid))
    status_round(executor)
    (secret,) = api.names("secrets")
    owners = [o["name"] for o in api.get("secrets", secret)["metadata"]["ownerReferences"]]
    submitted = [
        r.body["metadata"]["name"]
        for r in api.requests
        if r.method == "POST" and r.path.endswith("/jobs")
    ]
    assert owners == submitted[-MAX_OWNERS:]
    assert api.count("PATCH", "/secrets/") == 1
    executor.shutdown()
