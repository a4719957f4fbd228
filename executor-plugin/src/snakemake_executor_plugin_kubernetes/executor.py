"""The Snakemake executor: one Kubernetes Job per Snakemake job, watched, not polled."""

import asyncio
import dataclasses
import time
from collections.abc import AsyncGenerator
from typing import Any

from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo
from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor
from snakemake_interface_executor_plugins.jobs import JobExecutorInterface
from snakemake_interface_executor_plugins.settings import CommonSettings, DeploymentMethod

from snakemake_executor_plugin_kubernetes.cleanup import delete_job, delete_run, run_selector
from snakemake_executor_plugin_kubernetes.client import ApiError, KubeClient, core_path, job_path
from snakemake_executor_plugin_kubernetes.clusterview import ClusterView
from snakemake_executor_plugin_kubernetes.config import RunConfig, build_run_config
from snakemake_executor_plugin_kubernetes.efficiency import (
    EfficiencyReport,
    UsageWait,
    job_row,
    log_files,
    report_base,
    usage_pod,
    wrap_command,
)
from snakemake_executor_plugin_kubernetes.facts import job_facts
from snakemake_executor_plugin_kubernetes.jobargs import ArgumentsChanged, corrected_job_args
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
    mem_mb_of,
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
from snakemake_executor_plugin_kubernetes.permissions import (
    Access,
    explain,
    is_permanent,
    permission_error,
)
from snakemake_executor_plugin_kubernetes.plugin_deploy import (
    PluginDeployment,
    install_missing_command,
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
from snakemake_executor_plugin_kubernetes.version import plugin_banner
from snakemake_executor_plugin_kubernetes.watcher import RunWatcher

CLEANUP_COMMAND = (
    "python -m snakemake_executor_plugin_kubernetes cleanup --run-id {} --namespace {}"
)
# A watched job ending starts the next status round early, but never sooner than this
# after the last one, nor sooner than EARLY_ROUND_COST_FACTOR times that round's own
# duration: rounds read only the cache, yet with thousands of active jobs each is a
# pass over all of them, and this keeps that work under a fifth of one core.
EARLY_ROUND_MIN_GAP = 0.5
EARLY_ROUND_COST_FACTOR = 4
SLEEP_TICK = 0.1


class Executor(RemoteExecutor):
    # (kubeconfig, context) -> KubeClient; a subclass may bind another client.
    client_factory = staticmethod(KubeClient.from_kubeconfig)
    # Class-level, because the base class starts the status thread (which reads them)
    # before __post_init__ runs.
    last_round_seconds = 0.0
    woken_early = False
    owners_synced_at = 0.0
    install_missing: str | None = None  # the pod's storage plugin check, made at first use

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
        self.client: KubeClient = self.client_factory(
            self.settings.kubeconfig, self.settings.context
        )
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
        self.occupancy = OccupancyClock()
        # Succeeded Jobs kept (not yet deleted) because the Secret would lose its last owner.
        self.retained: set[str] = set()
        # None when the identity may not read its namespace: a refusal is then quoted from
        # the Job's FailedCreate event instead of being foreseen.
        self.namespace_labels = read_namespace_labels(self.client, self.namespace)
        self.refusals = RefusalScanner(self.client, self.namespace, self.logger.warning)
        self.secret = RunSecret(
            self.client, self.namespace, self.run_id, self.envvars(), run_labels(self.run_id)
        )
        self.watcher = RunWatcher(
            self.client, self.namespace, run_selector(self.run_id), on_error=self.logger.warning
        )
        self.watcher.start()
        self.ready = True
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
            self.install_missing = install_missing_command(modules, self.get_python_executable())
        return self.install_missing

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
        command = self.format_job_exec(job)
        given = RenderInput(
            run_id=self.run_id,
            image=self.image,
            command=wrap_command(command, WORKDIR) if self.efficiency else command,
            secret_name=self.secret.name if self.secret.needed else None,
            secret_env=self.secret.env_names,
            apptainer=self.apptainer,
        )
        return render_job(self.config, facts, given)

    def run_job(self, job: JobExecutorInterface) -> None:
        manifest = self.render(job)
        notice = self.memory_kills.retry_notice(
            memory_kill_key(job),
            mem_mb_of(job.resources),
            attempt=int(job.attempt),
            attempts=int(getattr(job, "restart_times", 0)) + 1,
        )
        if notice:
            self.logger.info(f"{kind_and_name(job)}: {notice}")
        name = manifest["metadata"]["name"]
        refusal = privilege_refusal(manifest, self.namespace, self.namespace_labels)
        if refusal is not None:
            # Before anything is submitted: the API server would refuse every pod.
            self.report_job_error(
                SubmittedJobInfo(job=job, external_jobid=name),
                msg=f"{'group' if job.is_group() else 'rule'} {job.name}: {refusal}\n",
            )
            return
        created = self._create(manifest)
        self.watcher.cache.put("jobs", created, only_if_newer=True)
        self.secret.add_owner(created)
        self.secret.ensure_created()
        self.trackers[name] = JobTracker()
        self.logger.debug(f"Submitted Kubernetes Job {name} in namespace {self.namespace}.")
        self.report_job_submission(SubmittedJobInfo(job=job, external_jobid=name))

    def _create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        name = manifest["metadata"]["name"]
        try:
            return self.client.request("POST", job_path(self.namespace), body=manifest)
        except ApiError as e:
            if e.status == 409:  # an earlier attempt of this request did create it
                try:
                    return self.client.request("GET", job_path(self.namespace, name))
                except ApiError as e2:
                    e = e2
            if is_permanent(e, self.namespace):
                access = Access("create", "jobs", "batch")
                raise permission_error(e, access, self.namespace) from None
            raise WorkflowError(
                f"Cannot create Kubernetes Job {name} in namespace {self.namespace}: {e}"
            ) from None

    async def check_active_jobs(
        self, active_jobs: list[SubmittedJobInfo]
    ) -> AsyncGenerator[SubmittedJobInfo, None]:
        # The base class starts the status thread before __post_init__ has run.
        if not getattr(self, "ready", False):
            for job_info in active_jobs:
                yield job_info
            return
        started = time.monotonic()
        self.watcher.cache.endings.clear()  # endings seen from here on wake the next round
        # Early rounds report endings; the Secret's owners are brought up to date at the
        # interval, as without them, so early rounds add no PATCH requests.
        interval = self.workflow.remote_execution_settings.seconds_between_status_checks
        if not self.woken_early or started - self.owners_synced_at >= interval:
            self._sync_secret_owners()
            self.owners_synced_at = started
        self.woken_early = False
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
        now = time.monotonic()
        pods_by_job = self.watcher.cache.pods_by_job()
        self.occupancy.observe((pod for pods in pods_by_job.values() for pod in pods), now)
        refused = self.refusals.refusals(
            j.external_jobid for j in active_jobs if not pods_by_job.get(j.external_jobid)
        )
        diagnoses = self.cluster_view.diagnose(
            [pod for pods in pods_by_job.values() for pod in pods], now
        )
        for job_info in active_jobs:
            name = job_info.external_jobid
            job = self.watcher.cache.job(name)
            if job is None:
                async with self.status_rate_limiter:
                    job = self._get_job(name)
            tracker = self.trackers.setdefault(name, JobTracker())
            verdict = judge(
                job,
                pods_by_job.get(name, []),
                self.limits,
                tracker,
                now,
                gone=self.watcher.cache.gone_pods(name),
                last_occupied=self.occupancy.last_occupied,
                diagnoses=diagnoses,
            )
            if (
                name in refused
                and verdict.state == VerdictState.RUNNING
                and not pods_by_job.get(name)
            ):
                verdict = judge_refusal(name, refused[name], self.limits, tracker, now) or verdict
            for notice in verdict.notices:
                self.logger.warning(f"{self._describe(job_info)}: {notice}")
            for line in verdict.progress:
                self.logger.info(f"{self._describe(job_info)}: {line}")
            if verdict.state == VerdictState.RUNNING:
                yield job_info
            elif (
                verdict.state == VerdictState.SUCCEEDED
                and self.efficiency is not None
                and self.usage_wait.should_wait(name, pods_by_job.get(name, []), now)
            ):
                yield job_info  # its pod's final status, with the usage, is on its way
            elif verdict.state == VerdictState.SUCCEEDED:
                self._on_success(job_info, verdict)
            else:
                self._on_failure(job_info, verdict)
        self.last_round_seconds = time.monotonic() - started

    def _sync_secret_owners(self) -> None:
        try:
            self.secret.sync_owners()
        except ApiError as e:
            permanent = is_permanent(e, self.namespace)
            detail = explain(e, Access("patch", "secrets"), self.namespace) if permanent else e
            self.logger.warning(f"Cannot update owners of Secret {self.secret.name}: {detail}")
        self._release_retained()

    async def sleep(self) -> None:
        """Wait between status rounds like the base class, but wake up for shutdown, and
        early when the watch shows a job ending: a finished job is reported within a
        fraction of a second, whatever --seconds-between-status-checks says."""
        now = time.monotonic()
        deadline = now + self.next_seconds_between_status_checks
        earliest = now + max(EARLY_ROUND_MIN_GAP, EARLY_ROUND_COST_FACTOR * self.last_round_seconds)
        while self.wait and (remaining := deadline - now) > 0:
            # Read each tick: the first waits begin before __post_init__ has made the watcher.
            if (
                getattr(self, "ready", False)
                and self.watcher.cache.endings.is_set()
                and now >= earliest
            ):
                self.woken_early = True
                return
            await asyncio.sleep(min(remaining, SLEEP_TICK))
            now = time.monotonic()

    def _get_job(self, name: str) -> dict[str, Any] | None:
        """Fallback for a Job missing from the cache (e.g. a relist raced its creation)."""
        try:
            job = self.client.request("GET", job_path(self.namespace, name))
        except ApiError as e:
            if e.status == 404:
                return None
            raise
        self.watcher.cache.put("jobs", job, only_if_newer=True)
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

    def _forget(self, name: str) -> None:
        self.refusals.forget(name)
        self.trackers.pop(name, None)
        self.watcher.cache.forget_job(name)
        self.secret.drop_owner(name)

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
        self.refusals.forget(name)
        self.trackers.pop(name, None)
        self.watcher.cache.forget_job(name)
        if self.config.keep_jobs:
            self.secret.drop_owner(name)
        elif self.secret.needed and not self.secret.has_live_owner(self.retained | {name}):
            self.retained.add(name)  # deleted once a newer Job owns the Secret
        else:
            self._delete_succeeded(name)
        self.report_job_success(job_info)

    def _delete_succeeded(self, name: str) -> None:
        try:
            delete_job(self.client, self.namespace, name)
        except ApiError as e:
            self.logger.warning(f"Cannot delete finished Job {name}: {e}")
        self.secret.drop_owner(name)

    def _release_retained(self) -> None:
        if self.retained and self.secret.has_live_owner(self.retained):
            for name in sorted(self.retained):
                self._delete_succeeded(name)
            self.retained.clear()

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
        if verdict.delete_job:
            try:
                delete_job(self.client, self.namespace, name)
            except ApiError as e:
                self.logger.warning(f"Cannot delete Job {name}: {e}")
        if is_memory_kill(verdict.message):
            job = job_info.job
            self.memory_kills.record(memory_kill_key(job), mem_mb_of(job.resources))
        msg = f"{self._describe(job_info)} failed: {reason}\n"
        if lines:
            msg += f"Last {len(lines.splitlines())} log lines:\n{lines}\n"
        if not verdict.delete_job:
            msg += kubectl_hints(self.namespace, name, verdict.pod)
            msg += " (its Job is kept until the run ends)\n"
        if stored:
            msg += f"Its pod log is also stored at {stored}\n"
        self._forget(name)
        self.report_job_error(job_info, msg=msg, aux_logs=aux_logs)

    def cancel_jobs(self, active_jobs: list[SubmittedJobInfo]) -> None:
        if not active_jobs:
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
