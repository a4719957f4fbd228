"""The storage interface's own conformance suite, run against Azurite."""

from __future__ import annotations

import uuid

import pytest
from snakemake_interface_storage_plugins.tests import TestStorageBase

from localcluster.azurite import Azurite
from snakemake_storage_plugin_azblob import StorageProvider

from .conftest import azurite_settings


class TestAzblobConformance(TestStorageBase):
    __test__ = True
    files_only = False
    touch = True

    @pytest.fixture(autouse=True)
    def _bind_azurite(self, azurite: Azurite, container: str) -> None:
        self.azurite = azurite
        self.container_name = container

    def get_storage_provider_cls(self) -> type[StorageProvider]:
        return StorageProvider

    def get_storage_provider_settings(self):
        return azurite_settings(self.azurite)

    def get_query(self, tmp_path) -> str:
        return f"az://{self.container_name}/conformance/object.txt"

    def get_query_not_existing(self, tmp_path) -> str:
        return f"az://{self.container_name}/conformance/missing-{uuid.uuid4().hex}.txt"
