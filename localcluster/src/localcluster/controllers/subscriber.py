"""A controller's life in the API server's loop: subscribe to the store's events, run one
task that consumes them, and stop cleanly."""

from __future__ import annotations

import asyncio
import contextlib

from localcluster.store import Store, WatchEvent


class StoreSubscriber:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._queue: asyncio.Queue[WatchEvent]
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._queue = self.store.subscribe()
        self.catch_up()
        self._task = asyncio.create_task(self._run())

    def catch_up(self) -> None:
        """Bring what the store already holds up to date before the first event."""

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.store.unsubscribe(self._queue)

    async def _run(self) -> None:
        raise NotImplementedError
