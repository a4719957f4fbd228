"""Executor figures (3) and (4): N jobs of a trivial rule on the local cluster.

Both executors run the same workflow, with our storage plugin as default storage on
Azurite, at the same --seconds-between-status-checks, against the same local cluster
with ample capacity. The cluster's request log gives every API request the Snakemake
process sent (the benchmark's own pod watch is told apart by its user agent).
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snakemake_executor_plugin_benchhold import HELD_JOBS_FILE

from localcluster.observer import ClusterObserver
from pluginbench.cluster_watch import RequestCollector
from pluginbench.procstat import (
    ProcessSample,
    cpu_seconds,
    peak_rss_bytes,
    reaped_children_cpu_seconds,
)
from pluginbench.report import Results, Row
from pluginbench.timed_snakemake import (
    MEMORY_AT_EXECUTOR_FILE,
    REPORT_TIMES_VARIABLE,
    last_plugin_report,
)
from pluginbench.venvs import KUBERNETES_EXECUTOR, ensure

NAMESPACE = "default"
REPO_ROOT = Path(__file__).resolve().parents[2]
SNAKEFILE = """\
N = int(config["jobs"])

localrules:
    all,


rule all:
    input:
        expand("out/{i}.txt", i=range(N)),


rule trivial:
    output:
        "out/{i}.txt",
    shell:
        "echo {wildcards.i} > {output}"
"""
# Every pod is a real Snakemake process on this machine, so the cluster gets as many
# one-pod nodes as there are pod slots: the excess of the N submitted jobs waits Pending
# (as on AKS before the autoscaler adds nodes) while each executor tracks all N as active.
NODE_SLOT = {"cpu": "1", "memory": "8Gi", "ephemeral_storage": "100Gi"}


def cluster_nodes(slots: int) -> list[dict[str, str]]:
    return [{"name": f"bench-node-{i}", **NODE_SLOT} for i in range(slots)]


TIMED_SNAKEMAKE = Path(__file__).resolve().parent / "timed_snakemake.py"


def run_timeout(jobs: int) -> float:
    """An hour, or more for runs to completion of many jobs (0.5.1 takes about 3.4 s
    per trivial job here), so a slow but healthy run is not cut short."""
    return max(3600.0, jobs * 8.0)


@dataclass(frozen=True)
class ExecutorSide:
    key: str
    label: str
    python: Path
    image: str
    extra_args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    executor: str = "kubernetes"  # Snakemake's --executor


def our_side() -> ExecutorSide:
    return ExecutorSide(
        "ours", "ours (kubernetes)", Path(sys.executable), "snakemake-k8s-azblob:latest"
    )


def our_pending_side() -> ExecutorSide:
    """Ours for the *pending* phase: its jobs wait for a node longer than any submission
    of 10,000 jobs takes on a loaded machine, so the phase measures bookkeeping, not the
    unschedulable timeout (600 s by default, which failed the first pods of a submission
    that took 13 minutes at a load average of 25)."""
    side = our_side()
    return ExecutorSide(
        side.key,
        side.label,
        side.python,
        side.image,
        ("--kubernetes-unschedulable-timeout", "7200"),
    )


HOLD_LABEL = "Snakemake alone (benchhold)"


def hold_side() -> ExecutorSide:
    """Snakemake with the null executor (snakemake_executor_plugin_benchhold): it holds
    every job as running and does nothing else, the baseline of the executor's memory."""
    return ExecutorSide("hold", HOLD_LABEL, Path(sys.executable), "", executor="benchhold")


def our_shell_side() -> ExecutorSide:
    """Ours with the pod command Snakemake builds: two `python -m snakemake` starts
    (deploy the sources, then the job), the baseline of the one-start launcher."""
    return ExecutorSide(
        "ours-shell",
        "ours, --kubernetes-job-command shell",
        Path(sys.executable),
        "snakemake-k8s-azblob:latest",
        ("--kubernetes-job-command", "shell"),
    )


