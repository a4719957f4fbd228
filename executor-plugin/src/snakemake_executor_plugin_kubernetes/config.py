"""Settings validated and parsed once per run, so every job renders from checked values."""

from dataclasses import dataclass
from typing import Any

from snakemake_interface_common.exceptions import WorkflowError

from snakemake_executor_plugin_kubernetes.client import MAX_SUBMIT_WORKERS
from snakemake_executor_plugin_kubernetes.naming import check_job_name_prefix, check_namespace
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
from snakemake_executor_plugin_kubernetes.volumes import PersistentVolume, parse_persistent_volumes


def _flag(name: str) -> str:
    return f"setting --kubernetes-{name.replace('_', '-')}"


@dataclass(frozen=True)
class RunConfig:
    """Checked and parsed settings. Defaults live in ExecutorSettings only: every field is
    built by build_run_config from a settings object."""

    namespace: str
    cpu_scalar: float
    cpu_limit_scalar: float
    memory_limit_scalar: float
    default_mem_mb: int
    node_selector: dict[str, str]
    tolerations: list[Toleration]
    priority_class: str | None
    runtime_class: str | None
    scheduler_name: str | None
    service_account: str | None
    image_pull_secrets: list[str]
    image_pull_policy: str | None
    labels: dict[str, str]
    annotations: dict[str, str]
    pod_template: dict[str, Any] | None
    persistent_volumes: tuple[PersistentVolume, ...]
    spot: bool
    spot_toleration: Toleration | None
    disruption_retries: int
    privileged: bool
    unschedulable_timeout: int
    image_pull_grace: int
    keep_jobs: bool
    ttl_seconds_after_finished: int | None
    save_all_logs: bool
    log_tail_lines: int
    no_remote_logs: bool
    job_name_prefix: str
    no_efficiency_report: bool
    submit_workers: int
    job_command: str


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
    for name in ("cpu_limit_scalar", "memory_limit_scalar"):
        value = getattr(settings, name)
        if value != 0 and value < 1:
            raise WorkflowError(
                f"Invalid value {value!r} for {_flag(name)}: must be 0 (no limit) or >= 1 "
                "(a limit below the request is rejected by Kubernetes)."
            )
    scalar = settings.memory_limit_scalar
    if settings.default_mem_mb is None or settings.default_mem_mb <= 0:
        raise WorkflowError(
            f"Invalid value {settings.default_mem_mb!r} for {_flag('default_mem_mb')}: "
            "must be > 0 (every pod gets a memory request)."
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
        cpu_limit_scalar=settings.cpu_limit_scalar,
        memory_limit_scalar=scalar,
        default_mem_mb=settings.default_mem_mb,
        node_selector=node_selector,
        tolerations=parse_tolerations(settings.tolerations, _flag("tolerations")),
        priority_class=parse_object_name(settings.priority_class, _flag("priority_class")),
        runtime_class=parse_object_name(settings.runtime_class, _flag("runtime_class")),
        scheduler_name=parse_object_name(settings.scheduler_name, _flag("scheduler_name")),
        service_account=_service_account(settings),
        image_pull_secrets=parse_names(settings.image_pull_secrets, _flag("image_pull_secrets")),
        image_pull_policy=parse_pull_policy(settings.image_pull_policy, _flag("image_pull_policy")),
        labels=parse_labels(settings.labels, _flag("labels")),
        annotations=parse_annotations(settings.annotations, _flag("annotations")),
        pod_template=load_pod_template(settings.pod_template, _flag("pod_template")),
        # Parsed already when given on the command line; API users may pass texts.
        persistent_volumes=tuple(parse_persistent_volumes(settings.persistent_volumes)),
        spot=bool(settings.spot),
        spot_toleration=parse_toleration(settings.spot_toleration, _flag("spot_toleration")),
        disruption_retries=_non_negative(settings.disruption_retries, "disruption_retries"),
        privileged=bool(settings.privileged),
        unschedulable_timeout=_non_negative(
            settings.unschedulable_timeout, "unschedulable_timeout"
        ),
        image_pull_grace=_non_negative(settings.image_pull_grace, "image_pull_grace"),
        keep_jobs=bool(settings.keep_jobs or settings.omit_job_cleanup),
        ttl_seconds_after_finished=_non_negative(
            settings.ttl_seconds_after_finished, "ttl_seconds_after_finished"
        ),
        save_all_logs=bool(settings.save_all_logs),
        log_tail_lines=_non_negative(settings.log_tail_lines, "log_tail_lines"),
        no_remote_logs=bool(settings.no_remote_logs),
        job_name_prefix=check_job_name_prefix(settings.job_name_prefix, _flag("job_name_prefix")),
        no_efficiency_report=bool(settings.no_efficiency_report),
        submit_workers=workers,
        job_command=_choice(settings.job_command, "job_command", ("launcher", "shell")),
    )


def _service_account(settings: ExecutorSettings) -> str | None:
    """--kubernetes-service-account, or its 0.5.1 name --kubernetes-service-account-name."""
    ours = parse_object_name(settings.service_account, _flag("service_account"))
    upstream = parse_object_name(settings.service_account_name, _flag("service_account_name"))
    if ours and upstream and ours != upstream:
        raise WorkflowError(
            f"Conflicting {_flag('service_account')}={ours!r} and "
            f"{_flag('service_account_name')}={upstream!r}: they are one setting "
            "(the second is its 0.5.1 name); give one."
        )
    return ours or upstream
