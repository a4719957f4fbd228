"""The node agent's kubelet: environment, pod filesystem, logs and every container state."""

from __future__ import annotations

import base64

from kubernetes import client

from localcluster.nodeagent import testkit
from localcluster.nodeagent.images import ImageCatalog
from localcluster.nodeagent.testkit import pod, shell_container

node_cluster = testkit.node_cluster_fixture()


def _secret(name: str, data: dict[str, str]) -> client.V1Secret:
    encoded = {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}
    return client.V1Secret(metadata=client.V1ObjectMeta(name=name), data=encoded)


def _finished(core, namespace: str, name: str, timeout: float = 60.0) -> dict:
    return testkit.wait_pod(
        core, namespace, name, testkit.phase_is("Succeeded", "Failed"), "finished", timeout
    )


def test_environment_resolves_secrets_config_maps_fields_and_references(node_cluster) -> None:
    core = testkit.core_api(node_cluster)
    namespace = testkit.new_namespace(core)
    core.create_namespaced_secret(namespace, _secret("creds", {"key": "s3cr3t", "user": "ann"}))
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="settings"), data={"MODE": "fast", "LEVEL": "3"}
        ),
    )
    env = [
        {"name": "PLAIN", "value": "p"},
        {"name": "DERIVED", "value": "$(PLAIN)-$(LEVEL)-$$(PLAIN)-$(MISSING)"},
        {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "key"}}},
        {"name": "MODE_ONE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "MODE"}}},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {
            "name": "OPTIONAL",
            "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k", "optional": True}},
        },
    ]
    env_from = [
        {"secretRef": {"name": "creds"}, "prefix": "S_"},
        {"configMapRef": {"name": "settings"}},
    ]
    names = "PLAIN DERIVED KEY MODE_ONE POD NS NODE S_key S_user MODE LEVEL OPTIONAL"
    script = f'for v in {names}; do eval "echo $v=\\${{$v-unset}}"; done; echo "$@"'
    container = shell_container(script, env=env, envFrom=env_from)
    container["args"] = ["sh", "arg-$(POD)"]
    core.create_namespaced_pod(namespace, pod("envy", container))
    done = _finished(core, namespace, "envy")
    assert done["status"]["phase"] == "Succeeded", done["status"]
    lines = testkit.logs(core, namespace, "envy").splitlines()
    assert lines == [
        "PLAIN=p",
        "DERIVED=p-3-$(PLAIN)-$(MISSING)",
        "KEY=s3cr3t",
        "MODE_ONE=fast",
        "POD=envy",
        f"NS={namespace}",
        f"NODE={done['spec']['nodeName']}",
        "S_key=s3cr3t",
        "S_user=ann",
        "MODE=fast",
        "LEVEL=3",
        "OPTIONAL=unset",
        "arg-envy",
    ]
    core.delete_namespace(namespace)


def test_each_pod_starts_in_a_fresh_empty_directory_without_the_hosts_environment(
    node_cluster, tmp_path, monkeypatch
) -> None:
    core = testkit.core_api(node_cluster)
    namespace = testkit.new_namespace(core)
    (tmp_path / "test-file").write_text("the test's own folder")
    monkeypatch.chdir(tmp_path)
    script = (
        'echo "cwd=$PWD"; echo "entries=$(ls -A | wc -l)"; '
        f'echo "leak=${{{testkit.LEAK_MARKER}-none}}"; '
        'echo "home=$HOME"; echo "tmp=$TMPDIR"; echo "snakemake=$(command -v snakemake)"; '
        'echo data > scratch/out.txt && echo "scratch=$(cat scratch/out.txt)"; '
        'touch "$HOME/h" "$TMPDIR/t" && echo writable'
    )
    container = shell_container(
        script,
        workingDir="/workdir",
        volumeMounts=[{"name": "scratch", "mountPath": "/workdir/scratch"}],
    )
    spec = {"volumes": [{"name": "scratch", "emptyDir": {}}]}
    for name in ("fresh-1", "fresh-2"):
        core.create_namespaced_pod(namespace, pod(name, container, **spec))
    outputs = {}
    for name in ("fresh-1", "fresh-2"):
        assert _finished(core, namespace, name)["status"]["phase"] == "Succeeded"
        outputs[name] = dict(
            line.split("=", 1)
            for line in testkit.logs(core, namespace, name).splitlines()
            if "=" in line
        )
    first, second = outputs["fresh-1"], outputs["fresh-2"]
    assert first["cwd"] != second["cwd"]
    for output in (first, second):
        assert output["cwd"].endswith("/workdir")
        assert not output["cwd"].startswith(str(tmp_path))
        assert output["entries"] == "1"  # only the emptyDir mount point
        assert output["leak"] == "none"
        pod_dir = output["cwd"].removesuffix("/root/workdir")
        assert output["home"] == f"{pod_dir}/home"
        assert output["tmp"] == f"{pod_dir}/tmp"
        assert output["snakemake"].endswith("/bin/snakemake")
        assert output["scratch"] == "data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test-file"]

    # no workingDir: the pod's root, which holds only the termination message file
    bare = shell_container('echo "$(ls -A) $(ls -A dev) $PWD"')
    core.create_namespaced_pod(namespace, pod("bare", bare))
    assert _finished(core, namespace, "bare")["status"]["phase"] == "Succeeded"
    entries, dev, cwd = testkit.logs(core, namespace, "bare").split()
    assert (entries, dev, cwd.rsplit("/", 2)[1:]) == ("dev", "termination-log", ["bare", "root"])
    core.delete_namespace(namespace)


