"""`python -m snakemake_executor_plugin_kubernetes cleanup` removes one run's objects only."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from snakemake_executor_plugin_kubernetes.__main__ import main
from support.fakeapi import FakeApiServer


@pytest.fixture
def server() -> Iterator[FakeApiServer]:
    server = FakeApiServer()
    yield server
    server.stop()


def populate(server: FakeApiServer, run_id: str) -> None:
    labels = {"snakemake.io/run-id": run_id}
    for plural in ("jobs", "pods", "secrets", "configmaps"):
        for i in range(2):
            server.api.put(
                plural, {"metadata": {"name": f"{run_id}-{plural}-{i}", "labels": labels}}
            )


def remaining(server: FakeApiServer) -> set[str]:
    return {n for p in ("jobs", "pods", "secrets", "configmaps") for n in server.api.names(p)}


@pytest.mark.parametrize("collection_delete", ["supported", "unsupported"])
def test_cleanup_deletes_every_object_of_the_run_and_nothing_else(
    server, tmp_path, capsys, collection_delete
):
    populate(server, "run-a")
    populate(server, "run-b")
    if collection_delete == "unsupported":
        for kind in ("jobs", "pods", "secrets", "configmaps"):
            server.api.fail_next("DELETE", f"/{kind}$", 405)
    kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
    code = main(["cleanup", "--run-id", "run-a", "--kubeconfig", str(kubeconfig)])
    assert code == 0
    assert remaining(server) == {n for n in remaining(server) if n.startswith("run-b")}
    assert len(remaining(server)) == 8
    assert "deleted 2 jobs, 2 pods, 2 secrets, 2 configmaps" in capsys.readouterr().out
    deletes = [r for r in server.api.requests if r.method == "DELETE"]
    assert all(r.body["propagationPolicy"] == "Background" for r in deletes)
    assert len(deletes) == (4 if collection_delete == "supported" else 4 + 8)


def test_cleanup_rejects_bad_arguments(server, tmp_path, capsys):
    kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
    assert main(["cleanup", "--run-id", "not a run id!", "--kubeconfig", str(kubeconfig)]) == 1
    assert "--run-id" in capsys.readouterr().err
    code = main(
        ["cleanup", "--run-id", "x", "--namespace", "Bad_NS", "--kubeconfig", str(kubeconfig)]
    )
    assert code == 1
    assert "Bad_NS" in capsys.readouterr().err
    assert server.api.requests == []
