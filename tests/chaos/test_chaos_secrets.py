"""No storage credential (account key, SAS, connection string) shows up anywhere but in the
data of the run's Secret: not in Job or Pod specs, Secret metadata, events, pod logs,
Snakemake's output and log files, the executor's saved logs, or the message of a failed job
- also when API requests fail and a job fails mid-run.

The other chaos scenarios run the same scan (support.chaos.secret_leaks) after each run.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

import pytest
from azure.storage.blob import ContainerSasPermissions, generate_container_sas

from support.chaos import JOBS_PATH, SECRETS_PATH, run_id_of, run_objects, secret_leaks
from support.workflows import secret_values_of_run

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

SNAKEFILE = """
localrules: all

rule all:
    input:
        "ok.txt",
        "broken.txt",

rule ok:
    output:
        "ok.txt",
    shell:
        "env | sort | sed 's/=.*//' > {output}"

rule broken:
    output:
        "broken.txt",
    shell:
        "echo about-to-fail; exit 3"
"""


def full_sas(azurite, container: str) -> str:
    return generate_container_sas(
        azurite.account_name,
        container,
        account_key=azurite.account_key,
        permission=ContainerSasPermissions(
            read=True, write=True, create=True, delete=True, list=True, add=True
        ),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )


@pytest.mark.parametrize("mode", ["sas", "connection-string"])
def test_credentials_never_leak_outside_the_run_secret(
    mode, chaos_runner, chaos_control, chaos_cluster, azurite, container, chaos_record
):
    base_environment = chaos_runner.environment
    if mode == "sas":
        secret_value = full_sas(azurite, container)
        setting = "SNAKEMAKE_STORAGE_AZBLOB_SAS_TOKEN"
        needles = [secret_value, unquote(re.search(r"sig=([^&]+)", secret_value).group(1))]
    else:
        secret_value = azurite.connection_string
        setting = "SNAKEMAKE_STORAGE_AZBLOB_CONNECTION_STRING"
        needles = [secret_value]
    extra = ("--storage-azblob-credential-mode", mode)

    # Secrets go in through the environment: Snakemake prints its own command line.
    def environment() -> dict[str, str]:
        return {**base_environment(), setting: secret_value}

    chaos_runner.environment = environment
    chaos_control.inject_fault(500, SECRETS_PATH, method="POST")
    chaos_control.inject_fault(429, JOBS_PATH, method="POST", count=2)
    run = chaos_runner.run(SNAKEFILE, jobs=2, extra_args=(*extra, "--keep-going"), name=mode)

    assert run.returncode != 0
    assert "Error in rule broken" in run.output, run.output[-4000:]
    assert "exit status 3" in run.output, "the failed job's log tail is missing"
    blobs = azurite.service_client().get_container_client(container)
    assert blobs.get_blob_client("ok.txt").exists(), run.output[-4000:]
    assert chaos_control.faults() == []
    # the credential did travel to the pods, through the run's Secret only
    assert secret_value in secret_values_of_run(run)
    assert run.observed.pod_logs, "no pod log was read: the scan would prove nothing"
    secrets = [*needles, azurite.account_key, *chaos_runner.secret_env.values()]
    assert secret_leaks(run, secrets) == []
    assert run.leftovers == set()
    leaked = run_objects(chaos_cluster.kubeconfig, run_id_of(run.output))
    assert leaked == []
    chaos_record(
        places_scanned=len(run.observed.objects) + len(run.observed.pod_logs) + len(run.events),
        faults_injected=3,
        objects_leaked=len(leaked),
        secrets_leaked=0,
    )
