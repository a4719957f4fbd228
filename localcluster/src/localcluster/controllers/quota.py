"""The resource-quota controller: keeps each ResourceQuota's status.hard and status.used
current as pods come, finish and go (kube-controller-manager's resourcequota controller)."""

from __future__ import annotations

import logging

from localcluster.admission import refresh_quota_status
from localcluster.controllers.subscriber import StoreSubscriber

log = logging.getLogger("localcluster.quota")
WATCHED = ("pods", "resourcequotas")


class QuotaController(StoreSubscriber):
    def catch_up(self) -> None:
        for quota in self.store.list("resourcequotas"):
            refresh_quota_status(self.store, quota["metadata"]["namespace"])

    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            dirty = set()
            while True:
                if event.resource in WATCHED:
                    namespace = event.object["metadata"].get("namespace")
                    if namespace:
                        dirty.add(namespace)
                if self._queue.empty():
                    break
                event = self._queue.get_nowait()
            for namespace in dirty:
                if not self.store.list("resourcequotas", namespace):
                    continue
                try:
                    refresh_quota_status(self.store, namespace)
                except Exception:
                    log.exception("quota status of namespace %s", namespace)
