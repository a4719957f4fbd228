"""Executor settings as Snakemake parses them: CLI flags, environment variables, defaults."""

from __future__ import annotations

import dataclasses

import configargparse
import pytest
from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry

from snakemake_executor_plugin_kubernetes import ExecutorSettings, common_settings
from snakemake_executor_plugin_kubernetes.config import build_run_config
from snakemake_executor_plugin_kubernetes.plugin_deploy import PluginDeployment

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
    assert settings.spot_toleration.unparse() == (
        "kubernetes.azure.com/scalesetpriority=spot:NoSchedule"
    )
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
    # The bare flag of earlier releases: install what the image lacks.
    assert settings.auto_deploy_storage_plugins is PluginDeployment.AUTO
    assert settings.tolerations[0].key == "a"
    build_run_config(settings)


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SNAKEMAKE_KUBERNETES_NAMESPACE", "from-env")
    monkeypatch.setenv("SNAKEMAKE_KUBERNETES_IMAGE_PULL_GRACE", "42")
    monkeypatch.setenv("SNAKEMAKE_KUBERNETES_LABELS", "team=bio")
    settings = parse([])
    assert settings.namespace == "from-env"
    assert settings.image_pull_grace == 42
    assert settings.labels == {"team": "bio"}
    assert parse(["--kubernetes-namespace", "cli-wins"]).namespace == "cli-wins"


def test_storage_plugin_deployment_from_cli_profile_and_environment(
    monkeypatch: pytest.MonkeyPatch,
):
    assert parse([]).auto_deploy_storage_plugins is PluginDeployment.AUTO
    flag = "--kubernetes-auto-deploy-storage-plugins"
    assert parse([flag, "always"]).auto_deploy_storage_plugins is PluginDeployment.ALWAYS
    assert parse([f"{flag}=never"]).auto_deploy_storage_plugins is PluginDeployment.NEVER
    monkeypatch.setenv("SNAKEMAKE_KUBERNETES_AUTO_DEPLOY_STORAGE_PLUGINS", "true")
    assert parse([]).auto_deploy_storage_plugins is PluginDeployment.ALWAYS


TEXT_SETTINGS = {
    "node_selector": "agentpool=bio,kubernetes.io/os=linux",
    "tolerations": "sku=gpu:NoSchedule,dedicated:NoExecute",
    "labels": "team=bio",
    "annotations": "owner=lab,example.com/note=two words",
    "priority_class": "high",
    "image_pull_secrets": "acr-a,acr-b",
    "image_pull_policy": "IfNotPresent",
    "spot_toleration": "pool=spot:PreferNoSchedule",
}


def test_text_settings_are_parsed_once_the_same_from_cli_and_python():
    argv = [
        arg
        for name, text in TEXT_SETTINGS.items()
        for arg in (f"--kubernetes-{name.replace('_', '-')}", text)
    ]
    from_cli = parse(argv)
    from_python = ExecutorSettings(**TEXT_SETTINGS)
    for name in TEXT_SETTINGS:
        assert getattr(from_cli, name) == getattr(from_python, name), name
    assert from_cli.node_selector == {"agentpool": "bio", "kubernetes.io/os": "linux"}
    assert [t.to_dict() for t in from_cli.tolerations] == [
        {"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"},
        {"key": "dedicated", "operator": "Exists", "effect": "NoExecute"},
    ]
    assert from_cli.image_pull_secrets == ["acr-a", "acr-b"]
    assert from_cli.spot_toleration.value == "spot"
    # Each setting's unparse_func gives text that parses to the same value.
    for setting in dataclasses.fields(ExecutorSettings):
        if setting.name in TEXT_SETTINGS:
            text = setting.metadata["unparse_func"](getattr(from_cli, setting.name))
            assert setting.metadata["parse_func"](text) == getattr(from_cli, setting.name)


@pytest.mark.parametrize(
    ("name", "text"),
    [("node_selector", "no-value"), ("tolerations", "k=v:Sometimes"), ("labels", "a=b c")],
)
def test_bad_text_settings_fail_while_parsing_naming_the_setting(name, text):
    flag = f"--kubernetes-{name.replace('_', '-')}"
    with pytest.raises(WorkflowError, match=flag):
        parse([flag, text])
    with pytest.raises(WorkflowError, match=flag):
        ExecutorSettings(**{name: text})


def test_non_numeric_cli_value_is_rejected():
    with pytest.raises(SystemExit):
        parse(["--kubernetes-disruption-retries", "many"])
