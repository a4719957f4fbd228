"""Static checks of the job image's Dockerfile and .dockerignore.

No Docker engine runs in CI, so these read the files: both plugins are built from this
repository's sources with hatchling, Snakemake is pinned to 9.x, the image runs as a
non-root user and carries no credential.
"""

from __future__ import annotations

import re
import tomllib

import pytest
from packaging.requirements import Requirement

from support.dockerfile import REPO_ROOT, Stage, parse_dockerfile, resolve, stage_named

PLUGIN_DIRS = ("storage-plugin", "executor-plugin")
SECRET_WORDS = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|CONNECTION_STRING|SAS|CREDENTIAL", re.I)


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], list[Stage]]:
    return parse_dockerfile((REPO_ROOT / "Dockerfile").read_text())


def test_wheels_stage_builds_both_plugins_from_this_repository(dockerfile):
    _, stages = dockerfile
    wheels = stage_named(stages, "wheels")
    copied = " ".join(wheels.arguments("COPY"))
    built = " ".join(wheels.arguments("RUN"))
    for plugin_dir in PLUGIN_DIRS:
        assert f"{plugin_dir}/" in copied
        assert f"./{plugin_dir}" in built
        pyproject = tomllib.loads((REPO_ROOT / plugin_dir / "pyproject.toml").read_text())
        assert pyproject["build-system"]["build-backend"] == "hatchling.build"
    assert "pip wheel" in built and "--no-deps" in built


def test_runtime_installs_snakemake_9_and_the_built_wheels(dockerfile):
    global_args, stages = dockerfile
    requirement = Requirement(global_args["SNAKEMAKE_REQUIREMENT"])
    assert requirement.name == "snakemake"
    assert requirement.specifier.contains("9.0.0")
    assert requirement.specifier.contains("9.27.1")
    assert not requirement.specifier.contains("8.30.0")
    assert not requirement.specifier.contains("10.0.0")

    base = stage_named(stages, "base")
    assert resolve(base.base, global_args) == "python:3.12-slim"
    assert any("--from=wheels" in args for args in base.arguments("COPY"))
    install = " ".join(base.arguments("RUN"))
    assert '"$SNAKEMAKE_REQUIREMENT"' in install
    assert "/tmp/wheels/*.whl" in install
    for package in ("snakemake_storage_plugin_azblob", "snakemake_executor_plugin_kubernetes"):
        assert package in install, f"the build does not verify that {package} imports"


def test_every_stage_that_can_be_a_target_runs_as_non_root(dockerfile):
    _, stages = dockerfile
    for stage in stages:
        if stage.name == "wheels":
            continue
        users = stage.arguments("USER")
        inherits_non_root = stage.base in {"base", "bio"}
        assert users or inherits_non_root, f"stage {stage.name} sets no USER"
        if users:
            user = users[-1].split(":")[0]
            assert user not in {"0", "root"}, f"stage {stage.name} ends as root"
    base = stage_named(stages, "base")
    assert base.arguments("WORKDIR"), "the runtime image sets no WORKDIR"


def test_no_credential_is_baked_into_the_image(dockerfile):
    global_args, stages = dockerfile
    names = list(global_args)
    for stage in stages:
        for keyword, args in stage.instructions:
            if keyword in {"ENV", "ARG"}:
                names += re.findall(r"(\w+)=", args) or [args.split()[0]]
            if keyword in {"COPY", "ADD"}:
                assert not re.search(r"\.dev|\.env|kubeconfig|\.azure|\.kube", args), args
    assert not [name for name in names if SECRET_WORDS.search(name)]


def dockerignore_regex(pattern: str) -> re.Pattern[str]:
    """Docker's pattern syntax (Go filepath.Match plus `**`) as a regular expression."""
    out = ""
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out += "(?:.*/)?"
            index += 3
        elif pattern.startswith("**", index):
            out += ".*"
            index += 2
        elif pattern[index] == "*":
            out += "[^/]*"
            index += 1
        elif pattern[index] == "?":
            out += "[^/]"
            index += 1
        else:
            out += re.escape(pattern[index])
            index += 1
    return re.compile(out)


def is_excluded(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker semantics: the last matching rule wins; a rule matching a parent matches the path."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negated, regex in rules:
        if any(regex.fullmatch(candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def test_dockerignore_sends_the_plugin_sources_and_nothing_else():
    rules = []
    for line in (REPO_ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        rules.append((negated, dockerignore_regex(line.lstrip("!").strip("/"))))

    needed = []
    for plugin_dir in PLUGIN_DIRS:
        needed += [f"{plugin_dir}/pyproject.toml", f"{plugin_dir}/README.md"]
        needed += [
            path.relative_to(REPO_ROOT).as_posix()
            for path in (REPO_ROOT / plugin_dir / "src").rglob("*.py")
            if "__pycache__" not in path.parts
        ]
    assert len(needed) > 2 * len(PLUGIN_DIRS)
    assert [path for path in needed if is_excluded(path, rules)] == []

    for unwanted in (
        ".git/config",
        ".dev/env.sh",
        ".cache/azurite/x",
        "tests/conftest.py",
        "noxfile.py",
        "storage-plugin/src/snakemake_storage_plugin_azblob/__pycache__/x.pyc",
    ):
        assert is_excluded(unwanted, rules), f"{unwanted} would be sent to the build"