def test_container_states_completed_error_oomkilled_and_start_error(node_cluster) -> None:
    core = testkit.core_api(node_cluster)
    namespace = testkit.new_namespace(core)
    hog = (
        "import time\nblocks = []\nwhile True:\n"
        "    blocks.append(bytearray(16 * 1024 * 1024))\n    time.sleep(0.01)\n"
    )
    pods = {
        "ok": shell_container("echo fine"),
        "fails": shell_container(
            "echo broken >&2; exit 3", terminationMessagePolicy="FallbackToLogsOnError"
        ),
        "hog": {
            "name": "main",
            "image": testkit.IMAGE,
            "command": ["python", "-c", hog],
            "resources": {"limits": {"memory": "96Mi", "cpu": "500m"}},
        },
        "no-binary": {"name": "main", "image": testkit.IMAGE, "command": ["no-such-binary"]},
    }
    for name, container in pods.items():
        core.create_namespaced_pod(namespace, pod(name, container))
    done = {name: _finished(core, namespace, name) for name in pods}

    ok = testkit.container_state(done["ok"])["terminated"]
    assert (done["ok"]["status"]["phase"], ok["exitCode"], ok["reason"]) == (
        "Succeeded",
        0,
        "Completed",
    )
    assert ok["startedAt"] <= ok["finishedAt"]
    assert testkit.logs(core, namespace, "ok") == "fine\n"

    failed = testkit.container_state(done["fails"])["terminated"]
    assert (done["fails"]["status"]["phase"], failed["exitCode"], failed["reason"]) == (
        "Failed",
        3,
        "Error",
    )
    assert failed["message"] == "broken"

    oom = testkit.container_state(done["hog"])["terminated"]
    assert (done["hog"]["status"]["phase"], oom["exitCode"], oom["reason"]) == (
        "Failed",
        137,
        "OOMKilled",
    )

    start = testkit.container_state(done["no-binary"])["terminated"]
    assert (start["exitCode"], start["reason"]) == (128, "StartError")
    assert 'exec: "no-such-binary"' in start["message"]

    reasons = [e[1] for e in testkit.events_of(core, namespace, "ok")]
    assert reasons == ["Scheduled", "Pulled", "Created", "Started"]
    for name in pods:
        conditions = {c["type"]: c["status"] for c in done[name]["status"]["conditions"]}
        assert conditions == {
            "PodScheduled": "True",
            "PodReadyToStartContainers": "False",
            "Initialized": "True",
            "ContainersReady": "False",
            "Ready": "False",
        }
        assert done[name]["status"]["podIP"].startswith("10.244.")
    core.delete_namespace(namespace)


def test_running_pod_shape_and_deletion_kills_the_process_group(node_cluster) -> None:
    core = testkit.core_api(node_cluster)
    namespace = testkit.new_namespace(core)
    script = "sleep 300 & echo child=$!; echo leader=$$$$; wait"  # $$ escapes $
    core.create_namespaced_pod(
        namespace, pod("sleeper", shell_container(script), terminationGracePeriodSeconds=1)
    )
    running = testkit.wait_pod(core, namespace, "sleeper", testkit.phase_is("Running"), "running")
    status = running["status"]["containerStatuses"][0]
    assert status["ready"] is True and status["started"] is True
    assert "startedAt" in status["state"]["running"]
    assert testkit.condition(running, "Ready")["status"] == "True"

    def pids() -> dict[str, int] | None:
        found = dict(
            line.split("=")
            for line in testkit.logs(core, namespace, "sleeper").splitlines()
            if "=" in line
        )
        return {k: int(v) for k, v in found.items()} if len(found) == 2 else None

    started = testkit.wait_until(pids, "both pids in the log")
    assert all(testkit.process_alive(pid) for pid in started.values())
    core.delete_namespaced_pod("sleeper", namespace)
    for pid in started.values():
        testkit.wait_gone(pid)
    reasons = [e[1] for e in testkit.events_of(core, namespace, "sleeper")]
    assert reasons[-1] == "Killing"
    core.delete_namespace(namespace)


