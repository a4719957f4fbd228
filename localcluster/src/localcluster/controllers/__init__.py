"""Controllers that run in the API server's loop: Job, TTL-after-finished, orphan GC and
resource quota status."""

from localcluster.controllers.garbage import GarbageCollector
from localcluster.controllers.jobs import JobController
from localcluster.controllers.quota import QuotaController

__all__ = ["GarbageCollector", "JobController", "QuotaController"]
