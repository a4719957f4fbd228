"""Snakemake's command line, with the moment of every job success report written down.

Both executors under test subclass the executor interface's ``AbstractExecutor`` and
report a finished job through its ``report_job_success``. This launcher wraps that one
method before Snakemake starts, appending the wall-clock time of each report, and the
module of the executor that made it, to the file named by ``BENCH_REPORT_TIMES``. The
benchmark can then tell the executor's notice of the last pod's completion apart from
Snakemake's own end of run. Snakemake's built-in local executor reports through the same
method (it runs the workflow's ``localrules``, such as a final ``all`` rule that checks
every output in storage), so its reports are written down but not counted as the
executor's. It changes no behaviour: the original method runs right after the line is
written.

It runs under each side's own interpreter (ours and the baseline's venv), so it uses only
what every Snakemake 9 installation has.
"""

from __future__ import annotations

import os
import time

REPORT_TIMES_VARIABLE = "BENCH_REPORT_TIMES"
BUILT_IN_EXECUTORS = "snakemake.executors."


def install_report_timer(path: str) -> None:
    from snakemake_interface_executor_plugins.executors.base import AbstractExecutor

    report_job_success = AbstractExecutor.report_job_success

    def timed_report_job_success(self, job_info):
        with open(path, "a") as times:
            times.write(f"{time.time():.6f} {type(self).__module__}\n")
        return report_job_success(self, job_info)

    AbstractExecutor.report_job_success = timed_report_job_success


def last_plugin_report(report_times: str) -> float | None:
    """The last report made by an executor plugin, leaving out Snakemake's own executors."""
    times = []
    for line in report_times.splitlines():
        moment, _, module = line.partition(" ")
        if not module.startswith(BUILT_IN_EXECUTORS):
            times.append(float(moment))
    return max(times, default=None)


def main() -> None:
    path = os.environ.get(REPORT_TIMES_VARIABLE)
    if path:
        install_report_timer(path)
    from snakemake.cli import main as snakemake_main

    snakemake_main()


if __name__ == "__main__":
    main()
