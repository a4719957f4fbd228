"""Deleting a run's objects: single Jobs as they finish, everything on cancel or cleanup."""

from snakemake_executor_plugin_kubernetes.client import ApiError, KubeClient, core_path, job_path
from snakemake_executor_plugin_kubernetes.naming import RUN_ID_LABEL
from snakemake_executor_plugin_kubernetes.paging import read_pages

BACKGROUND = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}


def run_selector(run_id: str) -> str:
    return f"{RUN_ID_LABEL}={run_id}"


def delete_job(client: KubeClient, namespace: str, name: str) -> bool:
    """Delete one Job and (in the background) its pods; False if already gone."""
    try:
        client.request("DELETE", job_path(namespace, name), body=BACKGROUND)
    except ApiError as e:
        if e.status == 404:
            return False
        raise
    return True


ALL_KINDS = ("jobs", "pods", "secrets", "configmaps")
# Runs of this executor create no ConfigMaps (earlier versions did), so the documented Role
# has no rights on them: an identity that may not list them has none to clean up.
OPTIONAL_KINDS = ("configmaps",)
# Lists started afresh when a page's continue token has expired, before cleanup gives up.
LIST_ATTEMPTS = 3


def _collection(namespace: str, kind: str) -> str:
    return job_path(namespace) if kind == "jobs" else core_path(namespace, kind)


def delete_run(
    client: KubeClient, namespace: str, run_id: str, kinds: tuple[str, ...] = ALL_KINDS
) -> dict[str, int]:
    """Delete every object of `kinds` labelled with the run id; returns counts per kind.

    Jobs go first: deleting them stops the Job controller from creating new pods. Only the
    names are kept, read page by page, and the deleted objects the API server sends back
    are not decoded: at 10,000 jobs either, whole, would take about 140 MiB per kind.
    """
    selector = run_selector(run_id)
    counts: dict[str, int] = {}
    for kind in kinds:
        path = _collection(namespace, kind)
        try:
            names = _names(client, path, selector)
        except ApiError as e:
            if e.status == 403 and kind in OPTIONAL_KINDS:
                continue
            raise
        counts[kind] = len(names)
        if not names:
            continue
        try:
            client.discard("DELETE", path, query=[("labelSelector", selector)], body=BACKGROUND)
        except ApiError as e:
            # 403: an identity with `delete` but not `deletecollection` still cleans up.
            if e.status not in (403, 404, 405):
                raise
            _delete_each(client, path, names)
    return counts


def _names(client: KubeClient, path: str, selector: str) -> list[str]:
    attempt = 1
    while True:
        try:
            return _list_names(client, path, selector)
        except ApiError as e:
            # 410 Gone between two pages: the continue token outlived the API server's
            # history (etcd compacts every few minutes), and it asks for a new list.
            if e.status != 410 or attempt == LIST_ATTEMPTS:
                raise
            attempt += 1


def _list_names(client: KubeClient, path: str, selector: str) -> list[str]:
    names: list[str] = []
    read_pages(
        client,
        path,
        [("labelSelector", selector)],
        lambda items: names.extend(item["metadata"]["name"] for item in items),
    )
    return names


def _delete_each(client: KubeClient, path: str, names: list[str]) -> None:
    for name in names:
        try:
            client.request("DELETE", f"{path}/{name}", body=BACKGROUND)
        except ApiError as e:
            if e.status != 404:
                raise
