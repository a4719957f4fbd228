"""Conda in pods: the Dockerfile's conda target, and an image of prebuilt environments made
from `snakemake --containerize` on top of it.

No container engine runs here: these read Dockerfiles, they build nothing. Snakemake's own
--containerize and --list-conda-envs run for real; they only ask conda about itself
(`conda --version`, `conda info --json`, `conda config --get channel_priority --json`),
which a stub on PATH answers. It creates no environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from snakemake_executor_plugin_kubernetes.condaimage import (
    CondaImageError,
    envs_dockerfile,
    main,
)
from support.dockerfile import (
    REPO_ROOT,
    parse_dockerfile,
    resolve,
    stage_named,
)

OUR_CONDA_IMAGE = "myregistry.azurecr.io/snakemake-k8s-azblob-conda:0.1.0"

CONDA_STUB = """#!/bin/sh
case "$1" in
  --version) echo "conda 24.11.3" ;;
  info) echo '{"conda_version": "24.11.3", "platform": "linux-64", "conda_prefix": "/opt/conda"}' ;;
  config) echo '{"get": {"channel_priority": "strict"}, "success": true}' ;;
  *) echo "stub conda: $* is not answered here" >&2; exit 1 ;;
esac
"""

SNAKEFILE = """
rule all:
    input:
        "plot.txt",

rule count:
    output:
        "count.txt",
    conda:
        "envs/tools.yaml"
    shell:
        "samtools --version > {output}"

rule plot:
    input:
        "count.txt",
    output:
        "plot.txt",
    conda:
        "envs/plot.yaml"
    shell:
        "cat {input} > {output}"
"""


def test_the_conda_target_adds_conda_to_the_job_image():
    global_args, stages = parse_dockerfile((REPO_ROOT / "Dockerfile").read_text())
    conda = stage_named(stages, "conda")
    assert conda.base == "base"
    install = " ".join(conda.arguments("RUN"))
    version = global_args["MINIFORGE_VERSION"]
    assert version.split(".")[0] >= "24"  # Snakemake 9 needs conda >= 24.7.1
    assert "github.com/conda-forge/miniforge/releases/download/${MINIFORGE_VERSION}/" in install
    assert "sha256sum -c" in install, "the installer is not checked"
    assert "-b -p /opt/conda" in install
    (env,) = conda.arguments("ENV")
    path = resolve(env, global_args).split()[0].removeprefix("PATH=").split(":")
    # `python`/`snakemake` stay the venv's (with both plugins); only `conda` is added.
    assert path[:2] == ["/opt/snakemake/bin", "/opt/conda/condabin"]
    assert "/opt/conda/bin" not in path
    assert conda.arguments("USER")[-1] == "1000:1000"
    assert "conda --version" in conda.arguments("RUN")[-1]
    # The default target is still the plain image.
    assert stages[-1].name == "final" and stages[-1].base == "base"
    assert [s.name for s in stages].index("conda") < len(stages) - 1


@pytest.fixture
def conda_workflow(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    stub_dir = tmp_path / "stub-bin"
    stub_dir.mkdir()
    stub = stub_dir / "conda"
    stub.write_text(CONDA_STUB)
    stub.chmod(0o755)
    workdir = tmp_path / "workflow"
    (workdir / "envs").mkdir(parents=True)
    (workdir / "Snakefile").write_text(textwrap.dedent(SNAKEFILE))
    (workdir / "envs" / "tools.yaml").write_text(
        "channels: [conda-forge, bioconda]\ndependencies: [samtools=1.21]\n"
    )
    (workdir / "envs" / "plot.yaml").write_text(
        "channels: [conda-forge]\ndependencies: [python=3.12, matplotlib-base]\n"
    )
    env = {**os.environ, "PATH": f"{stub_dir}{os.pathsep}{os.environ['PATH']}"}
    return workdir, env


def _snakemake(workdir: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_prebuilt_environments_build_on_our_conda_image(conda_workflow, tmp_path: Path):
    workdir, env = conda_workflow
    containerized = _snakemake(workdir, env, "--containerize")
    listing = _snakemake(
        workdir, env, "--sdm", "conda", "--conda-prefix", "/conda-envs", "--list-conda-envs"
    )
    # Snakemake's own output builds on Miniforge, and puts environments where a pod's
    # Snakemake would not look: hence the rewrite.
    _, raw_stages = parse_dockerfile(containerized)
    assert [s.base for s in raw_stages] == ["condaforge/miniforge3:latest"]

    (workdir / "Dockerfile.containerize").write_text(containerized)
    (workdir / "conda-envs.tsv").write_text(listing)
    out = tmp_path / "Dockerfile.envs"
    with out.open("w") as handle:
        sys_stdout, sys.stdout = sys.stdout, handle
        try:
            code = main(
                [
                    *("--base", OUR_CONDA_IMAGE),
                    *("--containerize", str(workdir / "Dockerfile.containerize")),
                    *("--locations", str(workdir / "conda-envs.tsv")),
                ]
            )
        finally:
            sys.stdout = sys_stdout
    assert code == 0
    _, stages = parse_dockerfile(out.read_text())
    (stage,) = stages
    assert stage.base == OUR_CONDA_IMAGE
    users = stage.arguments("USER")
    assert stage.instructions[0] == ("USER", "root")
    assert users[-1] == "1000:1000" and stage.instructions[-1] == ("USER", "1000:1000")
    copies = stage.arguments("COPY")
    assert sorted(c.split()[0] for c in copies) == ["envs/plot.yaml", "envs/tools.yaml"]
    runs = " ".join(stage.arguments("RUN"))
    assert runs.count("conda env create --prefix /conda-envs/") == 2
    for line in listing.splitlines()[1:]:
        source, _, location = line.split("\t")
        assert location.startswith("/conda-envs/")
        prefix = next(c.split()[1].rsplit("/", 1)[0] for c in copies if c.startswith(source))
        assert f"ln -s {prefix} {location}" in runs
        assert f"touch {location}.env_setup_done" in runs


def test_mismatched_listings_are_refused():
    containerized = "FROM condaforge/miniforge3:latest\n# Conda environment:\n"
    containerized += "#   source: envs/a.yaml\n#   prefix: /conda-envs/aaa\n"
    listing = "environment\tcontainer\tlocation\nenvs/b.yaml\t\t/conda-envs/bbb_\n"
    with pytest.raises(CondaImageError, match=r"envs/b\.yaml"):
        envs_dockerfile(OUR_CONDA_IMAGE, containerized, listing)
    with pytest.raises(CondaImageError, match="no FROM"):
        envs_dockerfile(OUR_CONDA_IMAGE, "# nothing\n", listing)
    with pytest.raises(CondaImageError, match="--conda-prefix /conda-envs"):
        envs_dockerfile(OUR_CONDA_IMAGE, containerized, "environment\tcontainer\tlocation\n")
    elsewhere = "environment\tcontainer\tlocation\nenvs/a.yaml\t\t/home/me/.snakemake/conda/x_\n"
    with pytest.raises(CondaImageError, match="outside /conda-envs"):
        envs_dockerfile(OUR_CONDA_IMAGE, containerized, elsewhere)
