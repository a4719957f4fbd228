"""What the log says of pods that wait for a node.

Each Pending pod's reason is told when it is new or changes. A run that submits 10,000
jobs to a full cluster would print 10,000 identical lines in one round, so a reason shared
by more than a few pods in a round is one line with their number and a few examples.
"""

from collections.abc import Iterable

# Up to this many pods with one reason in a round are told one by one.
TOLD_ONE_BY_ONE = 3
EXAMPLES = 3


def pending_lines(waiting: Iterable[tuple[str, str, str]]) -> list[str]:
    """Log lines for (job description, pod, reason) entries of one round, in first-seen
    order of the reasons."""
    by_reason: dict[str, list[tuple[str, str]]] = {}
    for job, pod, reason in waiting:
        by_reason.setdefault(reason, []).append((job, pod))
    lines = []
    for reason, pods in by_reason.items():
        if len(pods) <= TOLD_ONE_BY_ONE:
            lines.extend(f"{job}: pod {pod} is pending: {reason}" for job, pod in pods)
            continue
        examples = ", ".join(pod for _, pod in pods[:EXAMPLES])
        lines.append(f"{len(pods)} pods are pending: {reason} (e.g. {examples}, ...)")
    return lines
