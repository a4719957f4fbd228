"""Collects the figures of every chaos scenario (faults injected, retries, jobs, leaks).

They are printed at the end of the run and written to `.cache/chaos-report.json`, the
source of the table in docs/reliability.md.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from support.chaos import scaled

REPORT_PATH = Path(__file__).resolve().parents[2] / ".cache" / "chaos-report.json"
_figures: dict[str, dict[str, int | float | str]] = {}


@pytest.fixture
def chaos_record(request: pytest.FixtureRequest):
    """Call with keyword figures; they are filed under the test's name."""

    def record(**figures: int | float | str) -> None:
        _figures.setdefault(request.node.name, {}).update(figures)

    return record


def pytest_terminal_summary(terminalreporter) -> None:
    if not _figures:
        return
    terminalreporter.section("chaos figures")
    for scenario, figures in sorted(_figures.items()):
        shown = ", ".join(f"{key}={value}" for key, value in figures.items())
        terminalreporter.write_line(f"{scenario}: {shown}")
    REPORT_PATH.parent.mkdir(parents=True, exist_ok=True)
    REPORT_PATH.write_text(json.dumps(_figures, indent=2, sort_keys=True))


# ----- executor scenarios: a local cluster of the chaos suite's own ----------------------
# Every local pod is a real Snakemake process (about 100 MB, 2 CPU-seconds to start), so at
# full size the nodes take 16 pods each, like a cluster whose autoscaler is at its maximum:
# most of the `--jobs 200` wait Pending with "Too many pods" until a slot frees.
POD_SLOTS_PER_NODE = int(os.environ.get("CHAOS_POD_SLOTS") or scaled(250, 16))
CHAOS_NODES = [
    {
        "name": f"chaos-{i}",
        "cpu": "256",
        "memory": "1Ti",
        "max_pods": POD_SLOTS_PER_NODE,
        "labels": {"chaos.test/pool": "main"},
    }
    for i in (1, 2)
]


@pytest.fixture(scope="session")
def chaos_cluster(tmp_path_factory: pytest.TempPathFactory):
    """A local cluster used by the chaos scenarios alone: their faults, node losses and
    request counts never meet other tests. Nodes are large, with POD_SLOTS_PER_NODE pods each."""
    from localcluster.launcher import start_cluster

    cluster = start_cluster(tmp_path_factory.mktemp("chaos-cluster"), nodes=CHAOS_NODES)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def chaos_control(chaos_cluster):
    control = chaos_cluster.control
    control.clear_faults()
    control.reset_requests()
    yield control
    control.clear_faults()


@pytest.fixture
def chaos_secret_env() -> dict[str, str]:
    """Passed to jobs with --envvars; its value must never leak."""
    import uuid

    return {"CHAOS_PIPELINE_TOKEN": f"tok-{uuid.uuid4().hex}"}


@pytest.fixture
def chaos_runner(chaos_cluster, azurite, container, tmp_path, chaos_secret_env):
    from support.workflows import WorkflowRunner

    return WorkflowRunner(
        kubeconfig=Path(chaos_cluster.kubeconfig),
        azurite=azurite,
        container=container,
        tmp_path=tmp_path,
        secret_env=chaos_secret_env,
        local=True,
    )