def baseline_side(wheel_dir: Path) -> ExecutorSide:
    """snakemake-executor-plugin-kubernetes 0.5.1: one batch/v1 Job per Snakemake job, its
    image from --container-image (the local catalog maps snakemake/snakemake:* to the same
    base image as ours), an emptyDir at /workdir; no persistent volume is needed because
    inputs and outputs go through the default storage provider.

    It declares auto_deploy_default_storage_provider, so every pod first runs
    ``pip install --target .snakemake/pip-deployments snakemake-storage-plugin-azblob``.
    Pods resolve pip only from local folders, so the run passes (with --envvars, which
    this plugin hands to pods through its Secret) a find-links folder holding our
    plugin's wheel, and --no-deps as the image already has its dependencies."""
    return ExecutorSide(
        "baseline",
        "kubernetes 0.5.1",
        KUBERNETES_EXECUTOR.python,
        "snakemake/snakemake:v9.27.1",
        ("--envvars", "PIP_FIND_LINKS", "PIP_NO_DEPS"),
        {"PIP_FIND_LINKS": str(wheel_dir), "PIP_NO_DEPS": "1"},
    )


def build_storage_wheel(wheel_dir: Path) -> Path:
    """Our storage plugin as a wheel, for the baseline's in-pod pip install."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--wheel-dir",
            str(wheel_dir),
            str(REPO_ROOT / "storage-plugin"),
        ],
        check=True,
    )
    return wheel_dir


@dataclass
class RunMeasure:
    jobs: int
    seconds: float
    returncode: int
    records: list[dict[str, Any]]
    started: float
    finished: float
    last_completion: float | None
    last_report: float | None
    failed_pods: int
    pod_seconds: list[float]
    overflowed: bool
    executor: ProcessSample | None = None  # the Snakemake process under test
    server_peak_rss_bytes: int | None = None  # the local cluster's process
    server_cpu_seconds: float | None = None  # the local cluster's own CPU time in the run
    pods_cpu_seconds: float | None = None  # every pod's process tree, summed
    workdir: Path | None = None
    # VmRSS/VmHWM [MiB] of the Snakemake process when it made the executor plugin
    memory_at_executor: dict[str, float] | None = None
    output_tail: str = ""
    derived: dict[str, Any] = field(default_factory=dict)


def is_job_create(record: dict[str, Any]) -> bool:
    return record["method"] == "POST" and record["path"].endswith("/jobs")


def memory_split(run: RunMeasure) -> dict[str, float | None]:
    """The executor process's peak RSS split at the moment the executor plugin was made:
    what Snakemake held before (imports, workflow, DAG) and what the run added after."""
    before = (run.memory_at_executor or {}).get("VmRSS")
    if before is None or run.executor is None:
        return {"rss_before_executor_mib": None, "peak_rss_growth_mib": None}
    peak = run.executor.peak_rss_bytes / 1024**2
    return {"rss_before_executor_mib": before, "peak_rss_growth_mib": round(peak - before, 1)}


def derive(run: RunMeasure, interval: float, active: int | None = None) -> dict[str, Any]:
    """Totals, submission cost, status-round cost and the completion notice delay."""
    records = run.records
    creates = [r for r in records if is_job_create(r)]
    last_create = creates[-1]["time"] if creates else run.started
    first_request = records[0]["time"] if records else run.started
    submit_requests = sum(1 for r in records if r["time"] <= last_create)
    # Steady phase: after the last submission until the last pod was seen finished (or
    # the run was stopped). Its GET requests (reads, lists, watch starts) are what status
    # checking costs.
    steady_end = run.last_completion or run.finished
    steady = [r for r in records if last_create < r["time"] <= steady_end and r["method"] == "GET"]
    status_reads = sum(1 for r in steady if r["path"].endswith("/status"))
    if active and status_reads:
        # An executor that reads each active job's status once per round: rounds done,
        # even a fraction of one (Snakemake's status rate limit makes rounds long).
        rounds = status_reads / active
    else:
        # No per-job reads: nominal rounds, one per interval.
        rounds = max((steady_end - last_create) / interval, 1.0)
    kinds = Counter(f"{r['method']} {shape(r['path'])}" for r in records)
    mib = 1024**2
    return {
        "total_requests": len(records),
        "throttled_429": sum(1 for r in records if r.get("status") == 429),
        "executor_cpu_seconds": run.executor and round(run.executor.cpu_seconds, 1),
        "executor_peak_rss_mib": run.executor and round(run.executor.peak_rss_bytes / mib, 1),
        **memory_split(run),
        "server_cpu_seconds": (
            round(run.server_cpu_seconds, 1) if run.server_cpu_seconds is not None else None
        ),
        "server_peak_rss_mib": (
            round(run.server_peak_rss_bytes / mib, 1) if run.server_peak_rss_bytes else None
        ),
        "pod_cpu_seconds_per_job": (
            round(run.pods_cpu_seconds / run.jobs, 2) if run.pods_cpu_seconds else None
        ),
        "startup_seconds": round(first_request - run.started, 2),
        "submission_seconds": round(last_create - first_request, 2),
        "submission_requests": submit_requests,
        "job_creates": len(creates),
        "steady_seconds": round(steady_end - last_create, 2),
        "status_rounds": round(rounds, 2),
        "requests_per_round": round(len(steady) / rounds, 2),
        "completion_report_s": (
            round(run.last_report - run.last_completion, 2)
            if run.last_completion and run.last_report
            else None
        ),
        "completion_notice_s": (
            round(run.finished - run.last_completion, 2) if run.last_completion else None
        ),
        "pod_running_seconds_median": (
            round(statistics.median(run.pod_seconds), 2) if run.pod_seconds else None
        ),
        "by_kind": dict(kinds.most_common()),
    }


def shape(path: str) -> str:
    """/apis/batch/v1/namespaces/default/jobs/NAME/status -> .../jobs/{name}/status"""
    parts = path.split("/")
    for index, part in enumerate(parts[:-1]):
        if part in ("jobs", "pods", "secrets", "configmaps", "events") and index > 3:
            parts[index + 1] = "{name}"
    return "/".join(parts)


@dataclass
class ExecutorBench:
    cluster: Any
    azurite: Any
    container: str
    scratch: Path
    interval: float
    log: Any
    # Snakemake's --max-jobs-per-timespan for both sides (its default, 100/1s, alone
    # makes 1,000 submissions last 10 s); None leaves Snakemake's default.
    job_rate: str | None = None
    # More of Snakemake's options for both sides in the submission phases (e.g.
    # --scheduler greedy), after the benchmark's own.
    snakemake_args: tuple[str, ...] = ()

    @staticmethod
    def _wait(
        process,
        submitted: Callable[[], int],
        jobs: int,
        observe_after_submit: float | None,
        sample: ProcessSample,
    ) -> int:
        deadline = time.monotonic() + run_timeout(jobs)
        all_created_at: float | None = None
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
            sample.take()
            if observe_after_submit is None:
                continue
            if all_created_at is None:
                if submitted() >= jobs:
                    all_created_at = time.monotonic()
            elif time.monotonic() - all_created_at >= observe_after_submit:
                sample.take()
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                return 0
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        return process.wait()

    def environment(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("SNAKEMAKE_", "AZURE_", "AZ_BLOB_", "AZURITE_"))
        }
        env["KUBECONFIG"] = str(self.cluster.kubeconfig)
        env["SNAKEMAKE_STORAGE_AZBLOB_ACCOUNT_KEY"] = self.azurite.account_key
        return env

    def command(self, side: ExecutorSide, jobs: int, prefix: str) -> list[str]:
        cluster_args = (
            ("--kubernetes-namespace", NAMESPACE, "--container-image", side.image)
            if side.executor == "kubernetes"
            else ()
        )
        return [
            str(side.python),
            str(TIMED_SNAKEMAKE),
            "--executor",
            side.executor,
            *cluster_args,
            "--default-storage-provider",
            "azblob",
            "--default-storage-prefix",
            f"az://{self.container}/{prefix}",
            "--storage-azblob-endpoint-url",
            self.azurite.blob_endpoint,
            "--jobs",
            str(jobs),
            "--seconds-between-status-checks",
            str(self.interval),
            *(("--max-jobs-per-timespan", self.job_rate) if self.job_rate else ()),
            *self.snakemake_args,
            *side.extra_args,
            "--config",
            f"jobs={jobs}",
        ]

    def run(self, side: ExecutorSide, jobs: int, observe_after_submit: float | None = None):
        """Run the workflow to its end or, with ``observe_after_submit``, until every job
        was created plus that many seconds of status checking, then kill it."""
        workdir = self.scratch / f"{side.key}-{jobs}-{uuid.uuid4().hex[:6]}"
        workdir.mkdir(parents=True)
        (workdir / "Snakefile").write_text(SNAKEFILE)
        observer = ClusterObserver(
            self.cluster.kubeconfig, NAMESPACE, kinds=("pods",), capture_logs=False
        ).start()
        collector = RequestCollector(self.cluster.control).start()
        log_path = workdir / "snakemake.log"
        report_times = workdir / "report-times.txt"
        server_pid = self.cluster.process.pid
        pods_cpu_before = reaped_children_cpu_seconds(server_pid)
        server_cpu_before = cpu_seconds(server_pid)
        started = time.time()
        with log_path.open("w") as log_file:
            process = subprocess.Popen(
                self.command(side, jobs, workdir.name),
                cwd=workdir,
                env=self.environment() | side.env | {REPORT_TIMES_VARIABLE: str(report_times)},
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            sample = ProcessSample(process.pid)
            if side.executor == "kubernetes":

                def submitted() -> int:
                    # The collector's own thread reads the request log every few seconds
                    # (and rides out a busy cluster's timeouts): each read returns the
                    # whole log, so reading it here every tick would load the API server.
                    return sum(1 for r in list(collector.records) if is_job_create(r))
            else:

                def submitted() -> int:
                    return held_jobs(workdir)

            try:
                returncode = self._wait(process, submitted, jobs, observe_after_submit, sample)
            finally:  # also when the benchmark itself is stopped: no Snakemake left running
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
        finished = time.time()
        time.sleep(1)  # let late watch events and log records land
        pods_cpu = reaped_children_cpu_seconds(server_pid) - pods_cpu_before
        server_peak_rss = peak_rss_bytes(server_pid)
        server_cpu = cpu_seconds(server_pid) - server_cpu_before
        records = [r for r in collector.stop() if r["time"] >= started]
        pods = observer.stop()
        # Kept beside the run's log (with --keep-scratch) to study its requests afterwards.
        with (workdir / "requests.jsonl").open("w") as kept:
            kept.writelines(json.dumps(r) + "\n" for r in records)
        output = log_path.read_text(errors="replace")
        return RunMeasure(
            jobs=jobs,
            seconds=round(finished - started, 2),
            returncode=returncode,
            records=records,
            started=started,
            finished=finished,
            last_completion=pods.last_completion(),
            last_report=last_report_time(report_times),
            failed_pods=len(pods.failed),
            pod_seconds=pods.run_seconds(),
            overflowed=collector.overflowed,
            executor=sample,
            server_peak_rss_bytes=server_peak_rss,
            server_cpu_seconds=server_cpu,
            pods_cpu_seconds=pods_cpu,
            workdir=workdir,
            memory_at_executor=read_json(workdir / MEMORY_AT_EXECUTOR_FILE),
            output_tail=output[-3000:],
        )


def held_jobs(workdir: Path) -> int:
    """How many jobs the null executor held at its last status round."""
    try:
        return int((workdir / HELD_JOBS_FILE).read_text() or 0)
    except (OSError, ValueError):
        return 0


def read_json(path: Path) -> Any:
    """A JSON file the measured process wrote, or None if it wrote none (or was killed
    before its first complete write)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def last_report_time(report_times: Path) -> float | None:
    """When the executor under test last reported a job's success (see timed_snakemake.py)."""
    if not report_times.exists():
        return None
    return last_plugin_report(report_times.read_text())


