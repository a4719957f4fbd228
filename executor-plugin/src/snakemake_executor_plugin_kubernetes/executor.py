"""The Snakemake executor: one Kubernetes Job per Snakemake job, watched, not polled.

Snakemake's callbacks live here; what they lean on lives elsewhere: creation on a pool
(submission.py), the run Secret's lifetime (secrets.py), the pace of status rounds
(pacing.py), judging a job from the watch cache (outcomes.py, refusals.py).
"""

import dataclasses
import threading
import time
from collections.abc import AsyncGenerator
from typing import Any

from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo
from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor
from snakemake_interface_executor_plugins.jobs import JobExecutorInterface
from snakemake_interface_executor_plugins.logging import LoggerExecutorInterface
from snakemake_interface_executor_plugins.settings import CommonSettings, DeploymentMethod
from snakemake_interface_executor_plugins.workflow import WorkflowExecutorInterface

from snakemake_executor_plugin_kubernetes.cleanup import delete_run, run_selector
from snakemake_executor_plugin_kubernetes.client import ApiError, KubeClient, core_path, job_path
from snakemake_executor_plugin_kubernetes.clusterview import ClusterView
from snakemake_executor_plugin_kubernetes.config import RunConfig, build_run_config
from snakemake_executor_plugin_kubernetes.efficiency import (
    EfficiencyReport,
    UsageWait,
    job_row,
    log_files,
    message_file,
    report_base,
    usage_pod,
    wrap_command,
)
from snakemake_executor_plugin_kubernetes.facts import job_facts
from snakemake_executor_plugin_kubernetes.jobargs import ArgumentsChanged, corrected_job_args
from snakemake_executor_plugin_kubernetes.launch import launcher_command
from snakemake_executor_plugin_kubernetes.logs import (
    command_exit_code,
    fetch_log,
    kubectl_hints,
    save_log,
    tail,
)
from snakemake_executor_plugin_kubernetes.memory import MemoryLog, with_memory
from snakemake_executor_plugin_kubernetes.memory_retries import (
    MemoryKills,
    is_memory_kill,
    requested_mem_mb,
)
from snakemake_executor_plugin_kubernetes.naming import new_run_id
from snakemake_executor_plugin_kubernetes.occupancy import OccupancyClock
from snakemake_executor_plugin_kubernetes.outcomes import (
    JobTracker,
    Limits,
    Verdict,
    VerdictState,
    judge,
)
from snakemake_executor_plugin_kubernetes.pacing import RoundPacing
from snakemake_executor_plugin_kubernetes.pending import pending_lines
from snakemake_executor_plugin_kubernetes.permissions import (
    Access,
    PermanentRefusal,
    explain,
    is_permanent,
    permission_error,
)
from snakemake_executor_plugin_kubernetes.placement import Diagnosis
from snakemake_executor_plugin_kubernetes.plugin_deploy import (
    PluginDeployment,
    install_missing_command,
    install_missing_statements,
    storage_plugin_modules,
)
from snakemake_executor_plugin_kubernetes.podsecurity import (
    privilege_refusal,
    read_namespace_labels,
)
from snakemake_executor_plugin_kubernetes.refusals import RefusalScanner, judge_refusal
from snakemake_executor_plugin_kubernetes.remotelogs import RemoteLogStore
from snakemake_executor_plugin_kubernetes.render import WORKDIR, RenderInput, render_job, run_labels
from snakemake_executor_plugin_kubernetes.scheduling import check_rules
from snakemake_executor_plugin_kubernetes.secrets import RunSecret
from snakemake_executor_plugin_kubernetes.settings import ExecutorSettings
from snakemake_executor_plugin_kubernetes.submission import SubmissionPool
from snakemake_executor_plugin_kubernetes.version import plugin_banner
from snakemake_executor_plugin_kubernetes.watcher import RunWatcher, WatchKind

