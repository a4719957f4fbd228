"""Settings checked once per run, and the values a run derives from them.

The settings parse themselves (see settings.py); this module checks what a single setting
cannot (ranges, files, two names of one setting) and keeps only what is derived. Every
plain value (namespace, scalars, timeouts, parsed selectors and tolerations) is read from
`RunConfig.settings`.
"""

from dataclasses import dataclass
from typing import Any

from snakemake_interface_common.exceptions import WorkflowError

from snakemake_executor_plugin_kubernetes.naming import check_namespace
from snakemake_executor_plugin_kubernetes.settings import ExecutorSettings
from snakemake_executor_plugin_kubernetes.template import load_pod_template


def _flag(name: str) -> str:
    return f"setting --kubernetes-{name.replace('_', '-')}"


@dataclass(frozen=True)
class RunConfig:
    """The run's checked settings and what is derived from them."""

    settings: ExecutorSettings
    # --kubernetes-service-account, or its 0.5.1 name --kubernetes-service-account-name
    service_account: str | None
    # --kubernetes-keep-jobs, or its 0.5.1 name --kubernetes-omit-job-cleanup
    keep_jobs: bool
    # the file of --kubernetes-pod-template, loaded as {metadata, spec}
    pod_template: dict[str, Any] | None


NON_NEGATIVE = (
    "disruption_retries",
    "unschedulable_timeout",
    "image_pull_grace",
    "ttl_seconds_after_finished",
    "log_tail_lines",
)


def build_run_config(settings: ExecutorSettings) -> RunConfig:
    """Check every setting; a bad one raises WorkflowError naming it."""
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
    if settings.default_mem_mb is None or settings.default_mem_mb <= 0:
        raise WorkflowError(
            f"Invalid value {settings.default_mem_mb!r} for {_flag('default_mem_mb')}: "
            "must be > 0 (every pod gets a memory request)."
        )
    for name in NON_NEGATIVE:
        value = getattr(settings, name)
        if value is not None and value < 0:
            raise WorkflowError(f"Invalid value {value!r} for {_flag(name)}: must be >= 0.")
    check_namespace(settings.namespace)
    return RunConfig(
        settings=settings,
        service_account=_service_account(settings),
        keep_jobs=bool(settings.keep_jobs or settings.omit_job_cleanup),
        pod_template=load_pod_template(settings.pod_template, _flag("pod_template")),
    )


def _service_account(settings: ExecutorSettings) -> str | None:
    ours, upstream = settings.service_account, settings.service_account_name
    if ours and upstream and ours != upstream:
        raise WorkflowError(
            f"Conflicting {_flag('service_account')}={ours!r} and "
            f"{_flag('service_account_name')}={upstream!r}: they are one setting "
            "(the second is its 0.5.1 name); give one."
        )
    return ours or upstream
