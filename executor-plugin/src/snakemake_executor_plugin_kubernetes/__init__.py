"""Snakemake executor plugin for Kubernetes (`--executor kubernetes`)."""

from typing import Any

from snakemake_interface_executor_plugins.settings import CommonSettings

common_settings = CommonSettings(
    non_local_exec=True,
    implies_no_shared_fs=True,
    job_deploy_sources=True,
    pass_default_storage_provider_args=True,
    pass_default_resources_args=True,
    # Env vars travel in the run's Secret (secretKeyRef), never on the command line.
    pass_envvar_declarations_to_cmd=False,
    # Snakemake's pip install of the storage plugins in every pod is off; the executor
    # turns it on with --kubernetes-auto-deploy-storage-plugins=always, and by default
    # installs only those the image lacks (see plugin_deploy.py).
    auto_deploy_default_storage_provider=False,
    init_seconds_before_status_checks=0,
)

__all__ = ["Executor", "ExecutorSettings", "common_settings"]


def __getattr__(name: str) -> Any:
    # Loaded on first use, so that the in-pod modules (`python -m ...usage`) do not pay
    # for the executor's imports (kubernetes, urllib3): 1 s and 40 MB per pod.
    if name == "Executor":
        from snakemake_executor_plugin_kubernetes.executor import Executor

        return Executor
    if name == "ExecutorSettings":
        from snakemake_executor_plugin_kubernetes.settings import ExecutorSettings

        return ExecutorSettings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
