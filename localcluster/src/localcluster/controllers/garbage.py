"""Deletes objects created with owner references to objects that do not exist.

Deletion of owners (all three propagation policies) is handled synchronously by the store;
this only covers dependents whose owners were never there or vanished before they arrived.
"""

from __future__ import annotations

import asyncio
import contextlib

from localcluster.store import ADDED, Store

SWEEP_DELAY_SECONDS = 0.5


class GarbageCollector:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._task: asyncio.Task[None] | None = None
        self.collected = 0

    async def start(self) -> None:
        self._queue = self.store.subscribe()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.store.unsubscribe(self._queue)

    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            if event.type == ADDED and event.object["metadata"].get("ownerReferences"):
                await asyncio.sleep(SWEEP_DELAY_SECONDS)
                while not self._queue.empty():
                    self._queue.get_nowait()
                self.collected += self.store.collect_orphans()
