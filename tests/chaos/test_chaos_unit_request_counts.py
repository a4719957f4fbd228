"""The load scenario's count of Job creations per Job name, on made-up request logs: it must
catch a Job created twice, one never created and a name no Job of the run carries."""

from __future__ import annotations

import pytest

from support.chaos import assert_each_job_created_once

JOBS = "/apis/batch/v1/namespaces/default/jobs"


def post(name: str, status: int, fault: str | None = None) -> dict:
    body = {"metadata": {"name": name}}
    return {"method": "POST", "path": JOBS, "body": body, "status": status, "fault": fault}


def test_a_creation_applied_but_answered_with_a_fault_then_409_counts_once() -> None:
    log = [
        post("a", 201),
        post("b", 0, "drop-response"),
        post("b", 409),
        post("c", 500, "500"),
        post("c", 409),
        post("d", 429, "429"),
        post("d", 201),
        {"method": "GET", "path": f"{JOBS}/b", "body": None, "status": 200, "fault": None},
    ]
    assert_each_job_created_once(log, {"a", "b", "c", "d"})


@pytest.mark.parametrize(
    ("log", "names"),
    [
        ([post("a", 201), post("a", 201)], {"a"}),  # created twice
        ([post("a", 201), post("b", 500, "500")], {"a", "b"}),  # b never created
        ([post("a", 201), post("a-2", 201)], {"a"}),  # one job, two names
        ([post("a", 201)], {"a", "b"}),  # a Job never posted
    ],
)
def test_every_miscount_fails(log: list[dict], names: set[str]) -> None:
    with pytest.raises(AssertionError):
        assert_each_job_created_once(log, names)
