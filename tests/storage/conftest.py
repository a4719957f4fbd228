"""Fixtures for the storage plugin tests: providers bound to the session's Azurite."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from localcluster.azurite import Azurite
from snakemake_storage_plugin_azblob import StorageProvider, StorageProviderSettings

ProviderFactory = Callable[..., StorageProvider]


def azurite_settings(azurite: Azurite, **overrides) -> StorageProviderSettings:
    """Settings for Azurite: its path-style endpoint and the development key."""
    values = {"endpoint_url": azurite.blob_endpoint, "account_key": azurite.account_key}
    values.update(overrides)
    return StorageProviderSettings(**values)


@pytest.fixture
def make_provider(azurite: Azurite, tmp_path: Path) -> ProviderFactory:
    """Build providers with Azurite settings; keyword arguments override settings."""
    counter = iter(range(1_000_000))

    def factory(**overrides) -> StorageProvider:
        return StorageProvider(
            local_prefix=tmp_path / f"local-{next(counter)}",
            logger=logging.getLogger("azblob-tests"),
            settings=azurite_settings(azurite, **overrides),
        )

    return factory


@pytest.fixture
def provider(make_provider: ProviderFactory) -> StorageProvider:
    return make_provider()
