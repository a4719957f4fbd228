"""Corrections to the arguments Snakemake's executor interface gives a pod's Snakemake.

Both work around Snakemake 9 behaviour (docs/compatibility.md, "Upstream issues"):

- A single job's temp outputs that no later job reads are passed to the pod as
  ``--unneeded-temp-files``, so the pod does not upload them; yet the main process then
  waits for every output of that job in storage and fails with "Missing files after N
  seconds ... (missing in storage)". (Group jobs are checked with those files exempt.)
  For single jobs the flag is dropped: the pod uploads them, and the main process
  removes them from storage afterwards, as it removes them from disk when run locally.
- A group job's pod is told ``--cores all`` (the node's CPUs), which may be fewer than
  the group needs to run its pipe-connected jobs at once; it gets the cores Snakemake
  computed for the group instead (its ``_cores`` resource).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from snakemake_interface_executor_plugins.utils import format_cli_arg


class ArgumentsChanged(RuntimeError):
    """Snakemake formatted an argument other than expected (a newer interface?)."""


def replace_argument(args: str, flag: str, given: Any, wanted: Any) -> str:
    """``args`` with the formatted ``flag given`` replaced by ``flag wanted`` (or removed
    when ``wanted`` is None)."""
    old = format_cli_arg(flag, given)
    if not old:
        return args
    new = format_cli_arg(flag, wanted) if wanted is not None else ""
    if args.count(old) != 1:
        raise ArgumentsChanged(f"expected {old!r} once in the job's arguments")
    return args.replace(old, new)


def group_cores(resources: Any) -> int | None:
    """The cores Snakemake computed for a group job, or None when it has none."""
    cores = dict(resources.items()).get("_cores")
    if isinstance(cores, bool) or not isinstance(cores, int | float) or cores <= 0:
        return None
    return math.ceil(cores)


def corrected_job_args(
    args: str,
    *,
    is_group: bool,
    given_cores: Any,
    resources: Any,
    unneeded_temp_files: Iterable[Any],
) -> str:
    if is_group:
        cores = group_cores(resources)
        if cores is not None:
            args = replace_argument(args, "--cores", given_cores, cores)
    else:
        args = replace_argument(args, "--unneeded-temp-files", list(unneeded_temp_files), None)
    return args