def test_active_deadline_fails_the_pod_with_deadline_exceeded(node_cluster) -> None:
    core = testkit.core_api(node_cluster)
    namespace = testkit.new_namespace(core)
    core.create_namespaced_pod(
        namespace, pod("late", shell_container("sleep 300"), activeDeadlineSeconds=1)
    )
    done = _finished(core, namespace, "late")
    assert done["status"]["phase"] == "Failed"
    assert done["status"]["reason"] == "DeadlineExceeded"
    assert done["status"]["message"] == (
        "Pod was active on the node longer than the specified deadline"
    )
    assert testkit.container_state(done)["terminated"]["exitCode"] == 137
    core.delete_namespace(namespace)


def test_unknown_image_waits_in_err_image_pull_then_image_pull_back_off(node_cluster) -> None:
    core = testkit.core_api(node_cluster)
    namespace = testkit.new_namespace(core)
    container = {"name": "main", "image": "nosuch/image:1.0", "command": ["true"]}
    core.create_namespaced_pod(namespace, pod("pull", container))
    seen: set[str] = set()

    def both_reasons() -> bool:
        seen.add(testkit.waiting_reason(testkit.read_pod(core, namespace, "pull")) or "")
        return {"ErrImagePull", "ImagePullBackOff"} <= seen

    testkit.wait_until(both_reasons, "ErrImagePull and ImagePullBackOff")
    current = testkit.read_pod(core, namespace, "pull")
    assert current["status"]["phase"] == "Pending"
    events = testkit.events_of(core, namespace, "pull")
    reference = "docker.io/nosuch/image:1.0"
    assert (
        "Warning",
        "Failed",
        "kubelet",
        'Failed to pull image "nosuch/image:1.0": rpc error: code = NotFound desc = failed to '
        f'pull and unpack image "{reference}": failed to resolve reference "{reference}": '
        f"{reference}: not found",
    ) in events
    assert ("Warning", "Failed", "kubelet", "Error: ErrImagePull") in events
    assert ("Normal", "BackOff", "kubelet", 'Back-off pulling image "nosuch/image:1.0"') in events
    assert ("Warning", "Failed", "kubelet", "Error: ImagePullBackOff") in events
    core.delete_namespace(namespace)


def test_missing_secret_then_missing_key_then_runs_once_both_exist(node_cluster) -> None:
    core = testkit.core_api(node_cluster)
    namespace = testkit.new_namespace(core)
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "later", "key": "token"}}}]
    core.create_namespaced_pod(namespace, pod("config", shell_container("echo $TOKEN", env=env)))

    def waiting_message(expected: str) -> bool:
        current = testkit.read_pod(core, namespace, "config")
        for status in current["status"].get("containerStatuses") or []:
            waiting = status["state"].get("waiting") or {}
            if waiting.get("reason") == "CreateContainerConfigError":
                return waiting.get("message") == expected
        return False

    testkit.wait_until(lambda: waiting_message('secret "later" not found'), "missing secret")
    core.create_namespaced_secret(namespace, _secret("later", {"other": "x"}))
    testkit.wait_until(
        lambda: waiting_message(f"couldn't find key token in Secret {namespace}/later"),
        "missing key",
    )
    core.patch_namespaced_secret(
        "later", namespace, {"data": {"token": base64.b64encode(b"t-42").decode()}}
    )
    done = _finished(core, namespace, "config")
    assert done["status"]["phase"] == "Succeeded"
    assert testkit.logs(core, namespace, "config") == "t-42\n"
    events = testkit.events_of(core, namespace, "config")
    assert ("Warning", "Failed", "kubelet", 'Error: secret "later" not found') in events
    core.delete_namespace(namespace)


def test_pip_inside_a_pod_installs_only_from_the_wheelhouse(node_cluster) -> None:
    core = testkit.core_api(node_cluster)
    namespace = testkit.new_namespace(core)
    script = (
        'echo "no_index=$PIP_NO_INDEX config=$PIP_CONFIG_FILE"; '
        "pip install -q --target lib tomlkit && cd lib && python -c "
        "'import tomlkit; print(\"imported\", tomlkit.__name__)' && cd ..; "
        "pip install -q --target lib2 surely-not-in-the-wheelhouse-pkg; echo missing=$?"
    )
    core.create_namespaced_pod(namespace, pod("pip", shell_container(script)))
    done = _finished(core, namespace, "pip", timeout=120)
    assert done["status"]["phase"] == "Succeeded"
    output = testkit.logs(core, namespace, "pip")
    assert "no_index=1 config=/dev/null" in output
    assert "imported tomlkit" in output
    assert "No matching distribution found for surely-not-in-the-wheelhouse-pkg" in output
    assert "missing=1" in output
    core.delete_namespace(namespace)