CLEANUP_COMMAND = (
    "python -m snakemake_executor_plugin_kubernetes cleanup --run-id {} --namespace {}"
)


@dataclasses.dataclass(frozen=True)
class QueuedJob:
    job: JobExecutorInterface
    manifest: dict[str, Any]

    @property
    def name(self) -> str:
        return self.manifest["metadata"]["name"]


@dataclasses.dataclass(frozen=True)
class RoundView:
    """What a status round judges every job by, read from the watch cache once."""

    now: float
    pods_by_job: dict[str, list[dict[str, Any]]]
    refused: dict[str, str]  # the latest FailedCreate message of Jobs without a pod
    diagnoses: dict[str, Diagnosis]  # why unschedulable pods wait, by pod name


class Executor(RemoteExecutor):
    def __init__(self, workflow: WorkflowExecutorInterface, logger: LoggerExecutorInterface):
        # RemoteExecutor.__init__ starts the status thread, then calls __post_init__: what
        # that thread reads first is made here, and its rounds and waits leave everything
        # else alone until __post_init__ has made it and set `ready`.
        self.ready = threading.Event()
        self.pacing = RoundPacing()
        super().__init__(workflow, logger)

    def __post_init__(self) -> None:
        # Says which of two plugins of this name Snakemake loaded (see docs/executor/intro.md).
        self.logger.info(plugin_banner())
        self.settings: ExecutorSettings = self.workflow.executor_settings or ExecutorSettings()
        self.config: RunConfig = build_run_config(self.settings)
        # Bad per-rule k8s_* resources stop the run before its first submission.
        check_rules(getattr(self.workflow, "rules", ()), self.config)
        self.namespace = self.settings.namespace
        self.image = self.workflow.remote_execution_settings.container_image
        if not self.image:
            raise WorkflowError("--container-image is required by the kubernetes executor.")
        self.run_id = new_run_id()
        self.client = KubeClient.from_kubeconfig(self.settings.kubeconfig, self.settings.context)
        deployment = self.workflow.deployment_settings.deployment_method
        self.apptainer = DeploymentMethod.APPTAINER in deployment
        self.preemptible_rules = getattr(
            self.workflow.remote_execution_settings, "preemptible_rules", None
        )
        self.limits = Limits(
            disruption_retries=self.settings.disruption_retries,
            unschedulable_timeout=self.settings.unschedulable_timeout,
            image_pull_grace=self.settings.image_pull_grace,
        )
        self.trackers: dict[str, JobTracker] = {}
        self.memory_log = MemoryLog()
        self.cluster_view = ClusterView(
            self.client,
            self.namespace,
            on_forbidden=self.logger.warning,
            no_autoscaler_grace=self.limits.no_autoscaler_grace,
        )
        self.efficiency = None if self.settings.no_efficiency_report else EfficiencyReport()
        self.usage_wait = UsageWait()
        self.remote_logs = (
            None
            if self.settings.no_remote_logs
            else RemoteLogStore.for_workflow(self.workflow, self.run_id)
        )
        self.memory_kills = MemoryKills()
        self.memory_requests: dict[str, int | None] = {}  # by Kubernetes Job name
        self.occupancy = OccupancyClock()
        self.precommand: str | None = None
        self.install_missing: str | None = None  # the pod's storage plugin check, made at first use
        self.install_statements = ""  # the same check, as statements for the launcher
        # None when the identity may not read its namespace: a refusal is then quoted from
        # the Job's FailedCreate event instead of being foreseen.
        self.namespace_labels = read_namespace_labels(self.client, self.namespace)
        self.refusals = RefusalScanner(self.client, self.namespace, self.logger.warning)
        self.secret = RunSecret(
            self.client,
            self.namespace,
            self.run_id,
            self.envvars(),
            run_labels(self.run_id),
            keep_jobs=self.config.keep_jobs,
            warn=self.logger.warning,
        )
        self.watcher = RunWatcher(
            self.client, self.namespace, run_selector(self.run_id), on_error=self.logger.warning
        )
        self.watcher.start()
        self.stopping = threading.Event()
        # The first permanent refusal of a Job creation: it ends the run (see _refused).
        self.creation_refused: PermanentRefusal | None = None
        self._refusal_lock = threading.Lock()
        self.submissions: SubmissionPool[QueuedJob] = SubmissionPool(
            self.settings.submit_workers, self._create_and_report, self._submission_crashed
        )
        self.ready.set()
        self.logger.info(
            f"Kubernetes run id {self.run_id} in namespace {self.namespace}, image {self.image}. "
            "If this run is killed, remove its leftovers with: "
            + CLEANUP_COMMAND.format(self.run_id, self.namespace)
        )

    @property
    def plugin_deployment(self) -> PluginDeployment:
        return self.settings.auto_deploy_storage_plugins

    @property
    def common_settings(self) -> CommonSettings:
        base = self.workflow.executor_plugin.common_settings
        always = self.plugin_deployment is PluginDeployment.ALWAYS
        return dataclasses.replace(base, auto_deploy_default_storage_provider=always)

    def get_job_exec_prefix(self, job: JobExecutorInterface) -> str:
        """With 'auto' storage plugin deployment: install the plugins the image lacks."""
        if self.plugin_deployment is not PluginDeployment.AUTO:
            return ""
        if self.install_missing is None:
            modules = storage_plugin_modules(self.workflow)
            self.install_statements = install_missing_statements(modules)
            self.install_missing = install_missing_command(modules, self.get_python_executable())
        return self.install_missing

    def pod_command(self, job: JobExecutorInterface) -> str:
        """The pod's shell command: Snakemake's, its two Python starts made one by the
        launcher (which then records the job's usage itself), or, with the shell form,
        Snakemake's command under the usage recorder."""
        command = self.format_job_exec(job)
        if self.settings.job_command == "launcher":
            if self.precommand is None:  # the same for every job of the run
                self.precommand = self.workflow.spawned_job_args_factory.precommand(
                    executor_common_settings=self.common_settings
                )
            # The storage plugin check ('auto') runs in the launcher's interpreter too,
            # instead of a Python start of its own before it.
            check = self.get_job_exec_prefix(job)
            launched = launcher_command(
                command.removeprefix(f"{check} && ") if check else command,
                self.precommand,
                message_file(WORKDIR) if self.efficiency else None,
                self.install_statements if check else "",
            )
            if launched is not None:
                return launched
        return wrap_command(command, WORKDIR) if self.efficiency else command

    def get_job_args(self, job: JobExecutorInterface) -> str:
        """Snakemake's arguments for the pod, with two Snakemake 9 flaws corrected (jobargs)."""
        args = super().get_job_args(job)
        try:
            return corrected_job_args(
                args,
                is_group=job.is_group(),
                given_cores=self.cores,
                resources=job.resources,
                unneeded_temp_files=self.workflow.dag.get_unneeded_temp_files(job),
            )
        except ArgumentsChanged as e:
            self.logger.warning(f"Job arguments used as Snakemake gives them: {e}")
            return args

    def render(self, job: JobExecutorInterface) -> dict[str, Any]:
        facts = job_facts(job, self.preemptible_rules)
        # No pod without a memory request: see memory.py for the order of sources.
        facts, choice = with_memory(facts, job, self.workflow, self.settings.default_mem_mb)
        if choice and (message := self.memory_log.message(facts.rule, choice)):
            self.logger.info(message)
        given = RenderInput(
            run_id=self.run_id,
            image=self.image,
            command=self.pod_command(job),
            secret_name=self.secret.name if self.secret.needed else None,
            secret_env=self.secret.env_names,
            apptainer=self.apptainer,
        )
        return render_job(self.config, facts, given)

    def run_job(self, job: JobExecutorInterface) -> None:
        """Render the Job here (rendering reads the DAG, which belongs to this thread) and
        queue its creation; the pool reports the submission, or the job's error."""
        if self.creation_refused is not None:
            self._report_not_submitted(job)
            return
        manifest = self.render(job)
        name = manifest["metadata"]["name"]
        mem_mb = requested_mem_mb(manifest)
        notice = self.memory_kills.retry_notice(
            memory_kill_key(job),
            mem_mb,
            attempt=int(job.attempt),
            attempts=int(getattr(job, "restart_times", 0)) + 1,
        )
        if notice:
            self.logger.info(f"{kind_and_name(job)}: {notice}")
        refusal = privilege_refusal(manifest, self.namespace, self.namespace_labels)
        if refusal is not None:
            # Before anything is submitted: the API server would refuse every pod.
            self.report_job_error(
                SubmittedJobInfo(job=job, external_jobid=name),
                msg=f"{kind_and_name(job)}: {refusal}\n",
            )
            return
        self.memory_requests[name] = mem_mb
        self.submissions.submit(QueuedJob(job, manifest))

    def _create_and_report(self, queued: "QueuedJob") -> None:
        """On a pool thread: create the Job once (409 then GET if an earlier attempt of
        the same request did create it), then report it submitted, or failed."""
        name = queued.name
        if self.creation_refused is not None:  # queued before the refusal ended the run
            self._report_not_submitted(queued.job)
            return
        try:
            created = self._create(queued.manifest)
        except PermanentRefusal as e:
            self.memory_requests.pop(name, None)
            self._refused(queued, e)
            return
        except WorkflowError as e:
            self.memory_requests.pop(name, None)
            self.report_job_error(SubmittedJobInfo(job=queued.job), msg=f"{e}\n")
            return
        self.watcher.cache.put(WatchKind.JOBS, created, only_if_newer=True)
        self.trackers[name] = JobTracker()
        try:
            self.secret.job_created(created)
        except (WorkflowError, ApiError) as e:
            # Every pod of the run needs the Secret: the run cannot go on without it. The
            # Job exists, so it is reported submitted and removed with the run.
            self.workflow.scheduler.executor_error_callback(
                WorkflowError(f"Cannot create the run's Secret: {e}")
            )
        self.logger.debug(f"Submitted Kubernetes Job {name} in namespace {self.namespace}.")
        self.report_job_submission(SubmittedJobInfo(job=queued.job, external_jobid=name))

    def _submission_crashed(self, queued: "QueuedJob", error: BaseException) -> None:
        self.report_job_error(
            SubmittedJobInfo(job=queued.job),
            msg=f"Submitting Kubernetes Job {queued.name} failed unexpectedly: {error!r}\n",
        )

    def _refused(self, queued: QueuedJob, refusal: PermanentRefusal) -> None:
        """A permanent refusal of a creation (401, 403, no such namespace) would refuse
        every Job alike: the first ends the run at once, with its explanation, as an error
        of run_job did before creation moved to the pool. This job, the jobs still queued
        (when the pool takes them, or cancels them at shutdown) and those run_job is given
        later are reported not submitted; none is created."""
        with self._refusal_lock:
            first = self.creation_refused is None
            if first:
                self.creation_refused = refusal
        if first:
            # A new error without the pool thread's traceback: Snakemake prints only its text.
            self.workflow.scheduler.executor_error_callback(WorkflowError(str(refusal)))
        self._report_not_submitted(queued.job)

    def _report_not_submitted(self, job: JobExecutorInterface) -> None:
        self.report_job_error(
            SubmittedJobInfo(job=job),
            msg=f"{kind_and_name(job)} was not submitted: the run ends, as Kubernetes refuses "
            f"to create Jobs in namespace {self.namespace} (the run's error says why).\n",
        )

    def _create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        name = manifest["metadata"]["name"]
        path = job_path(self.namespace)
        access = Access("create", "jobs", "batch")
        try:
            return self.client.request("POST", path, body=manifest, give_up=self.stopping)
        except ApiError as e:
            if e.status == 409:  # an earlier attempt of this request did create it
                access = Access("get", "jobs", "batch")
                try:
                    return self.client.request(
                        "GET", job_path(self.namespace, name), give_up=self.stopping
                    )
                except ApiError as e2:
                    e = e2
            if is_permanent(e, self.namespace):
                raise permission_error(e, access, self.namespace) from None
            raise WorkflowError(
                f"Cannot create Kubernetes Job {name} in namespace {self.namespace}: {e}"
            ) from None

    def _stop_submitting(self) -> None:
        """Cancel the Jobs still queued and wait for the creations already sent (their
        next failure is final), so that every Job that may exist is known before the
        run's objects are deleted."""
        self.stopping.set()
        if self.submissions.pending:
            self.logger.info(
                f"Waiting for {self.submissions.pending} Kubernetes Job creations in flight "
                "or queued to end."
            )
        cancelled = self.submissions.close(cancel_queued=True)
        if cancelled and self.creation_refused is not None:
            for queued in cancelled:  # queued after the refusal, before the pool took them
                self._report_not_submitted(queued.job)
        elif cancelled:
            self.logger.info(f"{len(cancelled)} queued jobs were not submitted: the run is ending.")

    async def check_active_jobs(
        self, active_jobs: list[SubmittedJobInfo]
    ) -> AsyncGenerator[SubmittedJobInfo, None]:
        if not self.ready.is_set():  # before __post_init__ ends: nothing was submitted
            for job_info in active_jobs:
                yield job_info
            return
        self.watcher.cache.endings.clear()  # endings seen from here on wake the next round
        interval = self.workflow.remote_execution_settings.seconds_between_status_checks
        if self.pacing.start_round(interval):
            # At the interval, as without early rounds: they add no PATCH requests.
            self.secret.sync_owners()
        fatal = self.watcher.fatal
        if fatal is not None:
            # A permanent 401/403: no status will ever come, so every job fails now.
            for job_info in active_jobs:
                self._forget(job_info.external_jobid)
                self.report_job_error(job_info, msg=f"{self._describe(job_info)}: {fatal}\n")
            return
        if not self.watcher.cache.synced():
            for job_info in active_jobs:
                yield job_info
            return
        view = self._round_view(active_jobs)
        waiting: list[tuple[str, str, str]] = []
        for job_info in active_jobs:
            name = job_info.external_jobid
            verdict = await self._verdict(name, view)
            for notice in verdict.notices:
                self.logger.warning(f"{self._describe(job_info)}: {notice}")
            if verdict.waiting:
                description = self._describe(job_info)
                waiting.extend((description, pod, why) for pod, why in verdict.waiting)
            if verdict.state == VerdictState.RUNNING or self._awaits_usage(name, verdict, view):
                yield job_info
            elif verdict.state == VerdictState.SUCCEEDED:
                self._on_success(job_info, verdict)
            else:
                self._on_failure(job_info, verdict)
        for line in pending_lines(waiting):
            self.logger.info(line)
        self.pacing.end_round()

    def _round_view(self, active_jobs: list[SubmittedJobInfo]) -> RoundView:
        now = time.monotonic()
        pods_by_job = self.watcher.cache.pods_by_job()
        pods = [pod for job_pods in pods_by_job.values() for pod in job_pods]
        self.occupancy.observe(pods, now)
        refused = self.refusals.refusals(
            j.external_jobid for j in active_jobs if not pods_by_job.get(j.external_jobid)
        )
        return RoundView(now, pods_by_job, refused, self.cluster_view.diagnose(pods, now))

    async def _verdict(self, name: str, view: RoundView) -> Verdict:
        job = self.watcher.cache.job(name)
        if job is None:
            async with self.status_rate_limiter:
                job = self._get_job(name)
        pods = view.pods_by_job.get(name, [])
        tracker = self.trackers.setdefault(name, JobTracker())
        verdict = judge(
            job,
            pods,
            self.limits,
            tracker,
            view.now,
            gone=self.watcher.cache.gone_pods(name),
            last_occupied=self.occupancy.last_occupied,
            diagnoses=view.diagnoses,
        )
        if name in view.refused and verdict.state == VerdictState.RUNNING and not pods:
            refusal = judge_refusal(name, view.refused[name], self.limits, tracker, view.now)
            verdict = refusal or verdict
        return verdict

    def _awaits_usage(self, name: str, verdict: Verdict, view: RoundView) -> bool:
        """A success whose pod's final status, with the usage, is still on its way."""
        return (
            verdict.state == VerdictState.SUCCEEDED
            and self.efficiency is not None
            and self.usage_wait.should_wait(name, view.pods_by_job.get(name, []), view.now)
        )

    async def sleep(self) -> None:
        """Wait between status rounds like the base class, but wake up for shutdown, and
        early when the watch shows a job ending (see pacing.py)."""
        await self.pacing.wait(
            self.next_seconds_between_status_checks,
            ending_seen=lambda: self.ready.is_set() and self.watcher.cache.endings.is_set(),
            waiting=lambda: self.wait,
        )

    def _get_job(self, name: str) -> dict[str, Any] | None:
        """Fallback for a Job missing from the cache (e.g. a relist raced its creation)."""
        try:
            job = self.client.request("GET", job_path(self.namespace, name))
        except ApiError as e:
            if e.status == 404:
                return None
            raise
        self.watcher.cache.put(WatchKind.JOBS, job, only_if_newer=True)
        return job

    def _describe(self, job_info: SubmittedJobInfo) -> str:
        job = job_info.job
        return f"{kind_and_name(job)} (jobid {job.jobid}, Kubernetes Job {job_info.external_jobid})"

    def _end_pod(self, verdict: Verdict) -> None:
        """Delete a pod that a classic sidecar keeps running after the job container ended."""
        if not verdict.end_pod or not verdict.pod:
            return
        try:
            self.client.request("DELETE", core_path(self.namespace, "pods", verdict.pod))
        except ApiError as e:
            if e.status == 404:
                return
            access = Access("delete", "pods")
            detail = explain(e, access, self.namespace) if is_permanent(e, self.namespace) else e
            self.logger.warning(f"Cannot end pod {verdict.pod}: {detail}")

    def _forget(self, name: str, succeeded: bool = False, delete: bool = False) -> None:
        self.refusals.forget(name)
        self.trackers.pop(name, None)
        self.memory_requests.pop(name, None)
        self.watcher.cache.forget_job(name)
        self.secret.job_finished(name, succeeded, delete=delete)

    def _record_usage(self, job_info: SubmittedJobInfo, status: str, pod: str | None) -> None:
        if self.efficiency is None:
            return
        job, name = job_info.job, job_info.external_jobid
        wildcards = getattr(job, "wildcards_dict", None) or {}
        named = self.watcher.cache.pod(pod) if pod else None
        found = usage_pod(named, self.watcher.cache.pods_of(name) if named is None else [])
        row = job_row(job.name, wildcards, job.jobid, status, name, found, attempt=job.attempt)
        self.efficiency.add(row)

    def _store_remote(self, name: str, local_file: Any) -> str | None:
        if self.remote_logs is None:
            return None
        return self.remote_logs.store(name, str(local_file), self.logger.warning)

    def _write_efficiency_report(self) -> None:
        if not self.efficiency or not self.efficiency.rows:
            return
        try:
            tsv, svg, lines = self.efficiency.write(
                report_base(log_files(self.logger), self.run_id)
            )
        except OSError as e:
            self.logger.warning(f"Cannot write the efficiency report: {e}")
            return
        for line in lines:
            self.logger.info(line)
        self.logger.info(
            f"Efficiency report (--kubernetes-no-efficiency-report turns it off): {tsv}, {svg}"
        )

    def _on_success(self, job_info: SubmittedJobInfo, verdict: Verdict) -> None:
        name = job_info.external_jobid
        self._record_usage(job_info, "succeeded", verdict.pod)
        if self.settings.save_all_logs and verdict.pod:
            text = fetch_log(self.client, self.namespace, verdict.pod)
            if text is not None:
                self._store_remote(name, save_log(name, text))
        self._end_pod(verdict)
        self._forget(name, succeeded=True)  # the Secret's lifetime says when the Job goes
        self.report_job_success(job_info)

    def _on_failure(self, job_info: SubmittedJobInfo, verdict: Verdict) -> None:
        name = job_info.external_jobid
        self._record_usage(job_info, "failed", verdict.pod)
        aux_logs: list[str] = []
        stored = None
        lines = ""
        reason = verdict.message
        if verdict.pod:
            text = fetch_log(self.client, self.namespace, verdict.pod)
            if text is not None:
                aux_logs.append(str(save_log(name, text)))
                stored = self._store_remote(name, aux_logs[-1])
                lines = tail(text, self.settings.log_tail_lines)
                code = command_exit_code(text)
                if code is not None:
                    reason += f"; the rule's command exited with exit code {code}"
        self._end_pod(verdict)
        if is_memory_kill(verdict.message):
            job = job_info.job
            self.memory_kills.record(memory_kill_key(job), self.memory_requests.get(name))
        msg = f"{self._describe(job_info)} failed: {reason}\n"
        if lines:
            msg += f"Last {len(lines.splitlines())} log lines:\n{lines}\n"
        if not verdict.delete_job:
            msg += kubectl_hints(self.namespace, name, verdict.pod)
            msg += " (its Job is kept until the run ends)\n"
        if stored:
            msg += f"Its pod log is also stored at {stored}\n"
        # A Job to end is deleted with regard to the Secret it may be the last owner of.
        self._forget(name, delete=verdict.delete_job)
        self.report_job_error(job_info, msg=msg, aux_logs=aux_logs)

    def cancel_jobs(self, active_jobs: list[SubmittedJobInfo]) -> None:
        self._stop_submitting()
        if not active_jobs and not self.submissions.counts.started:
            return
        try:
            counts = delete_run(self.client, self.namespace, self.run_id, kinds=("jobs", "pods"))
            self.logger.info(
                f"Deleted {counts.get('jobs', 0)} Kubernetes Jobs of run {self.run_id}."
            )
        except ApiError as e:
            self.logger.error(
                f"Cannot delete the Jobs of run {self.run_id}: {e}. Remove them with: "
                + CLEANUP_COMMAND.format(self.run_id, self.namespace)
            )

    def shutdown(self) -> None:
        self._stop_submitting()
        super().shutdown()
        self.watcher.stop()
        self._write_efficiency_report()
        # Failed Jobs stay for inspection while the run goes on; the run removes all
        # its objects when it ends (with --kubernetes-keep-jobs only its Secret).
        kinds = ("secrets",) if self.config.keep_jobs else ("jobs", "pods", "secrets")
        try:
            delete_run(self.client, self.namespace, self.run_id, kinds=kinds)
        except ApiError as e:
            self.logger.warning(
                f"Cannot delete the objects of run {self.run_id}: {e}. Remove them with: "
                + CLEANUP_COMMAND.format(self.run_id, self.namespace)
            )
        self.client.close()


def kind_and_name(job: JobExecutorInterface) -> str:
    return f"{'group' if job.is_group() else 'rule'} {job.name}"


def memory_kill_key(job: JobExecutorInterface) -> str:
    return f"{job.name}/{job.jobid}"
