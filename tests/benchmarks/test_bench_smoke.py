"""The benchmark harness at tiny sizes, so that `nox -s bench` cannot rot unnoticed.

Baselines are skipped here (their venvs come from the package index and take minutes);
ours and the raw SDK go through the same code paths the full run uses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pluginbench.executor_bench import HOLD_LABEL, RunMeasure, derive, shape
from pluginbench.procstat import ProcessSample, cpu_seconds, peak_rss_bytes
from pluginbench.proxy import CountingProxy, classify
from pluginbench.report import Results, Row, Target
from pluginbench.targets import executor_targets, scale_targets
from pluginbench.timed_snakemake import install_report_timer, last_plugin_report

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO_ROOT / "benchmarks"
MIB = 1024**2


def run_bench(tmp_path: Path, *args: str, timeout: float = 600) -> dict:
    output = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, str(BENCH_DIR / "run.py"), *args, "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| figure | ours | baseline |" in done.stdout
    return json.loads(output.read_text())


def test_classify_names_blob_operations() -> None:
    assert classify("GET", "/acct/c?restype=container&comp=list&prefix=a/") == "GET list"
    assert classify("HEAD", "/acct/c/blob.txt") == "HEAD blob"
    assert classify("PUT", "/acct/c/b?comp=block&blockid=QQ==") == "PUT blob block"
    assert classify("PUT", "/acct/c?restype=container") == "PUT container"


def test_proxy_counts_every_request_and_relays_bytes_unchanged(azurite, container) -> None:
    from azure.storage.blob import BlobServiceClient

    payload = os.urandom(5 * MIB)
    with CountingProxy(azurite.port) as counting:
        service = BlobServiceClient(
            f"http://127.0.0.1:{counting.port}/{azurite.account_name}",
            credential={"account_name": azurite.account_name, "account_key": azurite.account_key},
            max_single_put_size=MIB,
            max_block_size=MIB,
            max_single_get_size=MIB,
            max_chunk_get_size=MIB,
        )
        blobs = service.get_container_client(container)
        blobs.upload_blob("small", b"tiny", overwrite=True)
        blobs.upload_blob("blocks", payload, overwrite=True, max_concurrency=2)
        copy = blobs.download_blob("blocks", max_concurrency=2).readall()
        names = sorted(blobs.list_blob_names())
        assert blobs.get_blob_client("small").exists()
        counts = counting.log.snapshot()
    assert copy == payload
    assert names == ["blocks", "small"]
    assert counts == {
        "PUT blob": 1,
        "PUT blob block": 5,
        "PUT blob blocklist": 1,
        "GET blob": 5,  # the first MiB, then four ranged reads
        "GET list": 1,
        "HEAD blob": 1,
    }


def test_derive_separates_submission_status_rounds_and_cleanup() -> None:
    t0 = 1000.0
    records = [
        {"method": "POST", "path": "/api/v1/namespaces/default/secrets", "time": t0 + 1},
        {"method": "POST", "path": "/apis/batch/v1/namespaces/default/jobs", "time": t0 + 2},
        {"method": "POST", "path": "/apis/batch/v1/namespaces/default/jobs", "time": t0 + 3},
    ]
    # Two status rounds of a per-job poller over 2 active jobs: 2 reads + 2 lists each.
    for round_start in (t0 + 5, t0 + 7):
        for job in ("a", "b"):
            records.append(
                {
                    "method": "GET",
                    "path": f"/apis/batch/v1/namespaces/default/jobs/{job}/status",
                    "time": round_start,
                }
            )
            records.append(
                {"method": "GET", "path": "/api/v1/namespaces/default/pods", "time": round_start}
            )
    records.append(
        {"method": "DELETE", "path": "/apis/batch/v1/namespaces/default/jobs/a", "time": t0 + 9}
    )
    run = RunMeasure(
        jobs=2,
        seconds=10.0,
        returncode=0,
        records=records,
        started=t0,
        finished=t0 + 10,
        last_completion=t0 + 8,
        last_report=t0 + 8.5,
        failed_pods=0,
        pod_seconds=[1.0, 3.0],
        overflowed=False,
    )
    figures = derive(run, interval=2, active=2)
    assert figures["total_requests"] == 12
    assert figures["job_creates"] == 2
    assert figures["submission_requests"] == 3
    assert figures["submission_seconds"] == 2.0
    assert figures["status_rounds"] == 2.0
    assert figures["requests_per_round"] == 4.0
    assert figures["completion_report_s"] == 0.5
    assert figures["completion_notice_s"] == 2.0
    assert figures["pod_running_seconds_median"] == 2.0
    assert figures["by_kind"]["GET /apis/batch/v1/namespaces/default/jobs/{name}/status"] == 4
    # Without per-job reads, rounds are nominal: one per interval of the steady phase.
    watch_only = [r for r in records if not r["path"].endswith("/status")]
    run.records = watch_only
    assert derive(run, interval=1, active=2)["status_rounds"] == 5.0
    assert shape("/api/v1/namespaces/ns/pods/p-1/log") == "/api/v1/namespaces/ns/pods/{name}/log"


def test_report_ratios_and_markdown_name_missing_values() -> None:
    results = Results(machine={}, command="x", parameters={})
    results.add(Row("requests", "requests", 5, 500, "azure 0.4.4"))
    results.add(Row("upload", "MB/s", None, 80.0, "raw SDK"))
    results.target("share", "0.01x", True)
    results.target("other", "not measured", None)
    assert results.rows[0].ratio == 0.01
    assert results.rows[1].ratio is None
    text = results.to_markdown()
    assert "| requests [requests] | 5 | 500 (azure 0.4.4) | 0.01x |" in text
    assert "| upload [MB/s] | n/a | 80 (raw SDK) | n/a |" in text
    assert "| share | 0.01x | PASS |" in text and "| other | not measured | N/A |" in text


def test_requests_per_round_target_judges_both_phases_at_the_same_job_count() -> None:
    def verdict(scale_rate: float) -> Target:
        results = Results(machine={}, command="x", parameters={})
        results.details["executor"] = {
            "requests_per_round_by_active_jobs": [
                {"phase": "complete", "active_jobs": 1000, "requests_per_round": 0.2},
                {"phase": "scale", "active_jobs": 1000, "requests_per_round": scale_rate},
            ]
        }
        executor_targets(results)
        return next(t for t in results.targets if "constant in active jobs" in t.name)

    steady = verdict(0.4)
    assert steady.verdict == "PASS"
    assert steady.measured == "1000 active (complete): 0.2, 1000 active (scale): 0.4"
    assert verdict(2000.0).verdict == "MISS"


def test_scale_targets_judge_the_pending_phase_and_cpu_per_pod() -> None:
    def judged(pending_rss: float, per_round: float, shell_cpu: float) -> dict[str, str]:
        results = Results(machine={}, command="x", parameters={})
        results.add(Row("submit 1000 jobs: time", "s", 5.0, 40.0, "kubernetes 0.5.1"))
        results.add(Row("submit 1000 jobs: 429 responses", "responses", 0, 0, "kubernetes 0.5.1"))
        results.add(
            Row("30 trivial jobs: CPU time per pod (node agent)", "CPU-s", 2.0, shell_cpu,
                "ours, job-command shell (two Python starts)")
        )  # fmt: skip
        results.details["executor"] = {
            "pending_jobs": 10000,
            "pending": {"ours": {"executor_peak_rss_mib": pending_rss}},
            "requests_per_round_by_active_jobs": [
                {"phase": "scale", "active_jobs": 1000, "requests_per_round": 0.1},
                {"phase": "pending", "active_jobs": 10000, "requests_per_round": per_round},
            ],
        }
        scale_targets(results)
        return {t.name: t.verdict for t in results.targets}

    good = judged(pending_rss=250.0, per_round=0.3, shell_cpu=4.5)
    assert set(good.values()) == {"PASS"}, good
    assert "submitting 1,000 jobs <= 0.2x of 0.5.1's time, over --api-latency-ms" not in good
    distant = Results(machine={}, command="x", parameters={})
    distant.add(
        Row(
            "submit 1000 jobs, 30 ms API round trip: submission time",
            "s",
            15.3,
            253.0,
            "kubernetes 0.5.1",
        )
    )
    scale_targets(distant)
    verdicts = {t.name: t.verdict for t in distant.targets}
    assert (
        verdicts["submitting 1,000 jobs <= 0.2x of 0.5.1's time, over --api-latency-ms"] == "PASS"
    )
    assert verdicts["submitting 1,000 jobs <= 0.2x of 0.5.1's time"] == "N/A"
    bad = judged(pending_rss=290.0, per_round=20.0, shell_cpu=3.0)
    assert bad["executor peak RSS <= 300 MB with 10000 Pending"] == "MISS"  # 304 MB
    assert bad["requests per status round O(1) up to the Pending size"] == "MISS"
    assert bad["CPU-seconds per trivial pod <= 0.5x of two Python starts"] == "MISS"


def test_procstat_reads_this_process() -> None:
    sum(i * i for i in range(2_000_000))  # some CPU time to see
    assert cpu_seconds(os.getpid()) > 0
    assert peak_rss_bytes(os.getpid()) > 10 * MIB
    gone = ProcessSample(pid=2**22 + 1)  # above pid_max's default: no such process
    gone.take()
    assert gone.cpu_seconds == 0 and gone.peak_rss_bytes == 0


@pytest.mark.slow  # the whole harness in a subprocess
def test_storage_figures_at_tiny_size(tmp_path: Path) -> None:
    results = run_bench(
        tmp_path,
        "--only", "storage", "--skip-baselines", "--files", "30", "--small-files", "6",
        "--size", "3M", "--sdk-sweep", "1,2",
        "--shaped-size", "2M", "--link-mbps", "50", "--link-rtt-ms", "4",
    )  # fmt: skip
    assert results["problems"] == []
    rows = {(r["figure"], r["baseline_name"]): r for r in results["rows"]}
    flat = rows[("dry-run, 30 inputs in 1 folder: HTTP requests", "azure 0.4.4")]
    spread = rows[("dry-run, 30 inputs in 100 folders: HTTP requests", "azure 0.4.4")]
    # Ours lists folders instead of asking per file: far fewer requests than inputs.
    assert 1 <= flat["ours"] < 30
    assert 1 <= spread["ours"] <= 30 + 5
    assert flat["baseline"] is None and flat["ratio"] is None
    large = results["details"]["transfer_large"]
    assert large["size_bytes"] == 3 * MIB
    for side in ("sdk_c1", "sdk_c2", "ours"):
        for direction in ("up", "down"):
            assert large[side][direction]["nbytes"] == 3 * MIB
            assert large[side][direction]["peak_rss_mib"] > 0
    many = results["details"]["transfer_many"]
    assert many["ours"]["down"]["nbytes"] == 6 * 4096
    shaped = results["details"]["transfer_large_shaped"]
    assert shaped["link"] == "the shaped link"
    assert results["details"]["shaped_link"] == "50 MB/s per connection, 4 ms round trip"
    for side in ("sdk_c1", "sdk_c2", "ours"):
        assert shaped[side]["down"]["nbytes"] == 2 * MIB
    assert results["details"]["transfer_many_shaped"]["ours"]["up"]["nbytes"] == 6 * 4096
    verdicts = {t["name"]: t["verdict"] for t in results["targets"]}
    assert verdicts["large upload >= 3x azure plugin"] == "N/A"
    assert verdicts["large download over the shaped link >= 90% of raw SDK best"] in (
        "PASS",
        "MISS",
    )
    assert results["machine"]["nproc"] >= 1


def test_report_timer_writes_the_time_then_reports(tmp_path: Path, monkeypatch) -> None:
    from types import SimpleNamespace

    from snakemake_interface_executor_plugins.executors.base import AbstractExecutor

    # setattr with the current method makes monkeypatch restore it after the test.
    monkeypatch.setattr(AbstractExecutor, "report_job_success", AbstractExecutor.report_job_success)
    times = tmp_path / "times.txt"
    install_report_timer(str(times))
    finished: list[str] = []
    executor = SimpleNamespace(
        workflow=SimpleNamespace(scheduler=SimpleNamespace(finish_callback=finished.append))
    )
    before = time.time()
    AbstractExecutor.report_job_success(executor, SimpleNamespace(job="job-1"))
    AbstractExecutor.report_job_success(executor, SimpleNamespace(job="job-2"))
    assert finished == ["job-1", "job-2"]
    lines = times.read_text().splitlines()
    assert len(lines) == 2
    written = [float(line.split()[0]) for line in lines]
    assert before <= written[0] <= written[1] <= time.time()
    assert all(line.split()[1] == "types" for line in lines)  # SimpleNamespace's module


def test_the_last_report_counted_is_the_plugins_not_snakemakes_local_rule() -> None:
    # A run ends with the local `all` rule, reported by Snakemake's own local executor
    # after it checked every output in storage: that is not the executor's notice.
    report_times = (
        "100.5 snakemake_executor_plugin_kubernetes.executor\n"
        "103.25 snakemake_executor_plugin_kubernetes\n"
        "111.0 snakemake.executors.local\n"
    )
    assert last_plugin_report(report_times) == 103.25
    assert last_plugin_report("111.0 snakemake.executors.local\n") is None
    assert last_plugin_report("") is None


@pytest.mark.slow
@pytest.mark.cluster  # run.py starts local clusters of its own
def test_executor_figures_at_tiny_size(tmp_path: Path) -> None:
    results = run_bench(
        tmp_path,
        "--only", "executor", "--skip-baselines", "--jobs", "3", "--complete-jobs", "1",
        "--status-interval", "1", "--observe-seconds", "3", "--pod-slots", "1", "--skip-warmup",
        "--pending-jobs", "5", "--api-latency-ms", "20",
    )  # fmt: skip
    assert results["problems"] == []
    executor = results["details"]["executor"]
    # Submitted again with every request held 20 ms by the API server (its delay fault).
    distant = executor["scale_distant"]["ours"]
    assert distant["job_creates"] == 3 and distant["throttled_429"] == 0
    scale, complete = executor["scale"]["ours"], executor["complete"]["ours"]
    assert scale["job_creates"] == 3
    assert scale["submission_requests"] >= 3
    assert complete["job_creates"] == 1
    assert complete["failed_pods"] == 0
    # The executor's report of the last job comes after its pod finished and before exit.
    report, notice = complete["completion_report_s"], complete["completion_notice_s"]
    assert report is not None and notice is not None
    assert 0 <= report <= notice
    phases = executor["requests_per_round_by_active_jobs"]
    assert [(p["phase"], p["active_jobs"]) for p in phases] == [
        ("complete", 1),
        ("scale", 3),
        ("pending", 5),
    ]
    # The scale phases measure the executor process and the API server's process.
    pending = executor["pending"]["ours"]
    assert pending["job_creates"] == 5 and pending["throttled_429"] == 0
    for phase in (scale, pending):
        assert phase["executor_peak_rss_mib"] > 50  # Snakemake and the plugins loaded
        assert phase["executor_cpu_seconds"] > 0
        assert phase["server_peak_rss_mib"] > 10
        # The peak split where Snakemake made the executor: its DAG before, the run after.
        before, growth = phase["rss_before_executor_mib"], phase["peak_rss_growth_mib"]
        assert 50 < before <= phase["executor_peak_rss_mib"]
        assert abs(before + growth - phase["executor_peak_rss_mib"]) <= 0.1
    # One pod per side, measured by the node agent's reaped CPU time: both were counted.
    shell = executor["complete"]["ours-shell"]
    assert shell["job_creates"] == 1 and shell["failed_pods"] == 0
    assert complete["pod_cpu_seconds_per_job"] > 0 and shell["pod_cpu_seconds_per_job"] > 0
    rows = {(r["figure"], r["baseline_name"]) for r in results["rows"]}
    assert ("5 jobs Pending: executor peak RSS", HOLD_LABEL) in rows
    assert ("5 jobs Pending: API server peak RSS", "kubernetes 0.5.1") in rows
    # Beside ours, Snakemake held the same jobs with the null executor: no Job created.
    hold = executor["pending"]["hold"]
    assert hold["job_creates"] == 0 and hold["total_requests"] == 0
    assert hold["executor_peak_rss_mib"] > 50 and hold["rss_before_executor_mib"] > 50
    verdicts = {t["name"]: t["verdict"] for t in results["targets"]}
    assert verdicts["submitting 1,000 jobs <= 0.2x of 0.5.1's time"] == "N/A"  # no baseline
    assert verdicts["CPU-seconds per trivial pod <= 0.5x of two Python starts"] in ("PASS", "MISS")
