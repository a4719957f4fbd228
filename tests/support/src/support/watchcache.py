"""Feeding the executor's watch cache a whole list at once, as a one-page re-list does."""

from __future__ import annotations

from typing import Any

from snakemake_executor_plugin_kubernetes.watcher import RunCache, WatchKind


def install_list(
    cache: RunCache, kind: WatchKind, items: list[dict[str, Any]], list_rv: str | None = None
) -> None:
    """A complete list read at ``list_rv``, in one page."""
    cache.finish_list(kind, cache.merge_page(kind, items), list_rv)
