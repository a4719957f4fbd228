"""Executor settings: `--kubernetes-<name>` on the CLI, `SNAKEMAKE_KUBERNETES_<NAME>` in the env.

No `from __future__ import annotations` here: Snakemake's settings parser reads the
field types at runtime, and every optional field names its parse type in metadata.
"""

from dataclasses import dataclass, field
from typing import Any

from snakemake_interface_executor_plugins.settings import ExecutorSettingsBase

from snakemake_executor_plugin_kubernetes.volumes import (
    PersistentVolume,
    parse_persistent_volumes,
    unparse_persistent_volumes,
)

# Snakemake's own lower bound of its default mem_mb for remote jobs.
DEFAULT_MEM_MB = 1000
DEFAULT_SPOT_TOLERATION = "kubernetes.azure.com/scalesetpriority=spot:NoSchedule"


def _meta(help_text: str, value_type: type | None = None, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"help": help_text, "env_var": True, **extra}
    if value_type is not None:
        meta["type"] = value_type
    return meta


@dataclass
class ExecutorSettings(ExecutorSettingsBase):
    namespace: str = field(
        default="default",
        metadata=_meta("Namespace for the run's Jobs, Pods and Secret.", str),
    )
    kubeconfig: str | None = field(
        default=None,
        metadata=_meta(
            "Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then in-cluster).", str
        ),
    )
    context: str | None = field(
        default=None, metadata=_meta("Kubeconfig context (default: the current one).", str)
    )
    cpu_scalar: float = field(
        default=0.95,
        metadata=_meta(
            "Factor applied to a job's threads for its CPU request, so that a job asking "
            "for all cores of a node still fits its allocatable CPU.",
            float,
        ),
    )
    cpu_limit_scalar: float = field(
        default=0.0,
        metadata=_meta(
            "CPU limit = CPU request x this factor (>= 1), for namespaces whose LimitRange "
            "or policy demands CPU limits; 0 (the default) sets no CPU limit, so jobs may "
            "use idle cores instead of being throttled.",
            float,
        ),
    )
    memory_limit_scalar: float = field(
        default=1.0,
        metadata=_meta(
            "Memory limit = mem_mb x this factor (>= 1); 0 sets no memory limit.", float
        ),
    )
    default_mem_mb: int = field(
        default=DEFAULT_MEM_MB,
        metadata=_meta(
            "Memory (MB) of a job whose rule sets no mem_mb and for which Snakemake's "
            "default resources give none either: every pod gets a memory request and limit.",
            int,
        ),
    )
    node_selector: str | None = field(
        default=None, metadata=_meta("Node selector for every job: 'k=v,k2=v2'.", str)
    )
    tolerations: str | None = field(
        default=None,
        metadata=_meta("Tolerations for every job: 'key[=value]:Effect[,...]'.", str),
    )
    priority_class: str | None = field(
        default=None, metadata=_meta("priorityClassName of every job pod.", str)
    )
    runtime_class: str | None = field(
        default=None, metadata=_meta("runtimeClassName of every job pod.", str)
    )
    scheduler_name: str | None = field(
        default=None, metadata=_meta("schedulerName of every job pod.", str)
    )
    service_account: str | None = field(
        default=None,
        metadata=_meta(
            "Service account of every job pod (e.g. for workload identity); its token is "
            "mounted only when this is set.",
            str,
        ),
    )
    service_account_name: str | None = field(
        default=None,
        metadata=_meta(
            "The upstream 0.5.1 name of --kubernetes-service-account; same meaning.", str
        ),
    )
    persistent_volumes: list[PersistentVolume] = field(
        default_factory=list,
        metadata={
            "help": "PersistentVolumeClaims to mount in every job container, as "
            "name:path (claim name, absolute path); several separated by spaces.",
            "parse_func": parse_persistent_volumes,
            "unparse_func": unparse_persistent_volumes,
            "nargs": "+",
            "metavar": "NAME:PATH",
        },
    )
    image_pull_secrets: str | None = field(
        default=None, metadata=_meta("Comma-separated names of image pull secrets.", str)
    )
    image_pull_policy: str | None = field(
        default=None,
        metadata=_meta("imagePullPolicy of the job container: Always|IfNotPresent|Never.", str),
    )
    labels: str | None = field(
        default=None, metadata=_meta("Extra labels on every Job and Pod: 'k=v,k2=v2'.", str)
    )
    annotations: str | None = field(
        default=None,
        metadata=_meta("Extra annotations on every Job and Pod: 'k=v,k2=v2'.", str),
    )
    pod_template: str | None = field(
        default=None,
        metadata=_meta(
            "YAML file with a pod template (metadata/spec) merged under the rendered pod.", str
        ),
    )
    spot: bool = field(
        default=False,
        metadata=_meta(
            "Treat every rule as preemptible: tolerate spot nodes and prefer them "
            "(as --preemptible-rules does for the listed rules)."
        ),
    )
    spot_toleration: str = field(
        default=DEFAULT_SPOT_TOLERATION,
        metadata=_meta(
            "Toleration (key[=value]:Effect) added to preemptible jobs; its key=value also "
            "forms the preferred node affinity.",
            str,
        ),
    )
    disruption_retries: int = field(
        default=3,
        metadata=_meta(
            "How often a job whose pod was disrupted (evicted, preempted, node lost) is "
            "retried by its Job before the job fails.",
            int,
        ),
    )
    privileged: bool = field(default=False, metadata=_meta("Run every job container privileged."))
    unschedulable_timeout: int = field(
        default=600,
        metadata=_meta(
            "Seconds a pod may stay unschedulable while no other pod of the run is on a "
            "node, before its job fails with the scheduler's message. While the run has "
            "pods on nodes, waiting pods are queued behind them, not stuck. A pod the "
            "cluster-autoscaler says no node pool can hold fails at once.",
            int,
        ),
    )
    image_pull_grace: int = field(
        default=180,
        metadata=_meta(
            "Seconds a pod may stay in ErrImagePull/ImagePullBackOff/"
            "CreateContainerConfigError before its job fails.",
            int,
        ),
    )
    keep_jobs: bool = field(
        default=False,
        metadata=_meta(
            "Delete no Job of the run, neither as it finishes nor when the run ends "
            "(ttlSecondsAfterFinished still applies)."
        ),
    )
    omit_job_cleanup: bool = field(
        default=False,
        metadata=_meta(
            "The upstream 0.5.1 name of --kubernetes-keep-jobs: delete no Job, neither "
            "finished nor failed."
        ),
    )
    ttl_seconds_after_finished: int | None = field(
        default=86400,
        metadata=_meta(
            "ttlSecondsAfterFinished of every Job: the cluster deletes finished Jobs left "
            "behind (failed ones, or all with --kubernetes-keep-jobs) after this long.",
            int,
        ),
    )
    save_all_logs: bool = field(
        default=False,
        metadata=_meta(
            "Keep the pod logs of successful jobs too, like those of failed jobs: under "
            ".snakemake/logs/kubernetes/ and under .snakemake/kubernetes-logs/ of the "
            "default storage prefix."
        ),
    )
    no_remote_logs: bool = field(
        default=False,
        metadata=_meta(
            "Do not store the saved pod logs under .snakemake/kubernetes-logs/<run id>/ of "
            "the default storage prefix (they are stored there whenever a default storage "
            "provider is set, so they outlive the submitting machine)."
        ),
    )
    job_name_prefix: str = field(
        default="sm",
        metadata=_meta(
            "First part of every Job's name (a DNS-1123 label of at most 20 characters), "
            "e.g. to tell runs of several teams apart in one namespace.",
            str,
        ),
    )
    no_efficiency_report: bool = field(
        default=False,
        metadata=_meta(
            "Do not record each job's peak memory and CPU time in its pod, nor write the "
            "efficiency report (TSV, SVG, three log lines) next to Snakemake's log."
        ),
    )
    log_tail_lines: int = field(
        default=20,
        metadata=_meta("Number of last log lines shown in a failed job's error.", int),
    )
    auto_deploy_storage_plugins: bool = field(
        default=False,
        metadata=_meta(
            "pip-install the storage plugins into every pod before the job runs. Off by "
            "default: the job image is expected to contain them (ours does), and a pip "
            "install per pod is slow."
        ),
    )
    submit_workers: int = field(
        default=8,
        metadata=_meta(
            "Jobs created at once (1 to 32): run_job returns as soon as a job is queued, "
            "and this many threads create the queued Jobs in order.",
            int,
        ),
    )
    job_command: str = field(
        default="launcher",
        metadata=_meta(
            "How a pod starts Snakemake: 'launcher' deploys the workflow sources and runs "
            "the job in one Python process; 'shell' runs the two `python -m snakemake` "
            "commands Snakemake builds (one more interpreter start per job).",
            str,
            choices=["launcher", "shell"],
        ),
    )
