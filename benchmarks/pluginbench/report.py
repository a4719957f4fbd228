"""Results of a benchmark run: rows of figures, targets with PASS/MISS, markdown and JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Row:
    """One figure, ours against one baseline (``ours`` or ``baseline`` may be missing)."""

    figure: str
    unit: str
    ours: float | None
    baseline: float | None
    baseline_name: str
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.ours is None or self.baseline in (None, 0):
            return None
        return self.ours / self.baseline


@dataclass
class Target:
    """A goal from the issue; ``passed`` is None when it could not be measured."""

    name: str
    measured: str
    passed: bool | None

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "MISS", None: "N/A"}[self.passed]


@dataclass
class Results:
    machine: dict[str, Any]
    command: str
    parameters: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def target(self, name: str, measured: str, passed: bool | None) -> None:
        self.targets.append(Target(name, measured, passed))

    def to_json(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "command": self.command,
            "parameters": self.parameters,
            "rows": [asdict(row) | {"ratio": row.ratio} for row in self.rows],
            "targets": [asdict(target) | {"verdict": target.verdict} for target in self.targets],
            "details": self.details,
            "problems": self.problems,
        }

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2, default=str) + "\n")

    def to_markdown(self) -> str:
        lines = [
            "| figure | ours | baseline | ratio (ours/baseline) |",
            "| --- | ---: | ---: | ---: |",
        ]
        for row in self.rows:
            baseline = f"{fmt(row.baseline)} ({row.baseline_name})"
            note = f" — {row.note}" if row.note else ""
            lines.append(
                f"| {row.figure} [{row.unit}]{note} | {fmt(row.ours)} | {baseline} "
                f"| {fmt(row.ratio, ratio=True)} |"
            )
        if self.targets:
            lines += ["", "| target | measured | verdict |", "| --- | --- | --- |"]
            lines += [f"| {t.name} | {t.measured} | {t.verdict} |" for t in self.targets]
        if self.problems:
            lines += ["", "Not measured:"]
            lines += [f"- {problem}" for problem in self.problems]
        return "\n".join(lines)


def fmt(value: float | None, ratio: bool = False) -> str:
    if value is None:
        return "n/a"
    if ratio:
        return f"{value:.3g}x" if value >= 0.01 or value == 0 else f"{value:.2e}x"
    if float(value).is_integer() and abs(value) >= 1:
        return f"{int(value):,}"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"
