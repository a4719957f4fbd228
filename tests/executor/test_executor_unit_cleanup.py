"""`python -m snakemake_executor_plugin_kubernetes cleanup` removes one run's objects only."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from localcluster.launcher import RunningCluster
from localcluster.testing import ApiDriver
from snakemake_executor_plugin_kubernetes.__main__ import main

KINDS = ("jobs", "pods", "secrets", "configmaps")


@pytest.fixture
def api(api_server: RunningCluster) -> Iterator[ApiDriver]:
    driver = ApiDriver(api_server)
    yield driver
    driver.close()


def populate(api: ApiDriver, run_id: str) -> None:
    labels = {"snakemake.io/run-id": run_id}
    container = {"name": "main", "image": "snakemake/snakemake:v9", "command": ["true"]}
    specs = {
        "jobs": {
            "spec": {
                "suspend": True,  # no pods of their own: only the ones made here
                "template": {"spec": {"restartPolicy": "Never", "containers": [container]}},
            }
        },
        "pods": {"spec": {"containers": [container]}},
        "secrets": {},
        "configmaps": {},
    }
    for kind in KINDS:
        for i in range(2):
            metadata = {"name": f"{run_id}-{kind}-{i}", "labels": labels}
            api.create(kind, {"metadata": metadata, **specs[kind]})


def remaining(api: ApiDriver) -> set[str]:
    return {name for kind in KINDS for name in api.names(kind)}


@pytest.mark.parametrize("collection_delete", ["supported", "unsupported"])
def test_cleanup_deletes_every_object_of_the_run_and_nothing_else(
    api: ApiDriver, capsys, collection_delete
):
    populate(api, "run-a")
    populate(api, "run-b")
    if collection_delete == "unsupported":
        for kind in KINDS:
            api.control.inject_fault(405, path=f"/{kind}$", method="DELETE")
    api.control.reset_requests()
    kubeconfig = str(api.cluster.kubeconfig)
    code = main(["cleanup", "--run-id", "run-a", "--kubeconfig", kubeconfig])
    assert code == 0
    assert remaining(api) == {n for n in remaining(api) if n.startswith("run-b")}
    assert len(remaining(api)) == 8
    assert "deleted 2 jobs, 2 pods, 2 secrets, 2 configmaps" in capsys.readouterr().out
    deletes = api.requests("DELETE")
    assert all(r["body"]["propagationPolicy"] == "Background" for r in deletes)
    assert len(deletes) == (4 if collection_delete == "supported" else 4 + 8)


def test_cleanup_rejects_bad_arguments(api: ApiDriver, capsys):
    api.control.reset_requests()
    kubeconfig = str(api.cluster.kubeconfig)
    assert main(["cleanup", "--run-id", "not a run id!", "--kubeconfig", kubeconfig]) == 1
    assert "--run-id" in capsys.readouterr().err
    code = main(["cleanup", "--run-id", "x", "--namespace", "Bad_NS", "--kubeconfig", kubeconfig])
    assert code == 1
    assert "Bad_NS" in capsys.readouterr().err
    assert api.control.requests() == []
