"""Executor settings as Snakemake parses them: CLI flags, environment variables, defaults."""

from __future__ import annotations

import configargparse
import pytest
from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry

from snakemake_executor_plugin_kubernetes import ExecutorSettings, common_settings
from snakemake_executor_plugin_kubernetes.config import build_run_config

CONTRACT_SETTINGS = {
    "namespace",
    "context",
    "cpu_scalar",
    "memory_limit_scalar",
    "node_selector",
    "tolerations",
    "priority_class",
    "runtime_class",
    "scheduler_name",
    "service_account",
    "image_pull_secrets",
    "image_pull_policy",
    "labels",
    "annotations",
    "pod_template",
    "spot",
    "spot_toleration",
    "disruption_retries",
    "privileged",
    "unschedulable_timeout",
    "image_pull_grace",
    "keep_jobs",
    "ttl_seconds_after_finished",
    "save_all_logs",
    "log_tail_lines",
    "default_mem_mb",
}
# Every setting of the upstream executor 0.5.1, by its name there.
UPSTREAM_051_SETTINGS = {
    "namespace",
    "cpu_scalar",
    "service_account_name",
    "privileged",
    "persistent_volumes",
    "omit_job_cleanup",
}


def parse(argv: list[str]) -> ExecutorSettings:
    plugin = ExecutorPluginRegistry().get_plugin("kubernetes")
    parser = configargparse.ArgumentParser()
    plugin.register_cli_args(parser, "executor")
    settings = plugin.get_settings(parser.parse_args(argv))
    plugin.validate_settings(settings)
    return settings


def test_plugin_registers_with_the_contract_settings():
    plugin = ExecutorPluginRegistry().get_plugin("kubernetes")
    assert plugin.settings_cls is ExecutorSettings
    names = {info["name"] for info in plugin.get_settings_info()}
    assert names >= CONTRACT_SETTINGS
    assert names >= UPSTREAM_051_SETTINGS
    assert {"kubeconfig", "auto_deploy_storage_plugins"} <= names


def test_common_settings():
    assert common_settings.non_local_exec is True
    assert common_settings.implies_no_shared_fs is True
    assert common_settings.job_deploy_sources is True
    assert common_settings.pass_envvar_declarations_to_cmd is False
    assert common_settings.auto_deploy_default_storage_provider is False


def test_defaults_without_arguments():
    settings = parse([])
    assert settings.namespace == "default"
    assert settings.cpu_scalar == 0.95
    assert settings.memory_limit_scalar == 1.0
    assert settings.disruption_retries == 3
    assert settings.spot_toleration == "kubernetes.azure.com/scalesetpriority=spot:NoSchedule"
    assert settings.spot is False and settings.keep_jobs is False
    build_run_config(settings)


def test_cli_values_are_typed():
    settings = parse(
        [
            "--kubernetes-namespace",
            "pipelines",
            "--kubernetes-cpu-scalar",
            "0.8",
            "--kubernetes-memory-limit-scalar",
            "0",
            "--kubernetes-disruption-retries",
            "5",
            "--kubernetes-unschedulable-timeout",
            "5",
            "--kubernetes-ttl-seconds-after-finished",
            "60",
            "--kubernetes-tolerations",
            "a=b:NoSchedule",
            "--kubernetes-spot",
            "--kubernetes-keep-jobs",
            "--kubernetes-auto-deploy-storage-plugins",
        ]
    )
    assert settings.namespace == "pipelines"
    assert settings.cpu_scalar == 0.8 and isinstance(settings.cpu_scalar, float)
    assert settings.memory_limit_scalar == 0.0
    assert settings.disruption_retries == 5 and isinstance(settings.disruption_retries, int)
    assert settings.unschedulable_timeout == 5
    assert settings.ttl_seconds_after_finished == 60
    assert settings.spot is True and settings.keep_jobs is True
    assert settings.auto_deploy_storage_plugins is True
    config = build_run_config(settings)
    assert config.namespace == "pipelines" and config.tolerations[0].key == "a"


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SNAKEMAKE_KUBERNETES_NAMESPACE", "from-env")
    monkeypatch.setenv("SNAKEMAKE_KUBERNETES_IMAGE_PULL_GRACE", "42")
    monkeypatch.setenv("SNAKEMAKE_KUBERNETES_LABELS", "team=bio")
    settings = parse([])
    assert settings.namespace == "from-env"
    assert settings.image_pull_grace == 42
    assert settings.labels == "team=bio"
    assert parse(["--kubernetes-namespace", "cli-wins"]).namespace == "cli-wins"


def test_non_numeric_cli_value_is_rejected():
    with pytest.raises(SystemExit):
        parse(["--kubernetes-disruption-retries", "many"])
