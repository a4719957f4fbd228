"""Pure parts of the node agent: image names, scheduling predicates, env expansion, image keys."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from localcluster.nodeagent import images
from localcluster.nodeagent.images import (
    CACHE_VARIABLE,
    SOURCES_VARIABLE,
    ImageCatalog,
    ImageConfigError,
    ImageNotFound,
    default_cache_dir,
    flavour_of,
    sources_from_environment,
)
from localcluster.nodeagent.kubelet import qualified_image
from localcluster.nodeagent.nodeobjects import capacity_of
from localcluster.nodeagent.podenv import expand_references
from localcluster.nodeagent.predicates import (
    insufficient_resources,
    pod_requests,
    tolerates,
    unschedulable_message,
)
from localcluster.nodeagent.processes import memory_by_process_group
from localcluster.nodes import NodeSpec


@pytest.mark.parametrize(
    ("image", "flavour"),
    [
        ("snakemake/snakemake:v9.27.1", "base"),
        ("docker.io/snakemake/snakemake", "base"),
        ("myacr.azurecr.io/snakemake-k8s-azblob:0.1.0", "base"),
        ("localhost:5000/snakemake-k8s-azblob:dev", "base"),
        ("snakemake-k8s-azblob-bio:1", "bio"),
        ("ghcr.io/lab/snakemake-k8s-azblob-bio@sha256:" + "0" * 64, "bio"),
        ("snakemake-bare:v9", "bare"),
        ("localhost:5000/snakemake-bare:9.27.1", "bare"),
    ],
)
def test_image_names_map_to_flavours(image: str, flavour: str) -> None:
    assert flavour_of(image) == flavour


@pytest.mark.parametrize("image", ["python:3.12", "snakemake/other:1", "nosuch", ""])
def test_other_images_are_not_found(image: str) -> None:
    with pytest.raises(ImageNotFound):
        flavour_of(image)


def test_pull_errors_name_the_fully_qualified_reference() -> None:
    assert qualified_image("nosuch") == "docker.io/library/nosuch:latest"
    assert qualified_image("lab/tool:1") == "docker.io/lab/tool:1"
    assert qualified_image("myacr.azurecr.io/tool:2") == "myacr.azurecr.io/tool:2"
    assert qualified_image("localhost:5000/tool") == "localhost:5000/tool:latest"


def test_reference_expansion_follows_kubernetes_rules() -> None:
    env = {"A": "1", "B": "two"}
    assert expand_references("$(A)-$(B)", env) == "1-two"
    assert expand_references("$$(A) $(C) $A", env) == "$(A) $(C) $A"


def test_requests_add_containers_and_take_the_largest_init_container() -> None:
    def container(cpu: str, memory: str) -> dict:
        return {"resources": {"requests": {"cpu": cpu}, "limits": {"memory": memory}}}

    pod = {
        "spec": {
            "containers": [container("500m", "1Gi"), container("250m", "1Gi")],
            "initContainers": [container("2", "1Mi")],
        }
    }
    assert pod_requests(pod) == {
        "pods": Decimal(1),
        "cpu": Decimal(2),
        "memory": Decimal(2 * 2**30),
    }


def test_max_pods_sets_the_pods_capacity_and_a_full_node_has_too_many_pods() -> None:
    assert capacity_of(NodeSpec.from_dict({"name": "n"}))["pods"] == "250"
    assert capacity_of(NodeSpec.from_dict({"name": "n", "max_pods": 16}))["pods"] == "16"
    one_pod = {"pods": Decimal(1), "cpu": Decimal("0.01")}
    assert insufficient_resources(one_pod, {"pods": Decimal(0), "cpu": Decimal(4)}) == [
        "Too many pods"
    ]
    assert insufficient_resources(one_pod, {"pods": Decimal(1), "cpu": Decimal(4)}) == []


def test_toleration_matching() -> None:
    spot = {"key": "spot", "value": "true", "effect": "NoSchedule"}
    assert tolerates({"operator": "Exists"}, spot)
    assert tolerates({"key": "spot", "operator": "Exists"}, spot)
    assert tolerates({"key": "spot", "value": "true"}, spot)
    assert not tolerates({"key": "spot", "value": "false"}, spot)
    assert not tolerates({"key": "spot", "operator": "Exists", "effect": "NoExecute"}, spot)


def test_unschedulable_message_without_nodes() -> None:
    assert unschedulable_message(0, {}) == "no nodes available to schedule pods"


def test_image_key_follows_plugin_sources_and_deps_key_only_requirements(tmp_path: Path) -> None:
    sources = [tmp_path / "storage-plugin", tmp_path / "executor-plugin"]
    for source in sources:
        (source / "src" / "pkg").mkdir(parents=True)
        (source / "pyproject.toml").write_text(f"[project]\nname = '{source.name}'\n")
        (source / "src" / "pkg" / "mod.py").write_text("VALUE = 1\n")
    catalog = ImageCatalog(sources, cache_dir=tmp_path / "cache")
    assert catalog.distributions == ("storage-plugin", "executor-plugin")
    image_key, deps_key = catalog.image_key("base"), catalog._deps_key("base")
    assert catalog.image_key("bio") != image_key

    (tmp_path / "executor-plugin" / "src" / "pkg" / "mod.py").write_text("VALUE = 2\n")
    assert catalog.image_key("base") != image_key
    assert catalog._deps_key("base") == deps_key

    (tmp_path / "storage-plugin" / "pyproject.toml").write_text("[project]\nname = 'y'\n")
    assert catalog._deps_key("base") != deps_key


def test_image_key_follows_the_pod_site_module_copied_into_every_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Images live in a per-user cache shared by clones: what they hold is a copy, so the
    # key must change with the copied pod site module as with the plugin sources.
    source = tmp_path / "storage-plugin"
    (source / "src").mkdir(parents=True)
    (source / "pyproject.toml").write_text("[project]\nname = 'storage-plugin'\n")
    pod_site = tmp_path / "podsite"
    pod_site.mkdir()
    (pod_site / "sitecustomize.py").write_text("CPUS = 1\n")
    monkeypatch.setattr(images, "POD_SITE", pod_site)
    catalog = ImageCatalog([source], cache_dir=tmp_path / "cache")
    image_key, deps_key = catalog.image_key("base"), catalog._deps_key("base")

    (pod_site / "sitecustomize.py").write_text("CPUS = 2\n")
    assert catalog.image_key("base") != image_key
    assert catalog._deps_key("base") == deps_key


@pytest.mark.slow  # builds the images when the cache lacks them (`nox -s tests` builds first)
def test_an_image_refers_to_nothing_outside_the_cache() -> None:
    # One per-user cache serves every clone: an image that pointed into the clone that built
    # it would break, silently, when that clone is gone.
    catalog = ImageCatalog.from_environment()
    cache = catalog.cache_dir.resolve()
    for flavour in ("base", "bio", "bare"):
        image = catalog.build(flavour)
        pth_lines = [
            line
            for pth in image.site.glob("*.pth")
            for line in pth.read_text().splitlines()
            if line.strip()
        ]
        assert len(pth_lines) == 2, pth_lines  # the third-party layer and the pod site module
        for line in pth_lines:
            assert Path(line).resolve().is_relative_to(cache), (flavour, line)
            assert Path(line).is_dir(), (flavour, line)
        assert (image.root / "podsite" / "sitecustomize.py").is_file()
        for wrapper in image.bin_dir.iterdir():
            (target,) = [w.strip('"') for w in wrapper.read_text().split() if w.startswith('"/')]
            # not resolved: the venv's python is a link to the interpreter that built it
            assert Path(target).is_relative_to(catalog.cache_dir), (flavour, wrapper, target)
        direct_urls = [p.read_text() for p in image.site.glob("*.dist-info/direct_url.json")]
        assert not any('"editable": true' in url for url in direct_urls), flavour


def test_image_catalog_needs_plugin_sources_that_are_python_projects(tmp_path: Path) -> None:
    with pytest.raises(ImageConfigError, match="--plugin-source"):
        ImageCatalog([], cache_dir=tmp_path)
    with pytest.raises(ImageConfigError, match="not a Python project"):
        ImageCatalog([tmp_path], cache_dir=tmp_path)
    environ = {SOURCES_VARIABLE: f"/a{os.pathsep}/b", CACHE_VARIABLE: "/c"}
    assert sources_from_environment(environ) == (Path("/a"), Path("/b"))
    assert default_cache_dir(environ) == Path("/c")


FORKING_PARENT = """
import os, sys, time
held = bytearray(150 * 2**20)
for i in range(0, len(held), 4096):
    held[i] = 1
pid = os.fork()
if pid == 0:
    time.sleep(30)
    os._exit(0)
sys.stdout.write("forked\\n")
sys.stdout.flush()
os.waitpid(pid, 0)
"""


def test_a_forked_child_is_charged_once_until_it_execs() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", FORKING_PARENT], stdout=subprocess.PIPE, start_new_session=True
    )
    try:
        assert parent.stdout is not None and parent.stdout.readline() == b"forked\n"
        group = memory_by_process_group([parent.pid])[parent.pid]
        with open(f"/proc/{parent.pid}/stat", "rb") as stat:
            raw = stat.read()
        parent_rss = int(raw[raw.rindex(b")") + 2 :].split()[21]) * os.sysconf("SC_PAGE_SIZE")
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()

    # The group holds the 150 MiB once (a cgroup charges shared pages once), not twice.
    assert parent_rss > 150 * 2**20
    assert group < 1.3 * parent_rss, (group, parent_rss)
