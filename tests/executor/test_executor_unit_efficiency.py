"""The efficiency report: the in-pod usage recorder, its message, and the report files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import pytest

from localcluster.testing import wait_until
from snakemake_executor_plugin_kubernetes import usage
from snakemake_executor_plugin_kubernetes.efficiency import (
    COLUMNS,
    EfficiencyReport,
    UsageWait,
    job_row,
    pod_is_final,
    report_base,
    summarise,
    summary_lines,
    usage_pod,
    wrap_command,
)
from snakemake_executor_plugin_kubernetes.outcomes import describe_failure
from snakemake_executor_plugin_kubernetes.remotelogs import RemoteLogStore
from snakemake_executor_plugin_kubernetes.usage import Usage, parse_message
from support.executor_harness import FakeJob, job_conditions, run_pod, status_round

HOG = "b = bytearray(80 * 1000 * 1000); b[::4096] = b'x' * len(b[::4096]); print('done')"
SPIN = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"


def test_the_recorder_runs_the_command_and_writes_its_usage(tmp_path: Path) -> None:
    message = tmp_path / "dev" / "termination-log"
    message.parent.mkdir()
    message.write_text("")
    script = f"{sys.executable} -c \"{HOG}\" && {sys.executable} -c '{SPIN}'"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "snakemake_executor_plugin_kubernetes.usage"),
            *("--message-file", "dev/termination-log", "--", "/bin/sh", "-c", script),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "done\n"
    recorded = parse_message(message.read_text())
    assert recorded is not None
    assert recorded.exit_code == 0
    if recorded.source == "rusage":  # a container with its own cgroup v2 reports the cgroup
        assert 80e6 <= recorded.peak_memory_bytes < 400e6
    assert recorded.cpu_seconds >= 0.3
    assert recorded.wall_seconds >= 0.3
    assert len(message.read_bytes()) < 300


def test_the_recorder_keeps_the_commands_exit_code_and_signal(tmp_path: Path) -> None:
    for script, expected in (("exit 3", 3), ("kill -9 $$", 137)):
        message = tmp_path / f"message-{expected}"
        code = usage.main(["--message-file", str(message), "--", "/bin/sh", "-c", script])
        assert code == expected
        recorded = parse_message(message.read_text())
        assert recorded is not None and recorded.exit_code == expected


def test_an_unwritable_message_file_does_not_change_the_outcome(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "no-such-dir" / "termination-log"
    assert usage.main(["--message-file", str(missing), "--", "true"]) == 0
    assert "cannot write the termination message" in capsys.readouterr().err


def test_the_cgroup_is_read_only_when_it_is_the_containers_own(tmp_path: Path) -> None:
    own = tmp_path / "own"
    own.write_text("0::/\n")
    host = tmp_path / "host"
    host.write_text("0::/user.slice/session-1.scope\n")
    v1 = tmp_path / "v1"
    v1.write_text("4:memory:/kubepods/pod1\n0::/\n")
    assert usage.own_cgroup_v2(own) is True
    assert usage.own_cgroup_v2(host) is False
    assert usage.own_cgroup_v2(v1) is False
    assert usage.own_cgroup_v2(tmp_path / "absent") is False

    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "memory.peak").write_text("123456789\n")
    (root / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 2000000\n")
    measured = usage.measure(0.0, 0, root=root)
    assert (measured.source, measured.peak_memory_bytes, measured.cpu_seconds) == (
        "cgroup",
        123456789,
        2.5,
    )
    (root / "memory.peak").unlink()  # Linux before 5.19: no peak, so rusage
    assert usage.measure(0.0, 0, root=root).source == "rusage"


def test_messages_that_are_not_ours_are_ignored() -> None:
    ours = Usage(1_000_000, 1.5, 2.0, 0, "rusage").to_message()
    assert parse_message(ours) == Usage(1_000_000, 1.5, 2.0, 0, "rusage")
    for other in (None, "", "Sleep expired", '{"kind": "other"}', ours[:-5], "snakemake-usage/v1"):
        assert parse_message(other) is None
    # A failure is described without the usage JSON, with a user's own message kept.
    pod = {
        "status": {
            "containerStatuses": [
                {
                    "name": "snakemake",
                    "state": {"terminated": {"exitCode": 1, "reason": "Error", "message": ours}},
                }
            ]
        }
    }
    assert describe_failure({}, pod) == "Error: exit code 1"
    state = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    state["message"] = "disk full"
    assert describe_failure({}, pod) == "Error: exit code 1 (disk full)"


def test_the_wrapped_command_is_one_shell_line_relative_to_the_working_directory() -> None:
    command = "python -m snakemake --snakefile 'my file' --target-jobs 'a:i=1'"
    wrapped = wrap_command(command, "/workdir")
    assert (
        "exec python -m snakemake_executor_plugin_kubernetes.usage "
        "--message-file ../dev/termination-log -- /bin/sh -c "
    ) in wrapped
    # The shell gives the recorder the original command as one argument, unchanged.
    # This interpreter, which has the plugin, is the pod's python.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    argv = subprocess.run(
        ["/bin/sh", "-c", wrapped.replace("exec python -m", "printf '%s\\n'")],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PATH": path},
    ).stdout.splitlines()
    assert argv[-1] == command


def test_an_image_without_the_plugin_runs_the_command_unrecorded(tmp_path) -> None:
    """As in snakemake/snakemake, whose pods get only the storage plugins: the recorder's
    package is missing, the command runs as it is, with its own exit code."""
    wrapped = wrap_command("echo ran > out.txt; exit 3", "/workdir")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # A python without the plugin: the same interpreter, isolated from site-packages.
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" -I -S "$@"\n')
    (bin_dir / "python").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    work = tmp_path / "work"  # the message file would be ../dev/termination-log
    work.mkdir()
    done = subprocess.run(["/bin/sh", "-c", wrapped], cwd=work, env=env, check=False)
    assert done.returncode == 3
    assert (work / "out.txt").read_text() == "ran\n"
    assert not (tmp_path / "dev").exists()  # no termination message was written


def _pod(requests: dict[str, str], message: str | None, node: str = "node-1") -> dict:
    terminated = {"exitCode": 0, "reason": "Completed"}
    if message is not None:
        terminated["message"] = message
    return {
        "metadata": {"labels": {"snakemake.io/attempt": "2"}},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "snakemake", "resources": {"requests": requests}}],
        },
        "status": {
            "containerStatuses": [{"name": "snakemake", "state": {"terminated": terminated}}]
        },
    }


def _message(peak_mb: float, cpu: float, wall: float) -> str:
    return Usage(int(peak_mb * 1e6), cpu, wall, 0, "rusage").to_message()


def test_rows_summaries_and_the_three_log_lines() -> None:
    rows = [
        job_row(
            "align",
            {"sample": "A"},
            3,
            "succeeded",
            "sm-align-1",
            _pod({"cpu": "3800m", "memory": "4000M"}, _message(400, 20.0, 10.0)),
        ),
        job_row(
            "align",
            {"sample": "B"},
            4,
            "succeeded",
            "sm-align-2",
            _pod({"cpu": "3800m", "memory": "4000M"}, _message(500, 10.0, 10.0)),
        ),
        job_row(
            "call",
            {},
            5,
            "failed",
            "sm-call-1",
            _pod({"cpu": "950m", "memory": "1000M"}, _message(980, 9.0, 10.0)),
        ),
        job_row("plot", {}, 6, "succeeded", "sm-plot-1", _pod({"cpu": "950m"}, None)),
    ]
    first = rows[0]
    assert (first.wildcards, first.attempt, first.node, first.requested_mem_mb) == (
        "sample=A",
        2,
        "node-1",
        4000.0,
    )
    assert first.cpu_efficiency == pytest.approx(20.0 / (3.8 * 10.0))
    assert rows[3].peak_mem_mb is None and rows[3].cpu_efficiency is None

    by_rule = {s.rule: s for s in summarise(rows)}
    assert by_rule["align"].jobs == 2 and by_rule["align"].peak_mem_mb == 500
    assert by_rule["align"].cpu_efficiency == pytest.approx(30.0 / (3.8 * 20.0))
    assert by_rule["align"].suggested_mem_mb == 600
    lines = summary_lines(summarise(rows))
    assert len(lines) == 3
    assert lines[0].startswith("Memory most over-requested: rule align peaked at 500 MB of 4000")
    assert lines[0].endswith("suggested mem_mb=600")
    assert lines[1].startswith("Memory most under-requested: rule call peaked at 980 MB")
    assert lines[1].endswith("suggested mem_mb=1180")
    assert lines[2].startswith("CPU least used: rule align used 39%")


def test_the_report_files_next_to_the_snakemake_log(tmp_path: Path) -> None:
    log = tmp_path / ".snakemake" / "log" / "2026-11-28T040000.123456.snakemake.log"
    base = report_base([str(log)], "abc")
    assert base == log.with_name("2026-11-28T040000.123456.kubernetes-efficiency")
    fallback = report_base([], "abc")
    assert fallback.parent == Path(".snakemake/log") and "abc" in fallback.name

    report = EfficiencyReport()
    report.add(
        job_row(
            "a<b>&c",
            {"x": "1"},
            1,
            "succeeded",
            "sm-a",
            _pod({"cpu": "1", "memory": "100M"}, _message(50, 1.0, 2.0)),
        )
    )
    report.add(job_row("z", {}, 2, "failed", "sm-z", None))
    tsv, svg, lines = report.write(base)
    table = [line.split("\t") for line in tsv.read_text().splitlines()]
    assert tuple(table[0]) == COLUMNS
    assert len(table) == 3 and all(len(row) == len(COLUMNS) for row in table)
    assert table[1][:5] == ["a<b>&c", "x=1", "1", "2", "succeeded"]
    assert table[2][COLUMNS.index("peak_mem_mb")] == ""
    tree = ET.fromstring(svg.read_text())  # well-formed, the rule name escaped
    labels = [t.text for t in tree.iter("{http://www.w3.org/2000/svg}text")]
    assert "a<b>&c (1)" in labels and "z (1)" in labels
    assert len(lines) == 3
    assert not list(tsv.parent.glob("*.part"))


def test_a_usage_message_fits_the_kubelets_limit() -> None:
    text = Usage(2**62, 1e12, 1e12, 255, "rusage").to_message()
    assert len(text.encode()) <= usage.MAX_MESSAGE_BYTES
    assert json.loads(text)["kind"] == usage.MESSAGE_KIND


def test_a_job_that_completed_before_its_pod_status_arrived_waits_a_little():
    done = _pod({"cpu": "1"}, _message(10, 1.0, 1.0))
    running = {"metadata": {"name": "p-1"}, "status": {"phase": "Running"}}
    wait = UsageWait(seconds=5.0)
    assert wait.should_wait("job", [running], now=100.0) is True
    assert wait.should_wait("job", [running], now=104.0) is True
    assert wait.should_wait("job", [running], now=105.5) is False  # reported without usage
    assert wait.should_wait("job", [done], now=200.0) is False
    assert wait.should_wait("other", [], now=200.0) is False  # no pod cached: no wait
    assert wait.since == {}
    assert pod_is_final({"status": {"phase": "Failed"}})
    assert not pod_is_final(running) and not pod_is_final(None)

    assert usage_pod(done, [running]) is done
    assert usage_pod(None, [running, done]) is done
    assert usage_pod(None, []) is None
    row = job_row("r", {}, 1, "succeeded", "sm-r", usage_pod(None, [done]), 3)
    assert row.attempt == 3 and row.peak_mem_mb == 10


def test_a_launcher_that_ran_the_job_itself_records_with_record(tmp_path: Path) -> None:
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", SPIN], check=True)
    usage.record(str(tmp_path / "message"), started, 0, include_self=True)
    recorded = parse_message((tmp_path / "message").read_text())
    assert recorded is not None and recorded.exit_code == 0
    assert recorded.cpu_seconds >= 0.3  # the child's CPU time is included


class _Provider:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.stored: list[tuple[str, Path]] = []

    def object(self, query: str):
        provider = self

        class Obj:
            def set_local_path(self, path: Path) -> None:
                self.path = path

            def store_object(self) -> None:
                if provider.fail:
                    raise OSError("AuthorizationPermissionMismatch")
                provider.stored.append((query, self.path))

        return Obj()


def test_saved_logs_go_to_the_default_storage_prefix(tmp_path: Path) -> None:
    log = tmp_path / "sm-a-1.log"
    log.write_text("hello")
    workflow = SimpleNamespace(
        storage_registry=SimpleNamespace(default_storage_provider=_Provider()),
        storage_settings=SimpleNamespace(default_storage_prefix="az://box/"),
    )
    store = RemoteLogStore.for_workflow(workflow, "run1")
    assert store is not None
    warnings: list[str] = []
    query = store.store("sm-a-1", str(log), warnings.append)
    assert query == "az://box/.snakemake/kubernetes-logs/run1/sm-a-1.log"
    assert workflow.storage_registry.default_storage_provider.stored == [(query, log)]
    assert warnings == []

    failing = RemoteLogStore(_Provider(fail=True), "az://box", "run1")
    assert failing.store("sm-a-1", str(log), warnings.append) is None
    assert warnings == [
        "Cannot store the pod log of sm-a-1 at "
        "az://box/.snakemake/kubernetes-logs/run1/sm-a-1.log: AuthorizationPermissionMismatch"
    ]
    no_storage = SimpleNamespace(
        storage_registry=SimpleNamespace(default_storage_provider=None),
        storage_settings=SimpleNamespace(default_storage_prefix=None),
    )
    assert RemoteLogStore.for_workflow(no_storage, "run1") is None


def test_a_job_complete_before_its_pod_is_reported_with_its_usage_and_no_request(
    api,
    make_executor,
):
    executor = make_executor()
    executor.run_job(FakeJob("align", 1, resources={"mem_mb": 300}))
    (name,) = api.names("jobs")
    pod = run_pod(api, name)
    # The Job's Complete can reach the executor's watch before its pod's final status does
    # (two watch streams); written here through the status subresource while the pod runs.
    complete = {"type": "Complete", "status": "True"}
    api.apis["batch"].patch_namespaced_job_status(
        name, api.namespace, {"status": {"conditions": [complete]}}, _preload_content=False
    )
    wait_until(lambda: "Complete" in job_conditions(executor, name), "completion seen")
    api.control.reset_requests()
    # the Job says Complete, its pod still Running in the cache: the job stays active
    assert status_round(executor) == [name]
    assert executor.workflow.scheduler.finished == []
    message = _message(150, 2.0, 4.0)
    state = {"terminated": {"exitCode": 0, "reason": "Completed", "message": message}}
    api.set_pod_status(
        pod, phase="Succeeded", containerStatuses=[{"name": "snakemake", "state": state}]
    )
    wait_until(lambda: pod_is_final(executor.watcher.cache.pod(pod)), "pod seen")
    assert status_round(executor) == []
    assert executor.workflow.scheduler.finished == ["align"]
    assert api.requests("GET") == []  # the usage came with the watch
    (row,) = executor.efficiency.rows
    assert (row.peak_mem_mb, row.requested_mem_mb, row.node) == (150, 300, "node-1")
