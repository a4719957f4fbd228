"""Deletes objects created with owner references to objects that do not exist.

Deletion of owners (all three propagation policies) is handled synchronously by the store;
this only covers dependents whose owners were never there or vanished before they arrived.
"""

from __future__ import annotations

import asyncio

from localcluster.controllers.subscriber import StoreSubscriber
from localcluster.store import ADDED, Store

SWEEP_DELAY_SECONDS = 0.5


class GarbageCollector(StoreSubscriber):
    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.collected = 0

    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            if event.type == ADDED and event.object["metadata"].get("ownerReferences"):
                await asyncio.sleep(SWEEP_DELAY_SECONDS)
                while not self._queue.empty():
                    self._queue.get_nowait()
                self.collected += self.store.collect_orphans()
