"""A real Snakemake run over Azurite with azblob as the default storage provider.

Snakemake runs as a subprocess, the way users run it: key in the environment
(SNAKEMAKE_STORAGE_AZBLOB_ACCOUNT_KEY), endpoint on the command line. The Snakefile
uses wildcards, glob_wildcards over storage and a directory() output.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from localcluster.azurite import Azurite

SNAKEFILE = Path(__file__).parent / "workflows" / "samples" / "Snakefile"
RAW_INPUTS = {"a": "one two\n", "b": "three four five\n", "c": "six\n"}
CREDENTIAL_ENV_PREFIXES = ("SNAKEMAKE_STORAGE_AZBLOB_", "AZ_BLOB_", "AZURE_STORAGE_")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # each test runs Snakemake


@dataclass
class SnakemakeRun:
    returncode: int
    output: str

    def job_counts(self) -> dict[str, int]:
        """The "Job stats" table Snakemake prints before running anything."""
        match = re.search(r"Job stats:\n.*?\n-+\s+-+\n(.*?)\n\s*\n", self.output, re.S)
        if match is None:
            return {}
        counts = {}
        for line in match.group(1).splitlines():
            name, count = line.split()
            counts[name] = int(count)
        counts.pop("total", None)
        return counts


def run_snakemake(
    workdir: Path, container: str, azurite: Azurite, key: str, prefix: str | None = None
) -> SnakemakeRun:
    env = {k: v for k, v in os.environ.items() if not k.startswith(CREDENTIAL_ENV_PREFIXES)}
    env["SNAKEMAKE_STORAGE_AZBLOB_ACCOUNT_KEY"] = key
    command = [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(SNAKEFILE),
        "--directory", str(workdir),
        "--cores", "2",
        "--nocolor",
        "--default-storage-provider", "azblob",
        "--default-storage-prefix", prefix or f"az://{container}",
        "--storage-azblob-endpoint-url", azurite.blob_endpoint,
        "--storage-azblob-retries", "1",
    ]  # fmt: skip
    completed = subprocess.run(
        command,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=240,
    )
    return SnakemakeRun(completed.returncode, completed.stdout)


def blob_etags(azurite: Azurite, container: str) -> dict[str, str]:
    client = azurite.service_client().get_container_client(container)
    return {blob.name: blob.etag for blob in client.list_blobs()}


def read_blob(azurite: Azurite, container: str, name: str) -> str:
    blob = azurite.service_client().get_blob_client(container, name)
    return blob.download_blob().readall().decode()


def upload_raw(azurite: Azurite, container: str, sample: str, text: str) -> None:
    blob = azurite.service_client().get_blob_client(container, f"raw/{sample}.txt")
    blob.upload_blob(text.encode(), overwrite=True)


def wait_past_last_modified(azurite: Azurite, container: str) -> None:
    """Blob mtimes have one-second resolution: make the next upload strictly newer."""
    client = azurite.service_client().get_container_client(container)
    newest = max(blob.last_modified.timestamp() for blob in client.list_blobs())
    while time.time() < newest + 1.5:
        time.sleep(0.2)


def test_workflow_runs_reruns_nothing_then_exactly_the_dependents_of_a_changed_input(
    azurite: Azurite, container: str, tmp_path: Path
) -> None:
    for sample, text in RAW_INPUTS.items():
        upload_raw(azurite, container, sample, text)

    first = run_snakemake(tmp_path / "work", container, azurite, azurite.account_key)
    assert first.returncode == 0, first.output
    assert azurite.account_key not in first.output
    assert first.job_counts() == {"all": 1, "upper": 3, "count": 3, "summary": 1, "reports": 1}
    assert read_blob(azurite, container, "summary.tsv") == "a\t2\nb\t3\nc\t1\n"
    assert read_blob(azurite, container, "upper/b.txt") == "THREE FOUR FIVE\n"
    after_first = blob_etags(azurite, container)
    reports = {name for name in after_first if name.startswith("reports/")}
    assert {"reports/a.md", "reports/b.md", "reports/c.md"} <= reports
    assert read_blob(azurite, container, "reports/c.md") == "# c\n\nSIX\n"

    second = run_snakemake(tmp_path / "work", container, azurite, azurite.account_key)
    assert second.returncode == 0, second.output
    assert "Nothing to be done" in second.output
    assert blob_etags(azurite, container) == after_first

    wait_past_last_modified(azurite, container)
    upload_raw(azurite, container, "b", "seven eight nine ten\n")
    after_upload = blob_etags(azurite, container)

    third = run_snakemake(tmp_path / "work", container, azurite, azurite.account_key)
    assert third.returncode == 0, third.output
    assert third.job_counts() == {"all": 1, "upper": 1, "count": 1, "summary": 1, "reports": 1}
    assert set(re.findall(r"sample=(\w+)", third.output)) == {"b"}
    after_third = blob_etags(azurite, container)
    changed = {name for name in after_upload if after_third.get(name) != after_upload[name]}
    changed |= set(after_third) - set(after_upload)
    untouched = {"raw/a.txt", "raw/c.txt", "upper/a.txt", "upper/c.txt"}
    untouched |= {"counts/a.tsv", "counts/c.tsv"}
    assert {"upper/b.txt", "counts/b.tsv", "summary.tsv", "reports/b.md"} <= changed
    assert not changed & untouched
    assert read_blob(azurite, container, "summary.tsv") == "a\t2\nb\t4\nc\t1\n"


def test_workflow_with_wrong_key_fails_clearly_without_printing_it(
    azurite: Azurite, container: str, tmp_path: Path
) -> None:
    upload_raw(azurite, container, "a", RAW_INPUTS["a"])
    wrong_key = "V3JvbmdLZXlGb3JUZXN0c09ubHkwMTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI="

    run = run_snakemake(tmp_path / "work", container, azurite, wrong_key)

    assert run.returncode != 0
    assert wrong_key not in run.output
    assert re.search(r"account.key", run.output, re.I), run.output[-3000:]
    assert re.search(r"\b403\b|refused|authenticat", run.output, re.I), run.output[-3000:]
    assert blob_etags(azurite, container).keys() == {"raw/a.txt"}


def test_workflow_with_bad_container_name_fails_naming_it(
    azurite: Azurite, container: str, tmp_path: Path
) -> None:
    run = run_snakemake(
        tmp_path / "work", container, azurite, azurite.account_key, prefix="az://Bad_Container"
    )

    assert run.returncode != 0
    assert "Bad_Container" in run.output
    assert re.search(r"container name", run.output, re.I), run.output[-3000:]
