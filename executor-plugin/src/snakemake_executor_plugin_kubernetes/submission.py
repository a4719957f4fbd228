"""Job creation on a small bounded pool of threads, so that `run_job` returns at once.

Snakemake calls `run_job` once per job, on its scheduler thread; one POST round trip
after another would make 10,000 jobs take minutes before the last one exists. Here
`run_job` renders the manifest (on the scheduler's thread: rendering reads the DAG) and
queues it; up to N workers take jobs off the queue in the order they were queued and
create them. Everything that happens after a creation (or its final failure) runs in the
callback given, on the worker's thread: Snakemake's report_job_submission and
report_job_error only take locks (the scheduler's and the executor's) and write the
job's marker file, so they are safe there.
"""

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")


@dataclass
class PoolCounts:
    queued: int = 0
    started: int = 0
    done: int = 0
    cancelled: int = 0


class SubmissionPool(Generic[Item]):
    """FIFO queue + up to ``workers`` threads calling ``handle(item)``.

    ``handle`` must report every outcome itself (it is the executor's create-and-report);
    an exception escaping it is passed to ``on_crash`` with the item, so no item is ever
    lost silently. Threads start lazily and end when the queue is empty, so an idle run
    holds none.
    """

    def __init__(
        self,
        workers: int,
        handle: Callable[[Item], None],
        on_crash: Callable[[Item, BaseException], None],
        name: str = "k8s-submit",
        max_queued: int = 256,
    ):
        if workers < 1 or max_queued < 1:
            raise ValueError(f"workers ({workers}) and max_queued ({max_queued}) must be >= 1")
        self._workers = workers
        self._max_queued = max_queued
        self._handle = handle
        self._on_crash = on_crash
        self._name = name
        self._queue: deque[Item] = deque()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._threads: set[threading.Thread] = set()
        self._in_flight = 0
        self._closed = False
        self.counts = PoolCounts()

    def submit(self, item: Item) -> None:
        """Queue one job; waits only while ``max_queued`` jobs are already waiting, so a
        scheduler faster than the API server holds a bounded number of manifests."""
        with self._lock:
            while len(self._queue) >= self._max_queued and not self._closed:
                self._idle.wait(1.0)  # woken as workers take jobs; the timeout keeps ^C live
            if self._closed:
                raise RuntimeError("the submission pool is closed")
            self._queue.append(item)
            self.counts.queued += 1
            if len(self._threads) < min(self._workers, len(self._queue) + self._in_flight):
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}-{self.counts.queued}", daemon=True
                )
                self._threads.add(thread)
                thread.start()

    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            with self._lock:
                if not self._queue:
                    self._threads.discard(me)
                    self._idle.notify_all()
                    return
                item = self._queue.popleft()
                self._in_flight += 1
                self.counts.started += 1
                self._idle.notify_all()  # room in the queue
            try:
                self._handle(item)
            except Exception as e:  # reported as the job's error, never swallowed
                self._on_crash(item, e)
            finally:
                with self._lock:
                    self._in_flight -= 1
                    self.counts.done += 1
                    self._idle.notify_all()

    @property
    def pending(self) -> int:
        """Jobs queued or being created."""
        with self._lock:
            return len(self._queue) + self._in_flight

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every queued job has been handled; False if the timeout passed."""
        with self._idle:
            return self._idle.wait_for(
                lambda: not self._queue and not self._in_flight, timeout=timeout
            )

    def close(self, cancel_queued: bool, timeout: float | None = None) -> list[Item]:
        """Stop taking jobs. With ``cancel_queued``, jobs not yet started are removed and
        returned (the caller says what became of them); requests already sent are always
        waited for, so every Job that may exist is known before the run's objects are
        deleted. Returns the cancelled items."""
        with self._lock:
            self._closed = True
            cancelled: list[Any] = []
            if cancel_queued:
                cancelled = list(self._queue)
                self._queue.clear()
                self.counts.cancelled += len(cancelled)
            self._idle.notify_all()  # a submit waiting for room gives up
        self.wait_idle(timeout)
        return cancelled
