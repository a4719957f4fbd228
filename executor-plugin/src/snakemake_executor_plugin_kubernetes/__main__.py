"""`python -m snakemake_executor_plugin_kubernetes cleanup --run-id ID [--namespace NS]`."""

import argparse
import sys

from snakemake_interface_common.exceptions import WorkflowError

from snakemake_executor_plugin_kubernetes.cleanup import delete_run
from snakemake_executor_plugin_kubernetes.client import ApiError, KubeClient
from snakemake_executor_plugin_kubernetes.naming import check_label_value, check_namespace


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m snakemake_executor_plugin_kubernetes")
    commands = parser.add_subparsers(dest="command", required=True)
    cleanup = commands.add_parser("cleanup", help="Delete every leftover object of a run.")
    cleanup.add_argument("--run-id", required=True, help="The run id (label snakemake.io/run-id).")
    cleanup.add_argument("--namespace", default="default")
    cleanup.add_argument("--kubeconfig", default=None)
    cleanup.add_argument("--context", default=None)
    args = parser.parse_args(argv)
    try:
        namespace = check_namespace(args.namespace)
        check_label_value(args.run_id, "--run-id")
        client = KubeClient.from_kubeconfig(args.kubeconfig, args.context)
        counts = delete_run(client, namespace, args.run_id)
    except (WorkflowError, ApiError) as e:
        print(f"cleanup failed: {e}", file=sys.stderr)
        return 1
    summary = ", ".join(f"{n} {kind}" for kind, n in counts.items())
    print(f"run {args.run_id} in namespace {namespace}: deleted {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
