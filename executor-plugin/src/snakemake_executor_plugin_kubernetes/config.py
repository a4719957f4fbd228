"""Settings validated and parsed once per run, so every job renders from checked values."""

from dataclasses import dataclass, field
from typing import Any

from snakemake_interface_common.exceptions import WorkflowError

from snakemake_executor_plugin_kubernetes.client import MAX_SUBMIT_WORKERS
from snakemake_executor_plugin_kubernetes.naming import check_namespace
from snakemake_executor_plugin_kubernetes.parsing import (
    Toleration,
    parse_annotations,
    parse_labels,
    parse_names,
    parse_object_name,
    parse_pull_policy,
    parse_toleration,
    parse_tolerations,
)
from snakemake_executor_plugin_kubernetes.settings import ExecutorSettings
from snakemake_executor_plugin_kubernetes.template import load_pod_template


def _flag(name: str) -> str:
    return f"setting --kubernetes-{name.replace('_', '-')}"


@dataclass(frozen=True)
class RunConfig:
    namespace: str = "default"
    cpu_scalar: float = 0.95
    memory_limit_scalar: float = 1.0
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[Toleration] = field(default_factory=list)
    priority_class: str | None = None
    runtime_class: str | None = None
    scheduler_name: str | None = None
    service_account: str | None = None
    image_pull_secrets: list[str] = field(default_factory=list)
    image_pull_policy: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    pod_template: dict[str, Any] | None = None
    spot: bool = False
    spot_toleration: Toleration | None = None
    disruption_retries: int = 3
    privileged: bool = False
    unschedulable_timeout: int = 600
    image_pull_grace: int = 180
    keep_jobs: bool = False
    ttl_seconds_after_finished: int | None = 86400
    save_all_logs: bool = False
    log_tail_lines: int = 20
    submit_workers: int = 8
    job_command: str = "launcher"


def _non_negative(value: Any, name: str) -> Any:
    if value is not None and value < 0:
        raise WorkflowError(f"Invalid value {value!r} for {_flag(name)}: must be >= 0.")
    return value


def _choice(value: str, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise WorkflowError(
            f"Invalid value {value!r} for {_flag(name)}: must be one of {', '.join(choices)}."
        )
    return value


def build_run_config(settings: ExecutorSettings) -> RunConfig:
    """Validate every setting; a bad one raises WorkflowError naming it."""
    if settings.cpu_scalar <= 0:
        raise WorkflowError(
            f"Invalid value {settings.cpu_scalar!r} for {_flag('cpu_scalar')}: must be > 0."
        )
    scalar = settings.memory_limit_scalar
    if scalar != 0 and scalar < 1:
        raise WorkflowError(
            f"Invalid value {scalar!r} for {_flag('memory_limit_scalar')}: must be 0 (no "
            "limit) or >= 1 (a limit below the request is rejected by Kubernetes)."
        )
    node_selector = parse_labels(settings.node_selector, _flag("node_selector"))
    workers = settings.submit_workers
    if not 1 <= workers <= MAX_SUBMIT_WORKERS:
        raise WorkflowError(
            f"Invalid value {workers!r} for {_flag('submit_workers')}: must be 1 to "
            f"{MAX_SUBMIT_WORKERS}."
        )
    return RunConfig(
        namespace=check_namespace(settings.namespace),
        cpu_scalar=settings.cpu_scalar,
        memory_limit_scalar=scalar,
        node_selector=node_selector,
        tolerations=parse_tolerations(settings.tolerations, _flag("tolerations")),
        priority_class=parse_object_name(settings.priority_class, _flag("priority_class")),
        runtime_class=parse_object_name(settings.runtime_class, _flag("runtime_class")),
        scheduler_name=parse_object_name(settings.scheduler_name, _flag("scheduler_name")),
        service_account=parse_object_name(settings.service_account, _flag("service_account")),
        image_pull_secrets=parse_names(settings.image_pull_secrets, _flag("image_pull_secrets")),
        image_pull_policy=parse_pull_policy(settings.image_pull_policy, _flag("image_pull_policy")),
        labels=parse_labels(settings.labels, _flag("labels")),
        annotations=parse_annotations(settings.annotations, _flag("annotations")),
        pod_template=load_pod_template(settings.pod_template, _flag("pod_template")),
        spot=bool(settings.spot),
        spot_toleration=parse_toleration(settings.spot_toleration, _flag("spot_toleration")),
        disruption_retries=_non_negative(settings.disruption_retries, "disruption_retries"),
        privileged=bool(settings.privileged),
        unschedulable_timeout=_non_negative(
            settings.unschedulable_timeout, "unschedulable_timeout"
        ),
        image_pull_grace=_non_negative(settings.image_pull_grace, "image_pull_grace"),
        keep_jobs=bool(settings.keep_jobs),
        ttl_seconds_after_finished=_non_negative(
            settings.ttl_seconds_after_finished, "ttl_seconds_after_finished"
        ),
        save_all_logs=bool(settings.save_all_logs),
        log_tail_lines=_non_negative(settings.log_tail_lines, "log_tail_lines"),
        submit_workers=workers,
        job_command=_choice(settings.job_command, "job_command", ("launcher", "shell")),
    )
