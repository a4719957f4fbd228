"""Fixtures shared by every test: Azurite and the local Kubernetes cluster.

Both run on 127.0.0.1 only, on free ports, with their state in temporary folders.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from support.azurite import Azurite, start_azurite

pytest_plugins = ["localcluster.pytest_fixtures"]


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    server = start_azurite(tmp_path_factory.mktemp("azurite"))
    yield server
    server.stop()


@pytest.fixture
def container(azurite: Azurite) -> Iterator[str]:
    """A fresh, empty container on the session's Azurite; deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:20]}"
    service = azurite.service_client()
    service.create_container(name)
    yield name
    service.delete_container(name)
