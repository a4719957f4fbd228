"""PersistentVolumeClaims mounted into every job pod (`--kubernetes-persistent-volumes`).

The setting and its `name:path` syntax are those of the upstream 0.5.1 plugin: the claim
`name` is mounted at `path` in the job container.
"""

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from snakemake_interface_common.exceptions import WorkflowError

from snakemake_executor_plugin_kubernetes.naming import is_dns_label, is_dns_subdomain

SETTING = "--kubernetes-persistent-volumes"
# Mount paths the rendered pod uses itself.
RESERVED_PATHS = ("/workdir",)


@dataclass(frozen=True)
class PersistentVolume:
    claim: str  # name of the PersistentVolumeClaim, in the run's namespace
    path: str  # absolute mount path in the job container

    def unparse(self) -> str:
        return f"{self.claim}:{self.path}"


def parse_persistent_volume(spec: str) -> PersistentVolume:
    claim, sep, path = str(spec).partition(":")
    if not sep or ":" in path:
        raise WorkflowError(f"Invalid persistent volume {spec!r} in {SETTING}: expected name:path.")
    if not is_dns_subdomain(claim):
        raise WorkflowError(
            f"Invalid persistent volume {spec!r} in {SETTING}: {claim!r} is not a valid "
            "PersistentVolumeClaim name (lowercase letters, digits, '-' and '.')."
        )
    mount = PurePosixPath(path)
    if not mount.is_absolute() or ".." in mount.parts:
        raise WorkflowError(
            f"Invalid persistent volume {spec!r} in {SETTING}: the path must be absolute "
            "and without '..'."
        )
    if str(mount) == "/" or str(mount) in RESERVED_PATHS:
        raise WorkflowError(
            f"Invalid persistent volume {spec!r} in {SETTING}: {mount!s} is used by the "
            "job pod itself; choose another path."
        )
    return PersistentVolume(claim=claim, path=str(mount))


def parse_persistent_volumes(specs: list[str] | str | None) -> list[PersistentVolume]:
    """The setting's parse_func: `name:path` texts (or PersistentVolumes) -> volumes."""
    if specs is None:
        return []
    if isinstance(specs, (str, PersistentVolume)):
        specs = [specs]
    volumes = [s if isinstance(s, PersistentVolume) else parse_persistent_volume(s) for s in specs]
    paths = [v.path for v in volumes]
    doubled = sorted({p for p in paths if paths.count(p) > 1})
    if doubled:
        raise WorkflowError(f"Invalid {SETTING}: more than one volume at {', '.join(doubled)}.")
    return volumes


def unparse_persistent_volumes(volumes: list[PersistentVolume]) -> list[str]:
    return [volume.unparse() for volume in volumes]


def volume_names(volumes: list[PersistentVolume]) -> dict[str, str]:
    """Claim -> pod-level volume name: the claim name, as 0.5.1 used it, where that is a
    valid volume name (a DNS label, not ours), else `pvc-N`. A claim mounted at several
    paths is one volume with several mounts."""
    names: dict[str, str] = {}
    taken = {"workdir"}
    for volume in volumes:
        if volume.claim in names:
            continue
        name = volume.claim
        if not is_dns_label(name) or name in taken:
            index = len(names)
            while (name := f"pvc-{index}") in taken or name in {v.claim for v in volumes}:
                index += 1
        names[volume.claim] = name
        taken.add(name)
    return names


def pod_volumes(volumes: list[PersistentVolume]) -> list[dict[str, Any]]:
    return [
        {"name": name, "persistentVolumeClaim": {"claimName": claim}}
        for claim, name in volume_names(volumes).items()
    ]


def volume_mounts(volumes: list[PersistentVolume]) -> list[dict[str, Any]]:
    names = volume_names(volumes)
    return [{"name": names[v.claim], "mountPath": v.path} for v in volumes]