def first_pod_log(workdir: Path | None) -> str:
    """The first saved pod log of a failed run (both executors save them under .snakemake)."""
    if workdir is None:
        return ""
    logs = sorted(p for p in (workdir / ".snakemake").rglob("*.log") if "kubernetes" in str(p))
    if not logs:
        return ""
    return f"\nfirst pod log ({logs[0].name}):\n" + logs[0].read_text(errors="replace")[-2000:]


def measured(
    bench: ExecutorBench,
    side: ExecutorSide,
    jobs: int,
    problems: list[str],
    observe_after_submit: float | None = None,
) -> RunMeasure | None:
    phase = "submission and status rounds" if observe_after_submit else "run to completion"
    bench.log(f"executor: {side.label}, {jobs} jobs, {phase}")
    run = bench.run(side, jobs, observe_after_submit)
    if run.returncode != 0:
        problems.append(
            f"{side.label} with {jobs} jobs exited {run.returncode}; last output:\n"
            + run.output_tail[-1500:]
            + first_pod_log(run.workdir)
        )
        return None
    # In the scale phase all jobs stay active, so per-job status reads count rounds.
    run.derived = derive(run, bench.interval, jobs if observe_after_submit else None)
    creates_jobs = side.executor == "kubernetes"
    if observe_after_submit and creates_jobs and run.derived["job_creates"] < jobs:
        problems.append(f"{side.label}: only {run.derived['job_creates']} of {jobs} jobs created")
        return None
    if run.overflowed:
        problems.append(f"{side.label}: the cluster's request log overflowed; counts are minima")
    return run


