"""The Snakemake executor: one Kubernetes Job per Snakemake job, watched, not polled."""

import asyncio
import dataclasses
import threading
import time
from collections.abc import AsyncGenerator
from typing import Any

from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo
from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor
from snakemake_interface_executor_plugins.jobs import JobExecutorInterface
from snakemake_interface_executor_plugins.settings import CommonSettings, DeploymentMethod

from snakemake_executor_plugin_kubernetes.cleanup import delete_job, delete_run, run_selector
from snakemake_executor_plugin_kubernetes.client import ApiError, KubeClient, job_path
from snakemake_executor_plugin_kubernetes.config import RunConfig, build_run_config
from snakemake_executor_plugin_kubernetes.facts import job_facts
from snakemake_executor_plugin_kubernetes.launch import launcher_command
from snakemake_executor_plugin_kubernetes.logs import (
    command_exit_code,
    fetch_log,
    kubectl_hints,
    save_log,
    tail,
)
from snakemake_executor_plugin_kubernetes.naming import new_run_id
from snakemake_executor_plugin_kubernetes.occupancy import OccupancyClock
from snakemake_executor_plugin_kubernetes.outcomes import JobTracker, Limits, Verdict, judge
from snakemake_executor_plugin_kubernetes.render import RenderInput, render_job, run_labels
from snakemake_executor_plugin_kubernetes.secrets import RunSecret
from snakemake_executor_plugin_kubernetes.settings import ExecutorSettings
from snakemake_executor_plugin_kubernetes.submission import SubmissionPool
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


@dataclasses.dataclass(frozen=True)
class QueuedJob:
    job: JobExecutorInterface
    manifest: dict[str, Any]

    @property
    def name(self) -> str:
        return self.manifest["metadata"]["name"]


