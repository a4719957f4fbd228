"""The node agent's termination messages: terminationMessagePath and terminationMessagePolicy
as the kubelet handles them (File, FallbackToLogsOnError, 4096 bytes per container)."""

from __future__ import annotations

from localcluster.nodeagent import testkit
from localcluster.nodeagent.testkit import pod, shell_container

node_cluster = testkit.node_cluster_fixture()


def _finished(core, namespace: str, name: str) -> dict:
    return testkit.wait_pod(
        core, namespace, name, testkit.phase_is("Succeeded", "Failed"), "finished", 60.0
    )


def _message(done: dict) -> str | None:
    return testkit.container_state(done)["terminated"].get("message")


def test_termination_messages_follow_path_and_policy(node_cluster) -> None:
    core = testkit.core_api(node_cluster)
    namespace = testkit.new_namespace(core)
    # Every container sees its pod's files below its working directory's parent (workdir
    # /workdir), so the default path /dev/termination-log is ../dev/termination-log.
    pods = {
        # File (the default): the file's content, on success as on failure.
        "file-ok": shell_container(
            "echo '{\"peak\": 1}' > ../dev/termination-log", workingDir="/workdir"
        ),
        "file-fails": shell_container(
            "echo 'disk full' > ../dev/termination-log; echo log-line; exit 2",
            workingDir="/workdir",
        ),
        # File: a failure without a message has none, whatever the log says.
        "file-empty": shell_container("echo log-line; exit 1", workingDir="/workdir"),
        # FallbackToLogsOnError: the log's tail only when the file is empty and it failed.
        "fallback-empty": shell_container(
            "for i in $(seq 1 100); do echo line-$i; done; exit 1",
            workingDir="/workdir",
            terminationMessagePolicy="FallbackToLogsOnError",
        ),
        "fallback-written": shell_container(
            "echo written > ../dev/termination-log; echo log-line; exit 1",
            workingDir="/workdir",
            terminationMessagePolicy="FallbackToLogsOnError",
        ),
        "fallback-ok": shell_container(
            "echo log-line",
            workingDir="/workdir",
            terminationMessagePolicy="FallbackToLogsOnError",
        ),
        # A custom path, and a message longer than the kubelet keeps: its last 4096 bytes.
        "custom-long": shell_container(
            "printf 'A%.0s' $(seq 1 1000) > ../tmp/why; printf 'B%.0s' $(seq 1 4096) >> ../tmp/why",
            workingDir="/workdir",
            terminationMessagePath="/tmp/why",
        ),
    }
    for name, box in pods.items():
        core.create_namespaced_pod(namespace, pod(name, box))
    done = {name: _finished(core, namespace, name) for name in pods}

    assert done["file-ok"]["status"]["phase"] == "Succeeded"
    assert _message(done["file-ok"]) == '{"peak": 1}\n'
    assert _message(done["file-fails"]) == "disk full\n"
    assert testkit.container_state(done["file-fails"])["terminated"]["exitCode"] == 2
    assert _message(done["file-empty"]) is None
    tail = _message(done["fallback-empty"]).splitlines()
    assert tail == [f"line-{i}" for i in range(21, 101)]  # the last 80 lines
    assert _message(done["fallback-written"]) == "written\n"
    assert _message(done["fallback-ok"]) is None
    assert _message(done["custom-long"]) == "B" * 4096
    spec = done["file-ok"]["spec"]["containers"][0]
    assert (spec["terminationMessagePath"], spec["terminationMessagePolicy"]) == (
        "/dev/termination-log",
        "File",
    )
    core.delete_namespace(namespace)


def test_a_restarted_container_starts_with_an_empty_message_file(node_cluster) -> None:
    core = testkit.core_api(node_cluster)
    namespace = testkit.new_namespace(core)
    # First run writes a message and fails; the restart writes nothing and succeeds.
    script = (
        "if [ -e ../first-done ]; then exit 0; fi; touch ../first-done; "
        "echo first > ../dev/termination-log; exit 1"
    )
    box = shell_container(script, workingDir="/workdir")
    core.create_namespaced_pod(namespace, pod("again", box, restartPolicy="OnFailure"))
    done = _finished(core, namespace, "again")
    status = done["status"]["containerStatuses"][0]
    assert status["restartCount"] == 1
    assert status["lastState"]["terminated"]["message"] == "first\n"
    assert "message" not in status["state"]["terminated"]
    core.delete_namespace(namespace)