# Phase A ("scale"): all N jobs are submitted to a cluster whose only node is cordoned
# (the taint `kubectl cordon` sets), so all N stay active (Pending) while the executor
# checks their status for a few rounds; then the run is killed. This measures submission
# and the cost of a status round at N active jobs without running N real processes on this
# machine. The node could hold the pods once uncordoned, so ours waits for it (up to
# --kubernetes-unschedulable-timeout) instead of failing the jobs as no node could ever
# hold them, which it does on a node too small for them after a minute.
# Phase B ("complete"): a smaller workflow runs to the end on a few pod slots, for the
# totals, the completion notice delay and the wall time.
CORDON_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
NO_ROOM_NODE = [{"name": "cordoned", **NODE_SLOT, "taints": [CORDON_TAINT]}]
OBSERVED_ROUNDS = 3
MIN_OBSERVATION_S = 30


def start_cluster_with(scratch: Path, name: str, nodes: list[dict[str, str]]):
    from localcluster.launcher import start_cluster

    plugins = [REPO_ROOT / "storage-plugin", REPO_ROOT / "executor-plugin"]
    return start_cluster(scratch / name, nodes=nodes, plugin_sources=plugins)


def run_executor(args: Any, scratch: Path, results: Results, log) -> None:
    from localcluster.azurite import start_azurite

    problems: list[str] = []
    azurite = start_azurite(scratch / "exec-azurite")
    container = f"exec-{uuid.uuid4().hex[:12]}"
    azurite.service_client().create_container(container)
    details: dict[str, Any] = {
        "jobs_submitted": args.jobs,
        "jobs_completed": args.complete_jobs,
        "status_interval_s": args.status_interval,
        "pod_slots": args.pod_slots,
    }
    results.details["executor"] = details
    sides = [our_side()]
    if not args.skip_baselines:
        ensure(KUBERNETES_EXECUTOR, log)
        sides.append(baseline_side(build_storage_wheel(scratch / "wheels")))
    scale: dict[str, RunMeasure | None] = {}
    pending: dict[str, RunMeasure | None] = {}
    complete: dict[str, RunMeasure | None] = {}
    window = args.observe_seconds or max(OBSERVED_ROUNDS * args.status_interval, MIN_OBSERVATION_S)
    distant: dict[str, RunMeasure | None] = {}  # scale, over a modelled round trip
    scale_runs = [(scale, side, args.jobs, 0) for side in sides]
    if args.api_latency_ms:
        scale_runs += [(distant, side, args.jobs, args.api_latency_ms) for side in sides]
    if args.pending_jobs:
        # 0.5.1 is not run at this size: it would take about 7 minutes to submit, and a
        # single status round over 10,000 jobs would last over half an hour (10 reads/s).
        scale_runs.append((pending, our_pending_side(), args.pending_jobs, 0))
        scale_runs.append((pending, hold_side(), args.pending_jobs, 0))
    try:
        for runs, side, jobs, latency_ms in scale_runs:
            name = f"cluster-{jobs}-{side.key}" + (f"-{latency_ms}ms" if latency_ms else "")
            cluster = start_cluster_with(scratch, name, NO_ROOM_NODE)
            if latency_ms:
                # Every request of the run, the executor's and the cluster's own clients'.
                cluster.control.inject_fault("delay", count=10**9, delay_ms=latency_ms)
            try:
                bench = ExecutorBench(
                    cluster,
                    azurite,
                    container,
                    scratch / "exec",
                    args.status_interval,
                    log,
                    job_rate=args.job_rate,
                    snakemake_args=tuple(args.snakemake_arg),
                )
                runs[side.key] = measured(bench, side, jobs, problems, window)
            finally:
                cluster.stop()
        if args.complete_jobs:
            run_to_completion(args, scratch, azurite, container, log, sides, complete, problems)
    finally:
        results.problems += problems
        azurite.stop()
    details["pending_jobs"] = args.pending_jobs
    details["job_rate"] = args.job_rate
    details["api_latency_ms"] = args.api_latency_ms
    phases = (("scale", scale), ("scale_distant", distant), ("pending", pending))
    for phase, runs in (*phases, ("complete", complete)):
        details[phase] = {
            key: None
            if run is None
            else {"seconds": run.seconds, "failed_pods": run.failed_pods, **run.derived}
            for key, run in runs.items()
        }
    ours_scale, ours_complete = scale.get("ours"), complete.get("ours")
    ours_pending = pending.get("ours")
    if ours_scale:
        # A list, not a mapping by job count: both phases may run the same number of jobs.
        details["requests_per_round_by_active_jobs"] = [
            {
                "phase": phase,
                "active_jobs": active,
                "requests_per_round": run.derived["requests_per_round"],
            }
            for phase, active, run in (
                ("complete", args.complete_jobs, ours_complete),
                ("scale", args.jobs, ours_scale),
                ("pending", args.pending_jobs, ours_pending),
            )
            if run is not None
        ]
    add_rows(results, scale, complete, args.jobs, args.complete_jobs)
    add_scale_rows(results, scale, pending, complete, args)
    add_distant_rows(results, distant, args)


