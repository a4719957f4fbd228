"""Pod Security admission: the checks of the Pod Security Standards, evaluated from a
namespace's ``pod-security.kubernetes.io/*`` labels, with the real messages.

Source of every reason and detail: kubernetes/pod-security-admission, policy/check_*.go
(e.g. check_allowPrivilegeEscalation.go, check_runAsNonRoot.go); the order of the checks
(baseline IDs sorted, then restricted IDs sorted) is policy/registry.go; the aggregation
"reason (detail), reason (detail)" is policy/checks.go AggregateCheckResult.ForbiddenDetail;
"violates PodSecurity %q: %s" and "would violate PodSecurity %q: %s" are admission/admission.go
EvaluatePod; warn defaults to the enforce level when unset is api/helpers.go PolicyToEvaluate.

Not evaluated (documented in docs/local-cluster.md): appArmorProfile, procMount, seLinuxOptions,
sysctls, windowsHostProcess, hostProbesAndHostLifecycle and the seccomp annotations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

LEVELS = ("privileged", "baseline", "restricted")
ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
WARN_LABEL = "pod-security.kubernetes.io/warn"

# policy/check_capabilities_baseline.go capabilities_allowed_1_0
_BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
# policy/check_restrictedVolumes.go: the volume sources restricted allows.
_ALLOWED_VOLUME_SOURCES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "image",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
_VALID_SECCOMP = ("RuntimeDefault", "Localhost")

Spec = dict[str, Any]
Finding = tuple[str, str]  # (ForbiddenReason, ForbiddenDetail)


@dataclass(frozen=True)
class LevelVersion:
    level: str
    version: str = "latest"

    def __str__(self) -> str:
        return f"{self.level}:{self.version}"


def _join_quote(items: list[str]) -> str:
    return '"' + '", "'.join(items) + '"' if items else ""


def _plural(singular: str, plural: str, count: int) -> str:
    return singular if count == 1 else plural


def _containers(spec: Spec) -> Iterator[dict[str, Any]]:
    """policy/visitor.go: init containers, containers, ephemeral containers."""
    for group in ("initContainers", "containers", "ephemeralContainers"):
        for container in spec.get(group) or []:
            if isinstance(container, dict):
                yield container


def _sc(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("securityContext") or {}


def _names_where(spec: Spec, test: Callable[[dict[str, Any]], bool]) -> list[str]:
    return [c.get("name", "") for c in _containers(spec) if test(c)]


def _containers_phrase(names: list[str]) -> str:
    return f"{_plural('container', 'containers', len(names))} {_join_quote(names)}"


# ----- baseline -------------------------------------------------------------------------------
def _capabilities_baseline(spec: Spec) -> Finding | None:
    bad: list[str] = []
    added: set[str] = set()
    for container in _containers(spec):
        extra = [
            str(c)
            for c in (_sc(container).get("capabilities") or {}).get("add") or []
            if str(c) not in _BASELINE_CAPABILITIES
        ]
        if extra:
            bad.append(container.get("name", ""))
            added.update(extra)
    if not bad:
        return None
    return (
        "non-default capabilities",
        f"{_containers_phrase(bad)} must not include {_join_quote(sorted(added))} in "
        "securityContext.capabilities.add",
    )


def _host_namespaces(spec: Spec) -> Finding | None:
    used = [f"{field}=true" for field in ("hostNetwork", "hostPID", "hostIPC") if spec.get(field)]
    return ("host namespaces", ", ".join(used)) if used else None


def _host_path_volumes(spec: Spec) -> Finding | None:
    names = [v.get("name", "") for v in spec.get("volumes") or [] if "hostPath" in v]
    if not names:
        return None
    return "hostPath volumes", f"{_plural('volume', 'volumes', len(names))} {_join_quote(names)}"


def _host_ports(spec: Spec) -> Finding | None:
    bad: list[str] = []
    ports: set[int] = set()
    for container in _containers(spec):
        used = [int(p["hostPort"]) for p in container.get("ports") or [] if p.get("hostPort")]
        if used:
            bad.append(container.get("name", ""))
            ports.update(used)
    if not bad:
        return None
    listed = sorted(str(p) for p in ports)  # sets.NewString(...).List(): sorted as strings
    return (
        "hostPort",
        f"{_containers_phrase(bad)} {_plural('uses', 'use', len(bad))} "
        f"{_plural('hostPort', 'hostPorts', len(listed))} {', '.join(listed)}",
    )


def _privileged(spec: Spec) -> Finding | None:
    bad = _names_where(spec, lambda c: _sc(c).get("privileged") is True)
    if not bad:
        return None
    return "privileged", f"{_containers_phrase(bad)} must not set securityContext.privileged=true"


def _seccomp_setters(spec: Spec, require: bool) -> Finding | None:
    """check_seccompProfile_baseline.go (require=False) and _restricted.go (require=True)."""
    bad_setters: list[str] = []
    bad_values: set[str] = set()
    pod_type = (_sc(spec).get("seccompProfile") or {}).get("type")
    pod_set = False
    if pod_type is not None:
        if pod_type not in _VALID_SECCOMP:
            bad_setters.append("pod")
            bad_values.add(str(pod_type))
        else:
            pod_set = True
    explicit: list[str] = []
    implicit: list[str] = []
    for container in _containers(spec):
        kind = (_sc(container).get("seccompProfile") or {}).get("type")
        if kind is not None:
            if kind not in _VALID_SECCOMP:
                explicit.append(container.get("name", ""))
                bad_values.add(str(kind))
        elif not pod_set:
            implicit.append(container.get("name", ""))
    if explicit:
        bad_setters.append(_containers_phrase(explicit))
    if bad_setters:
        return (
            "seccompProfile",
            f"{' and '.join(bad_setters)} must not set securityContext.seccompProfile.type to "
            f"{_join_quote(sorted(bad_values))}",
        )
    if require and implicit:
        return (
            "seccompProfile",
            f"pod or {_containers_phrase(implicit)} must set "
            'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"',
        )
    return None


def _seccomp_baseline(spec: Spec) -> Finding | None:
    return _seccomp_setters(spec, require=False)


# ----- restricted -----------------------------------------------------------------------------
def _allow_privilege_escalation(spec: Spec) -> Finding | None:
    bad = _names_where(spec, lambda c: _sc(c).get("allowPrivilegeEscalation") is not False)
    if not bad:
        return None
    return (
        "allowPrivilegeEscalation != false",
        f"{_containers_phrase(bad)} must set securityContext.allowPrivilegeEscalation=false",
    )


def _capabilities_restricted(spec: Spec) -> Finding | None:
    missing_drop: list[str] = []
    adding: list[str] = []
    forbidden: set[str] = set()
    for container in _containers(spec):
        capabilities = _sc(container).get("capabilities")
        if capabilities is None:
            missing_drop.append(container.get("name", ""))
            continue
        if "ALL" not in (capabilities.get("drop") or []):
            missing_drop.append(container.get("name", ""))
        extra = [str(c) for c in capabilities.get("add") or [] if c != "NET_BIND_SERVICE"]
        if extra:
            adding.append(container.get("name", ""))
            forbidden.update(extra)
    details = []
    if missing_drop:
        details.append(
            f'{_containers_phrase(missing_drop)} must set securityContext.capabilities.drop=["ALL"]'
        )
    if adding:
        details.append(
            f"{_containers_phrase(adding)} must not include {_join_quote(sorted(forbidden))} in "
            "securityContext.capabilities.add"
        )
    return ("unrestricted capabilities", "; ".join(details)) if details else None


def _restricted_volumes(spec: Spec) -> Finding | None:
    bad: list[str] = []
    kinds: set[str] = set()
    for volume in spec.get("volumes") or []:
        sources = [k for k in volume if k != "name"]
        if any(s in _ALLOWED_VOLUME_SOURCES for s in sources):
            continue
        bad.append(volume.get("name", ""))
        kinds.add(sources[0] if sources else "unknown")
    if not bad:
        return None
    return (
        "restricted volume types",
        f"{_plural('volume', 'volumes', len(bad))} {_join_quote(bad)} "
        f"{_plural('uses', 'use', len(bad))} "
        f"{_plural('restricted volume type', 'restricted volume types', len(kinds))} "
        f"{_join_quote(sorted(kinds))}",
    )


def _run_as_non_root(spec: Spec) -> Finding | None:
    if spec.get("hostUsers") is False:
        return None
    bad_setters: list[str] = []
    pod_value = _sc(spec).get("runAsNonRoot")
    pod_non_root = pod_value is True
    if pod_value is False:
        bad_setters.append("pod")
    explicit: list[str] = []
    implicit: list[str] = []
    for container in _containers(spec):
        value = _sc(container).get("runAsNonRoot")
        if value is not None:
            if value is False:
                explicit.append(container.get("name", ""))
        elif not pod_non_root:
            implicit.append(container.get("name", ""))
    if explicit:
        bad_setters.append(_containers_phrase(explicit))
    if bad_setters:
        return (
            "runAsNonRoot != true",
            f"{' and '.join(bad_setters)} must not set securityContext.runAsNonRoot=false",
        )
    if implicit:
        return (
            "runAsNonRoot != true",
            f"pod or {_containers_phrase(implicit)} must set securityContext.runAsNonRoot=true",
        )
    return None


def _run_as_user(spec: Spec) -> Finding | None:
    if spec.get("hostUsers") is False:
        return None
    bad_setters = ["pod"] if _sc(spec).get("runAsUser") == 0 else []
    explicit = _names_where(spec, lambda c: _sc(c).get("runAsUser") == 0)
    if explicit:
        bad_setters.append(_containers_phrase(explicit))
    if not bad_setters:
        return None
    return "runAsUser=0", f"{' and '.join(bad_setters)} must not set runAsUser=0"


def _seccomp_restricted(spec: Spec) -> Finding | None:
    return _seccomp_setters(spec, require=True)


Check = Callable[[Spec], Finding | None]
# (check ID, level, function, IDs it overrides), sorted as policy/registry.go orders them.
_BASELINE: list[tuple[str, Check]] = [
    ("capabilities_baseline", _capabilities_baseline),
    ("hostNamespaces", _host_namespaces),
    ("hostPathVolumes", _host_path_volumes),
    ("hostPorts", _host_ports),
    ("privileged", _privileged),
    ("seccompProfile_baseline", _seccomp_baseline),
]
_RESTRICTED: list[tuple[str, Check, str | None]] = [
    ("allowPrivilegeEscalation", _allow_privilege_escalation, None),
    ("capabilities_restricted", _capabilities_restricted, "capabilities_baseline"),
    ("restrictedVolumes", _restricted_volumes, "hostPathVolumes"),
    ("runAsNonRoot", _run_as_non_root, None),
    ("runAsUser", _run_as_user, None),
    ("seccompProfile_restricted", _seccomp_restricted, "seccompProfile_baseline"),
]


def evaluate(level: str, spec: Spec) -> list[Finding]:
    """The failed checks of a level, in the order the real admission reports them."""
    if level == "privileged":
        return []
    overridden = {o for _, _, o in _RESTRICTED if o} if level == "restricted" else set()
    checks: list[Check] = [fn for cid, fn in _BASELINE if cid not in overridden]
    if level == "restricted":
        checks += [fn for _, fn, _ in _RESTRICTED]
    return [finding for check in checks if (finding := check(spec)) is not None]


def detail(findings: list[Finding]) -> str:
    return ", ".join(f"{reason} ({text})" if text else reason for reason, text in findings)


@dataclass(frozen=True)
class NamespacePolicy:
    enforce: LevelVersion
    warn: LevelVersion


def namespace_policy(labels: dict[str, str]) -> NamespacePolicy:
    """api/helpers.go PolicyToEvaluate for enforce and warn (unparseable labels: privileged;
    the real admission fails closed for enforce only on the version, which we ignore)."""

    def level(key: str) -> str | None:
        value = labels.get(key)
        return value if value in LEVELS else None

    enforce_level = level(ENFORCE_LABEL) or "privileged"
    enforce = LevelVersion(enforce_level, labels.get(f"{ENFORCE_LABEL}-version") or "latest")
    warn_level = level(WARN_LABEL)
    if warn_level is None and LEVELS.index(enforce_level) > 0:
        warn = LevelVersion(enforce_level, labels.get(f"{WARN_LABEL}-version") or enforce.version)
    else:
        warn = LevelVersion(
            warn_level or "privileged", labels.get(f"{WARN_LABEL}-version") or "latest"
        )
    return NamespacePolicy(enforce, warn)
