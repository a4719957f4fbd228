"""Reading a collection in pages, one page decoded at a time.

A run of 10,000 jobs has 10,000 Jobs and 10,000 Pods; decoded whole, each kind takes about
140 MiB. Reading them in pages keeps any one request small for the API server (the API's
own recommendation for large collections), and handing each page to the caller before the
next is read keeps the client's memory to one page plus what the caller keeps of it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from snakemake_executor_plugin_kubernetes.client import KubeClient

# 200, not client-go's 500: a page of 500 Pods decoded is about 7 MiB, and memory the
# allocator hands out for it is not all given back. Re-listing 10,000 Jobs and 10,000 Pods
# left the process 3.0 MiB larger with pages of 500 and 0.5 MiB with pages of 200 (one
# re-list at a time, see watcher.py); the API server is asked 100 times instead of 40 for a
# list that happens every 10 minutes.
LIST_PAGE_SIZE = 200


def read_pages(
    client: KubeClient,
    path: str,
    query: list[tuple[str, Any]],
    on_items: Callable[[list[dict[str, Any]]], None],
) -> str | None:
    """GET ``path`` in pages of LIST_PAGE_SIZE, passing each page's items to ``on_items``
    before asking for the next; returns the list's resourceVersion (the first page's: every
    page of one list is a snapshot at it)."""
    resource_version = None
    token = None
    while True:
        page_query = [*query, ("limit", LIST_PAGE_SIZE)]
        if token:
            page_query.append(("continue", token))
        page = client.request("GET", path, query=page_query)
        metadata = page.get("metadata") or {}
        resource_version = resource_version or metadata.get("resourceVersion")
        on_items(page.get("items") or [])
        token = metadata.get("continue")
        del page  # freed before the next page arrives, not after
        if not token:
            return resource_version
