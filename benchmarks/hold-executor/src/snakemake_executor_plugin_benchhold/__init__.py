"""`--executor benchhold`: the benchmark's null executor, never published.

It takes every job Snakemake hands over, builds its command line as every remote executor
does (``format_job_exec``), reports it submitted, and then holds it as running forever: no
cluster, no requests, no state beyond Snakemake's own list of active jobs. Run beside ours
on the same workflow, its peak RSS is what Snakemake itself needs to keep N jobs submitted
and running, so ours minus it is what our executor adds.

Its common settings are ours (so Snakemake deploys the workflow sources to the default
storage and passes the storage arguments for both alike). At each status
round it writes how many jobs it holds to ``held-jobs.txt`` in the working directory: the
benchmark's sign that all were handed over.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path

from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo
from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor
from snakemake_interface_executor_plugins.jobs import JobExecutorInterface

import snakemake_executor_plugin_kubernetes as kubernetes_plugin

HELD_JOBS_FILE = "held-jobs.txt"

# Ours, so that Snakemake does the same work around both executors.
common_settings = kubernetes_plugin.common_settings


class Executor(RemoteExecutor):
    def __post_init__(self) -> None:
        self.held = 0

    def run_job(self, job: JobExecutorInterface) -> None:
        self.format_job_exec(job)  # built and dropped, as a real executor sends it away
        self.held += 1
        self.report_job_submission(SubmittedJobInfo(job=job, external_jobid=f"held-{job.jobid}"))

    async def check_active_jobs(
        self, active_jobs: list[SubmittedJobInfo]
    ) -> AsyncGenerator[SubmittedJobInfo, None]:
        Path(HELD_JOBS_FILE).write_text(str(self.held))
        for job in active_jobs:
            yield job

    def cancel_jobs(self, active_jobs: list[SubmittedJobInfo]) -> None:
        pass
