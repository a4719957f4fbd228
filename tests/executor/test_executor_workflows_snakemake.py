"""Snakemake's own executor-plugin test workflows (simple, groups) on the cluster.

`snakemake.common.tests.TestWorkflowsBase` runs them in-process through Snakemake's API; here
with `--executor kubernetes` on the session's cluster and Azure Blob default storage on Azurite,
without a shared filesystem.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from snakemake.common.tests import TestWorkflowsBase
from snakemake.settings import types as settings
from snakemake_interface_common.plugin_registry.plugin import TaggedSettings

from localcluster.azurite import Azurite
from snakemake_executor_plugin_kubernetes import ExecutorSettings
from snakemake_storage_plugin_azblob import StorageProviderSettings
from support.workflows import BASE_IMAGE, NAMESPACE, ClusterObserver


class TestWorkflowsOnCluster(TestWorkflowsBase):
    __test__ = True
    latency_wait = 1

    @pytest.fixture(autouse=True)
    def _on_cluster(
        self, local_cluster, azurite: Azurite, executor_kubeconfig: Path
    ) -> Iterator[None]:
        self.kubeconfig = Path(local_cluster.kubeconfig)
        # Snakemake runs as the executor's least-privilege account; the observer as admin.
        self.executor_kubeconfig = executor_kubeconfig
        self.azurite = azurite
        self.container = f"t-{uuid.uuid4().hex[:20]}"
        azurite.service_client().create_container(self.container)
        observer = ClusterObserver(self.kubeconfig, NAMESPACE).start()
        yield
        observed = observer.stop()
        assert observed.of_kind("Job"), "no Job was submitted: the workflow did not run remotely"
        assert observer.leftovers() == set()
        azurite.service_client().delete_container(self.container)

    def get_executor(self) -> str:
        return "kubernetes"

    def get_executor_settings(self) -> ExecutorSettings:
        # The test workflows give rule c mem="5MB": as a request that is fine, as a limit
        # it kills any Snakemake process, so these runs set no memory limit.
        return ExecutorSettings(
            namespace=NAMESPACE,
            kubeconfig=str(self.executor_kubeconfig),
            memory_limit_scalar=0,
        )

    def get_assume_shared_fs(self) -> bool:
        return False

    def get_remote_execution_settings(self) -> settings.RemoteExecutionSettings:
        return settings.RemoteExecutionSettings(
            seconds_between_status_checks=1,
            container_image=BASE_IMAGE,
            envvars=self.get_envvars(),
        )

    def get_default_storage_provider(self) -> str:
        return "azblob"

    def get_default_storage_prefix(self) -> str:
        return f"az://{self.container}"

    def get_default_storage_provider_settings(self) -> dict[str, TaggedSettings]:
        tagged = TaggedSettings()
        tagged.register_settings(
            StorageProviderSettings(
                endpoint_url=self.azurite.blob_endpoint,
                account_key=self.azurite.account_key,
            )
        )
        return {"azblob": tagged}

    def run_workflow(self, test_name, tmp_path, deployment_method=frozenset()):
        super().run_workflow(test_name, tmp_path, deployment_method)
        outputs = {
            blob.name
            for blob in self.azurite.service_client()
            .get_container_client(self.container)
            .list_blobs()
        }
        assert "test3.out" in outputs, sorted(outputs)
