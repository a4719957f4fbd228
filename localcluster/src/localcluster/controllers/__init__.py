"""Controllers that run in the API server's loop: Job, TTL-after-finished and orphan GC."""

from localcluster.controllers.garbage import GarbageCollector
from localcluster.controllers.jobs import JobController

__all__ = ["GarbageCollector", "JobController"]