def add_distant_rows(results: Results, distant: dict[str, RunMeasure | None], args: Any) -> None:
    if not args.api_latency_ms:
        return
    for name, figure, unit in (*SUBMISSION_FIGURES, EXECUTOR_CPU_FIGURE):
        results.add(
            Row(
                f"submit {args.jobs} jobs, {args.api_latency_ms} ms API round trip: {figure}",
                unit,
                *(
                    None if run is None else run.derived.get(name)
                    for run in (distant.get("ours"), distant.get("baseline"))
                ),
                "kubernetes 0.5.1",
            )
        )


def run_to_completion(args, scratch, azurite, container, log, sides, complete, problems) -> None:
    cluster = start_cluster_with(scratch, "cluster-run", cluster_nodes(args.pod_slots))
    try:
        bench = ExecutorBench(
            cluster, azurite, container, scratch / "exec", args.status_interval, log
        )
        # Builds the job image once (and warms caches) so no side pays for it.
        if not args.skip_warmup and measured(bench, our_side(), 2, problems) is None:
            problems.append("warm-up run of our executor failed")
        for side in [*sides, our_shell_side()]:
            complete[side.key] = measured(bench, side, args.complete_jobs, problems)
    finally:
        cluster.stop()


SUBMISSION_FIGURES = (
    ("submission_seconds", "submission time", "s"),
    ("submission_requests", "submission API requests", "requests"),
)
# (derived name, figure, unit) of what a run costs the executor and the API server.
EXECUTOR_CPU_FIGURE = ("executor_cpu_seconds", "executor CPU time", "s")
COST_FIGURES = (
    ("throttled_429", "429 responses", "responses"),
    ("executor_peak_rss_mib", "executor peak RSS", "MiB"),
    ("rss_before_executor_mib", "executor RSS when the executor plugin is made", "MiB"),
    ("peak_rss_growth_mib", "executor peak RSS growth after it is made", "MiB"),
    EXECUTOR_CPU_FIGURE,
    ("server_peak_rss_mib", "API server peak RSS", "MiB"),
    ("server_cpu_seconds", "API server CPU time", "s"),
)


