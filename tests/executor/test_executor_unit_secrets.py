"""The run Secret's lifetime through its three calls (`job_created`, `job_finished`,
`sync_owners`) against the in-process API server, as the executor's least-privilege account
in a namespace of its own: which requests are made, and when."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from localcluster.accounts import rules_without, write_executor_kubeconfig
from localcluster.testing import ApiDriver
from snakemake_executor_plugin_kubernetes.client import USER_AGENT, KubeClient
from snakemake_executor_plugin_kubernetes.naming import RUN_ID_LABEL
from snakemake_executor_plugin_kubernetes.secrets import RunSecret

RUN_ID = "r0secret"
Lifetime = tuple[ApiDriver, Callable[..., RunSecret], list[str]]


@pytest.fixture
def lifetime(api: ApiDriver, tmp_path: Path) -> Iterator[Lifetime]:
    """(driver of a fresh namespace, RunSecret factory, warnings logged)."""
    namespace = f"secret-{uuid.uuid4().hex[:8]}"
    driver = ApiDriver(api.cluster, namespace)
    warnings: list[str] = []
    clients: list[KubeClient] = []

    def make(
        envvars: dict[str, str] | None = None,
        keep_jobs: bool = False,
        rules: list[dict[str, Any]] | None = None,
    ) -> RunSecret:
        kubeconfig = write_executor_kubeconfig(
            Path(api.cluster.kubeconfig), tmp_path / "kubeconfig", namespace, rules=rules
        )
        client = KubeClient.from_kubeconfig(str(kubeconfig), None, sleep=lambda s: None)
        clients.append(client)
        return RunSecret(
            client,
            namespace,
            RUN_ID,
            {"E1_TOKEN": "tok"} if envvars is None else envvars,
            {RUN_ID_LABEL: RUN_ID},
            keep_jobs=keep_jobs,
            warn=warnings.append,
        )

    yield driver, make, warnings
    for client in clients:
        client.close()
    driver.apis["core"].delete_namespace(namespace)
    driver.close()


def new_job(driver: ApiDriver, name: str) -> dict[str, Any]:
    container = {"name": "snakemake", "image": "busybox"}
    return driver.create(
        "jobs",
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name, "labels": {RUN_ID_LABEL: RUN_ID}},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [container]}}},
        },
    )


def sent(driver: ApiDriver) -> list[tuple[str, str]]:
    """The secret's own requests since the last reset, as (method, last path segment)."""
    return [
        (r["method"], r["path"].rsplit("/", 1)[-1])
        for r in driver.control.requests(user_agent=USER_AGENT)
    ]


def owner_names(driver: ApiDriver, secret: RunSecret) -> list[str]:
    found = driver.get("secrets", secret.name)
    assert found is not None
    return [o["name"] for o in found["metadata"].get("ownerReferences", [])]


def test_the_last_owner_is_kept_until_a_newer_one_is_recorded(lifetime: Lifetime) -> None:
    driver, make, warnings = lifetime
    secret = make()
    driver.control.reset_requests()
    secret.job_created(new_job(driver, "job-a"))
    assert sent(driver) == [("POST", "secrets")]
    assert owner_names(driver, secret) == ["job-a"], "created already owned by the first Job"

    # The only owner succeeds: its Job stays, or the collector would take the Secret.
    secret.job_finished("job-a", succeeded=True)
    secret.job_created(new_job(driver, "job-b"))
    assert sent(driver) == [("POST", "secrets")], "nothing between status-check intervals"
    assert driver.names("jobs") == ["job-a", "job-b"]

    # At the interval: one PATCH adds the new owner; then the kept Job goes.
    driver.control.reset_requests()
    secret.sync_owners()
    assert sent(driver) == [("PATCH", secret.name), ("DELETE", "job-a")]
    assert "job-b" in owner_names(driver, secret)
    secret.sync_owners()
    assert sent(driver) == [("PATCH", secret.name), ("DELETE", "job-a")], "no new owner: no PATCH"

    # A newer owner is recorded: a success is deleted at once.
    secret.job_finished("job-b", succeeded=False)  # a failed Job: the executor's to delete
    secret.job_created(new_job(driver, "job-c"))
    secret.sync_owners()
    driver.control.reset_requests()
    secret.job_created(new_job(driver, "job-d"))
    secret.sync_owners()
    secret.job_finished("job-d", succeeded=True)
    assert sent(driver) == [("PATCH", secret.name), ("DELETE", "job-d")]
    assert warnings == []


def test_keep_jobs_never_deletes_and_no_secret_without_values(lifetime: Lifetime) -> None:
    driver, make, _ = lifetime
    kept = make(keep_jobs=True)
    kept.job_created(new_job(driver, "job-a"))
    kept.job_created(new_job(driver, "job-b"))
    kept.sync_owners()
    driver.control.reset_requests()
    for name in ("job-a", "job-b"):
        kept.job_finished(name, succeeded=True)
    kept.sync_owners()
    assert sent(driver) == []

    valueless = make(envvars={})
    assert not valueless.needed
    valueless.job_created(new_job(driver, "job-c"))
    valueless.sync_owners()
    valueless.job_finished("job-c", succeeded=True)  # no Secret to keep: deleted at once
    assert sent(driver) == [("DELETE", "job-c")]


def test_a_refused_owner_patch_is_explained_and_tried_again(lifetime: Lifetime) -> None:
    driver, make, warnings = lifetime
    secret = make(rules=rules_without("secrets", "patch"))
    secret.job_created(new_job(driver, "job-a"))
    secret.job_finished("job-a", succeeded=True)  # kept: the Secret's only owner
    secret.job_created(new_job(driver, "job-b"))
    driver.control.reset_requests()
    secret.sync_owners()
    (warning,) = warnings
    assert f"Cannot update owners of Secret {secret.name}" in warning
    assert f"kubectl auth can-i patch secrets -n {driver.namespace}" in warning
    assert driver.names("jobs") == ["job-a", "job-b"], "the last recorded owner was kept"
    secret.sync_owners()  # the owners are still to be added: the next interval tries again
    assert sent(driver) == [("PATCH", secret.name)] * 2 and len(warnings) == 2


def test_a_failed_job_ended_by_the_executor_is_not_the_secrets_last_owner(
    lifetime: Lifetime,
) -> None:
    """A failed Job the executor deletes (unschedulable, refused pods) was deleted with no
    regard to the Secret: if the Secret named only it, the garbage collector took the
    Secret while newer Jobs' pods still needed it. The Secret names them first."""
    driver, make, warnings = lifetime
    secret = make()
    secret.job_created(new_job(driver, "job-a"))  # the Secret is created owned by job-a
    secret.job_created(new_job(driver, "job-b"))  # not named yet: next status interval
    driver.control.reset_requests()
    secret.job_finished("job-a", succeeded=False, delete=True)
    assert sent(driver) == [("PATCH", secret.name), ("DELETE", "job-a")]
    assert owner_names(driver, secret) == ["job-b"]
    assert driver.names("jobs") == ["job-b"]

    # Not the last owner: deleted at once, no PATCH; also with --kubernetes-keep-jobs, as
    # the executor must end such a Job.
    kept = make(keep_jobs=True)
    kept.job_created(new_job(driver, "job-c"))
    kept.job_created(new_job(driver, "job-d"))
    kept.sync_owners()
    driver.control.reset_requests()
    kept.job_finished("job-c", succeeded=False, delete=True)
    assert sent(driver) == [("DELETE", "job-c")]
    assert warnings == []