def test_logs_are_served_while_the_container_runs(node_cluster) -> None:
    core = testkit.core_api(node_cluster)
    namespace = testkit.new_namespace(core)
    script = "echo first; echo to-stderr >&2; sleep 300"
    core.create_namespaced_pod(namespace, pod("talker", shell_container(script)))
    testkit.wait_until(
        lambda: (
            testkit.logs(core, namespace, "talker") == "first\nto-stderr\n"
            if testkit.read_pod(core, namespace, "talker")["status"]["phase"] == "Running"
            else None
        ),
        "both lines in the log",
    )
    core.delete_namespace(namespace)


def test_init_containers_run_first_and_on_failure_restarts_count(node_cluster) -> None:
    core = testkit.core_api(node_cluster)
    namespace = testkit.new_namespace(core)
    init = shell_container("echo prepared > shared/flag", name="prepare")
    # Fails twice, then succeeds: the counter survives restarts in the shared emptyDir.
    script = (
        "test -f shared/flag || exit 9; n=$(cat shared/n 2>/dev/null || echo 0); "
        "echo $((n + 1)) > shared/n; test $n -ge 2"
    )
    mounts = [{"name": "shared", "mountPath": "/shared"}]
    init["volumeMounts"] = mounts
    main = shell_container(script, volumeMounts=mounts)
    spec = {
        "restartPolicy": "OnFailure",
        "initContainers": [init],
        "volumes": [{"name": "shared", "emptyDir": {}}],
    }
    core.create_namespaced_pod(namespace, pod("retrying", main, **spec))
    done = _finished(core, namespace, "retrying")
    assert done["status"]["phase"] == "Succeeded"
    init_status = done["status"]["initContainerStatuses"][0]
    assert init_status["state"]["terminated"]["reason"] == "Completed"
    main_status = done["status"]["containerStatuses"][0]
    assert main_status["restartCount"] == 2
    assert main_status["lastState"]["terminated"]["exitCode"] == 1
    assert main_status["state"]["terminated"]["exitCode"] == 0
    back_offs = core.list_namespaced_event(namespace, field_selector="reason=BackOff").items
    assert [e.message for e in back_offs] == ["Back-off restarting failed container"]
    assert back_offs[0].count == 2  # the same event, counted, as the real recorder does
    core.delete_namespace(namespace)


def test_secret_and_config_map_volumes_are_files_in_the_pod(node_cluster) -> None:
    core = testkit.core_api(node_cluster)
    namespace = testkit.new_namespace(core)
    core.create_namespaced_secret(namespace, _secret("files", {"token": "abc", "other": "x"}))
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="conf"), data={"a.yaml": "k: v"}),
    )
    volumes = [
        {
            "name": "sec",
            "secret": {"secretName": "files", "items": [{"key": "token", "path": "t"}]},
        },
        {"name": "cfg", "configMap": {"name": "conf"}},
    ]
    mounts = [
        {"name": "sec", "mountPath": "/etc/creds"},
        {"name": "cfg", "mountPath": "/etc/conf"},
    ]
    script = "cat etc/creds/t; echo; ls etc/creds; cat etc/conf/a.yaml"
    container = shell_container(script, workingDir="/", volumeMounts=mounts)
    core.create_namespaced_pod(namespace, pod("mounted", container, volumes=volumes))
    assert _finished(core, namespace, "mounted")["status"]["phase"] == "Succeeded"
    assert testkit.logs(core, namespace, "mounted") == "abc\nt\nk: v"
    core.delete_namespace(namespace)


def test_bio_image_has_the_workflow_tools_and_both_plugins(node_cluster) -> None:
    # Cached across sessions; building is not what this test times.
    ImageCatalog.from_environment().build("bio")
    core = testkit.core_api(node_cluster)
    namespace = testkit.new_namespace(core)
    probe = (
        "import pybwa, pysam, matplotlib, snakemake_storage_plugin_azblob, "
        "snakemake_executor_plugin_kubernetes; print('tools ok')"
    )
    container = {
        "name": "main",
        "image": "myregistry.azurecr.io/snakemake-k8s-azblob-bio:0.1.0",
        "command": ["python", "-c", probe],
    }
    core.create_namespaced_pod(namespace, pod("bio", container))
    done = _finished(core, namespace, "bio")
    assert done["status"]["phase"] == "Succeeded", testkit.logs(core, namespace, "bio")
    assert testkit.logs(core, namespace, "bio") == "tools ok\n"
    core.delete_namespace(namespace)
