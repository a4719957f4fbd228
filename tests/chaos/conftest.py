"""Collects the figures of every chaos scenario (faults injected, retries, jobs, leaks).

They are printed at the end of the run and written to `.cache/chaos-report.json`, the
source of the table in docs/reliability.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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