EXECUTOR_PROCESS_FIGURES = (
    "executor_peak_rss_mib",
    "rss_before_executor_mib",
    "peak_rss_growth_mib",
    "executor_cpu_seconds",
)


def add_scale_rows(
    results: Results,
    scale: dict[str, RunMeasure | None],
    pending: dict[str, RunMeasure | None],
    complete: dict[str, RunMeasure | None],
    args: Any,
) -> None:
    """Issue 20's figures: the executor's own cost at size, and CPU per trivial pod."""

    def pick(run: RunMeasure | None, name: str):
        return None if run is None else run.derived.get(name)

    baseline = "kubernetes 0.5.1"
    for name, figure, unit in COST_FIGURES:
        results.add(
            Row(
                f"submit {args.jobs} jobs: {figure}",
                unit,
                pick(scale.get("ours"), name),
                pick(scale.get("baseline"), name),
                baseline,
            )
        )
    ours, hold = pending.get("ours"), pending.get("hold")
    if args.pending_jobs:
        note = "0.5.1 not run at this size (see docs/performance.md)"
        for name, figure, unit in (
            *SUBMISSION_FIGURES,
            ("requests_per_round", "API requests per status round", "requests"),
            *COST_FIGURES,
        ):
            # The executor process's own figures are set against Snakemake holding the
            # same jobs with no executor work; the cluster's have no baseline here.
            alone = name in EXECUTOR_PROCESS_FIGURES
            results.add(
                Row(
                    f"{args.pending_jobs} jobs Pending: {figure}",
                    unit,
                    pick(ours, name),
                    pick(hold, name) if alone else None,
                    HOLD_LABEL if alone else baseline,
                    "" if alone else note,
                )
            )
    results.add(
        Row(
            f"{args.complete_jobs} trivial jobs: CPU time per pod (node agent)",
            "CPU-s",
            pick(complete.get("ours"), "pod_cpu_seconds_per_job"),
            pick(complete.get("ours-shell"), "pod_cpu_seconds_per_job"),
            "ours, job-command shell (two Python starts)",
        )
    )
    results.add(
        Row(
            f"{args.complete_jobs} trivial jobs: CPU time per pod (node agent)",
            "CPU-s",
            pick(complete.get("ours"), "pod_cpu_seconds_per_job"),
            pick(complete.get("baseline"), "pod_cpu_seconds_per_job"),
            baseline,
        )
    )