class Executor(RemoteExecutor):
    # (kubeconfig, context) -> KubeClient; a subclass may bind another client.
    client_factory = staticmethod(KubeClient.from_kubeconfig)
    # Class-level, because the base class starts the status thread (which reads them)
    # before __post_init__ runs.
    last_round_seconds = 0.0
    woken_early = False
    owners_synced_at = 0.0
    precommand: str | None = None

    def __post_init__(self) -> None:
        self.settings: ExecutorSettings = self.workflow.executor_settings or ExecutorSettings()
        self.config: RunConfig = build_run_config(self.settings)
        self.namespace = self.config.namespace
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
            disruption_retries=self.config.disruption_retries,
            unschedulable_timeout=self.config.unschedulable_timeout,
            image_pull_grace=self.config.image_pull_grace,
        )
        self.trackers: dict[str, JobTracker] = {}
        self.occupancy = OccupancyClock()
        # Succeeded Jobs kept (not yet deleted) because the Secret would lose its last owner.
        self.retained: set[str] = set()
        self.secret = RunSecret(
            self.client, self.namespace, self.run_id, self.envvars(), run_labels(self.run_id)
        )
        self.watcher = RunWatcher(
            self.client, self.namespace, run_selector(self.run_id), on_error=self.logger.warning
        )
        self.watcher.start()
        self.stopping = threading.Event()
        self.submissions: SubmissionPool[QueuedJob] = SubmissionPool(
            self.config.submit_workers, self._create_and_report, self._submission_crashed
        )
        self.ready = True
        self.logger.info(
            f"Kubernetes run id {self.run_id} in namespace {self.namespace}, image {self.image}. "
            "If this run is killed, remove its leftovers with: "
            + CLEANUP_COMMAND.format(self.run_id, self.namespace)
        )

    @property
    def common_settings(self) -> CommonSettings:
        base = self.workflow.executor_plugin.common_settings
        return dataclasses.replace(
            base, auto_deploy_default_storage_provider=self.settings.auto_deploy_storage_plugins
        )

    def format_job_exec(self, job: JobExecutorInterface) -> str:
        command = super().format_job_exec(job)
        if self.config.job_command == "shell":
            return command
        if self.precommand is None:  # the same for every job of the run
            self.precommand = self.workflow.spawned_job_args_factory.precommand(
                executor_common_settings=self.common_settings
            )
        return launcher_command(command, self.precommand) or command

    def render(self, job: JobExecutorInterface) -> dict[str, Any]:
        facts = job_facts(job, self.preemptible_rules)
        given = RenderInput(
            run_id=self.run_id,
            image=self.image,
            command=self.format_job_exec(job),
            secret_name=self.secret.name if self.secret.needed else None,
            secret_env=self.secret.env_names,
            apptainer=self.apptainer,
        )
        return render_job(self.config, facts, given)

    def run_job(self, job: JobExecutorInterface) -> None:
        """Render the Job here (rendering reads the DAG, which belongs to this thread) and
        queue its creation; the pool reports the submission, or the job's error."""
        manifest = self.render(job)
        self.submissions.submit(QueuedJob(job, manifest))

    def _create_and_report(self, queued: "QueuedJob") -> None:
        """On a pool thread: create the Job once (409 then GET if an earlier attempt of
        the same request did create it), then report it submitted, or failed."""
        name = queued.name
        try:
            created = self._create(queued.manifest)
        except WorkflowError as e:
            self.report_job_error(SubmittedJobInfo(job=queued.job), msg=f"{e}\n")
            return
        self.watcher.cache.put("jobs", created, only_if_newer=True)
        self.secret.add_owner(created)
        self.trackers[name] = JobTracker()
        try:
            self.secret.ensure_created()
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

    def _create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        name = manifest["metadata"]["name"]
        path = job_path(self.namespace)
        try:
            return self.client.request("POST", path, body=manifest, give_up=self.stopping)
        except ApiError as e:
            if e.status == 409:  # an earlier attempt of this request did create it
                try:
                    return self.client.request(
                        "GET", job_path(self.namespace, name), give_up=self.stopping
                    )
                except ApiError as e2:
                    e = e2
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
        if cancelled:
            self.logger.info(f"{len(cancelled)} queued jobs were not submitted: the run is ending.")

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
        if not self.watcher.cache.synced():
            for job_info in active_jobs:
                yield job_info
            return
        now = time.monotonic()
        pods_by_job = self.watcher.cache.pods_by_job()
        self.occupancy.observe((pod for pods in pods_by_job.values() for pod in pods), now)
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
            )
            for notice in verdict.notices:
                self.logger.warning(f"{self._describe(job_info)}: {notice}")
            if verdict.state == "running":
                yield job_info
            elif verdict.state == "succeeded":
                self._on_success(job_info, verdict)
            else:
                self._on_failure(job_info, verdict)
        self.last_round_seconds = time.monotonic() - started

    def _sync_secret_owners(self) -> None:
        try:
            self.secret.sync_owners()
        except ApiError as e:
            self.logger.warning(f"Cannot update owners of Secret {self.secret.name}: {e}")
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
        kind = "group" if job.is_group() else "rule"
        return f"{kind} {job.name} (jobid {job.jobid}, Kubernetes Job {job_info.external_jobid})"

    def _forget(self, name: str) -> None:
        self.trackers.pop(name, None)
        self.watcher.cache.forget_job(name)
        self.secret.drop_owner(name)

    def _on_success(self, job_info: SubmittedJobInfo, verdict: Verdict) -> None:
        name = job_info.external_jobid
        if self.config.save_all_logs and verdict.pod:
            text = fetch_log(self.client, self.namespace, verdict.pod)
            if text is not None:
                save_log(name, text)
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
        aux_logs: list[str] = []
        lines = ""
        reason = verdict.message
        if verdict.pod:
            text = fetch_log(self.client, self.namespace, verdict.pod)
            if text is not None:
                aux_logs.append(str(save_log(name, text)))
                lines = tail(text, self.config.log_tail_lines)
                code = command_exit_code(text)
                if code is not None:
                    reason += f"; the rule's command exited with exit code {code}"
        if verdict.delete_job:
            try:
                delete_job(self.client, self.namespace, name)
            except ApiError as e:
                self.logger.warning(f"Cannot delete Job {name}: {e}")
        msg = f"{self._describe(job_info)} failed: {reason}\n"
        if lines:
            msg += f"Last {len(lines.splitlines())} log lines:\n{lines}\n"
        if not verdict.delete_job:
            msg += kubectl_hints(self.namespace, name, verdict.pod)
            msg += " (its Job is kept until the run ends)\n"
        self._forget(name)
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
