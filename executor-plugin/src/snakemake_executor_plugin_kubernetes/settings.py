"""Executor settings: `--kubernetes-<name>` on the CLI, `SNAKEMAKE_KUBERNETES_<NAME>` in the env.

No `from __future__ import annotations` here: Snakemake's settings parser reads the
field types at runtime, and every optional field names its parse type in metadata.

Settings with a compact text form (selectors, tolerations, labels, names) are parsed once,
by Snakemake's command line through their `parse_func`, or by `__post_init__` when the
Python API gives texts: every reader gets parsed, checked values.
"""

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from snakemake_interface_executor_plugins.settings import ExecutorSettingsBase

from snakemake_executor_plugin_kubernetes.naming import check_job_name_prefix
from snakemake_executor_plugin_kubernetes.parsing import (
    Toleration,
    parse_annotations,
    parse_labels,
    parse_names,
    parse_object_name,
    parse_pull_policy,
    parse_toleration,
    parse_tolerations,
    unparse_key_values,
    unparse_tolerations,
)
from snakemake_executor_plugin_kubernetes.plugin_deploy import (
    PluginDeployment,
    parse_plugin_deployment,
    unparse_plugin_deployment,
)
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


def _unparse_optional(value: Any) -> str:
    return "" if value is None else str(value)


def _parsed(
    name: str,
    help_text: str,
    parse: Callable[[Any, str], Any],
    unparse: Callable[[Any], str],
    parsed: type | None = None,
) -> dict[str, Any]:
    """Metadata of a setting given as text and kept parsed; `parsed` is the type of a
    value that needs no parsing (e.g. a dict given through the Python API)."""
    origin = f"setting --kubernetes-{name.replace('_', '-')}"

    def parse_func(value: Any) -> Any:
        if parsed is not None and isinstance(value, parsed):
            return value
        return parse(value, origin)

    return {
        **_meta(help_text, str),
        "parse_func": parse_func,
        "unparse_func": unparse,
    }


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
    node_selector: dict[str, str] = field(
        default_factory=dict,
        metadata=_parsed(
            "node_selector",
            "Node selector for every job: 'k=v,k2=v2'.",
            parse_labels,
            unparse_key_values,
            dict,
        ),
    )
    tolerations: list[Toleration] = field(
        default_factory=list,
        metadata=_parsed(
            "tolerations",
            "Tolerations for every job: 'key[=value]:Effect[,...]'.",
            parse_tolerations,
            unparse_tolerations,
            list,
        ),
    )
    priority_class: str | None = field(
        default=None,
        metadata=_parsed(
            "priority_class",
            "priorityClassName of every job pod.",
            parse_object_name,
            _unparse_optional,
        ),
    )
    runtime_class: str | None = field(
        default=None,
        metadata=_parsed(
            "runtime_class",
            "runtimeClassName of every job pod.",
            parse_object_name,
            _unparse_optional,
        ),
    )
    scheduler_name: str | None = field(
        default=None,
        metadata=_parsed(
            "scheduler_name",
            "schedulerName of every job pod.",
            parse_object_name,
            _unparse_optional,
        ),
    )
    service_account: str | None = field(
        default=None,
        metadata=_parsed(
            "service_account",
            "Service account of every job pod (e.g. for workload identity); its token is "
            "mounted only when this is set.",
            parse_object_name,
            _unparse_optional,
        ),
    )
    service_account_name: str | None = field(
        default=None,
        metadata=_parsed(
            "service_account_name",
            "The upstream 0.5.1 name of --kubernetes-service-account; same meaning.",
            parse_object_name,
            _unparse_optional,
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
    image_pull_secrets: list[str] = field(
        default_factory=list,
        metadata=_parsed(
            "image_pull_secrets",
            "Comma-separated names of image pull secrets.",
            parse_names,
            ",".join,
            list,
        ),
    )
    image_pull_policy: str | None = field(
        default=None,
        metadata=_parsed(
            "image_pull_policy",
            "imagePullPolicy of the job container: Always|IfNotPresent|Never.",
            parse_pull_policy,
            _unparse_optional,
        ),
    )
    labels: dict[str, str] = field(
        default_factory=dict,
        metadata=_parsed(
            "labels",
            "Extra labels on every Job and Pod: 'k=v,k2=v2'.",
            parse_labels,
            unparse_key_values,
            dict,
        ),
    )
    annotations: dict[str, str] = field(
        default_factory=dict,
        metadata=_parsed(
            "annotations",
            "Extra annotations on every Job and Pod: 'k=v,k2=v2'.",
            parse_annotations,
            unparse_key_values,
            dict,
        ),
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
    # The default is the text (as help and the plugin catalog show it); parsed on creation.
    spot_toleration: Toleration = field(
        default=DEFAULT_SPOT_TOLERATION,  # type: ignore[assignment]
        metadata=_parsed(
            "spot_toleration",
            "Toleration (key[=value]:Effect) added to preemptible jobs; its key=value also "
            "forms the preferred node affinity.",
            parse_toleration,
            Toleration.unparse,
            Toleration,
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
        metadata=_parsed(
            "job_name_prefix",
            "First part of every Job's name (a DNS-1123 label of at most 20 characters), "
            "e.g. to tell runs of several teams apart in one namespace.",
            check_job_name_prefix,
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
    auto_deploy_storage_plugins: PluginDeployment = field(
        default=PluginDeployment.AUTO,
        metadata={
            "help": "Storage plugins in job pods: 'auto' pip-installs, before the job, only "
            "those of the run's storage providers that the job image lacks (a Python "
            "check when the image has them); 'always' pip-installs every storage plugin "
            "installed here into every pod, as Snakemake and upstream 0.5.1 do; 'never' "
            "installs none (the image must have them).",
            "env_var": True,
            "type": str,
            "parse_func": parse_plugin_deployment,
            "unparse_func": unparse_plugin_deployment,
            # The bare flag of earlier releases still parses (to the default).
            "nargs": "?",
            "metavar": "{auto,always,never}",
        },
    )

    def __post_init__(self) -> None:
        # Snakemake's command line hands parse_func results; the Python API may give texts.
        for setting in fields(self):
            parse = setting.metadata.get("parse_func")
            if parse is not None:
                setattr(self, setting.name, parse(getattr(self, setting.name)))