def add_rows(
    results: Results,
    scale: dict[str, RunMeasure | None],
    complete: dict[str, RunMeasure | None],
    jobs: int,
    complete_jobs: int,
) -> None:
    def pick(run: RunMeasure | None, name: str):
        return None if run is None else run.derived.get(name)

    rows = [
        (scale, f"submit {jobs} jobs: time", "s", "submission_seconds"),
        (scale, f"submit {jobs} jobs: API requests", "requests", "submission_requests"),
        (
            scale,
            f"{jobs} jobs active: API requests per status round",
            "requests",
            "requests_per_round",
        ),
        (
            complete,
            f"{complete_jobs} jobs run to completion: total API requests",
            "requests",
            "total_requests",
        ),
        (
            complete,
            f"{complete_jobs} jobs run to completion: API requests per status round",
            "requests",
            "requests_per_round",
        ),
        (
            complete,
            f"{complete_jobs} jobs run to completion: last pod completion to its report",
            "s",
            "completion_report_s",
        ),
        (
            complete,
            f"{complete_jobs} jobs run to completion: last pod completion to exit",
            "s",
            "completion_notice_s",
        ),
    ]
    for runs, figure, unit, name in rows:
        results.add(
            Row(
                figure,
                unit,
                pick(runs.get("ours"), name),
                pick(runs.get("baseline"), name),
                "kubernetes 0.5.1",
            )
        )
    ours, base = complete.get("ours"), complete.get("baseline")
    results.add(
        Row(
            f"{complete_jobs} jobs run to completion: wall time",
            "s",
            ours and ours.seconds,
            base and base.seconds,
            "kubernetes 0.5.1",
        )
    )
