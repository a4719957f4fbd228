"""Admission of new pods, in the order a real API server runs its plugins: mutating first
(sidecar injection as a mutating webhook does it, LimitRanger defaults), then validating
(PodSecurity, LimitRanger min/max, ResourceQuota). A rejection is a 403 Forbidden Status
(``pods "NAME" is forbidden: ...``, apimachinery errors.NewForbidden); warnings are returned
for the ``Warning`` response header.

Sources of the messages:
- PodSecurity: see ``localcluster.podsecurity``;
- LimitRanger: kubernetes plugin/pkg/admission/limitranger/admission.go (minConstraint,
  maxConstraint, mergePodResourceRequirements and its ``kubernetes.io/limit-ranger``
  annotation); several violations are joined as utilerrors.NewAggregate prints them, ``[a, b]``;
- ResourceQuota: staging/src/k8s.io/apiserver/pkg/admission/plugin/resourcequota/controller.go
  (``exceeded quota: %s, requested: %s, used: %s, limited: %s``, prettyPrint ``k=v,k=v`` sorted,
  ``failed quota: %s: %v``) and pkg/quota/v1/evaluator/core/pods.go (``must specify %s``).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from localcluster import podsecurity
from localcluster.errors import ApiError
from localcluster.quantity import parse_quantity

if TYPE_CHECKING:
    from localcluster.store import Store

SIDECAR_LABEL = "localcluster.io/sidecar-injection"  # value: classic | native
SIDECAR_NAME = "mesh-proxy"
LIMIT_RANGER_ANNOTATION = "kubernetes.io/limit-ranger"
TERMINAL_PHASES = ("Succeeded", "Failed")
_COMPUTE = ("cpu", "memory", "ephemeral-storage")


def forbidden(resource: str, group: str, name: str, message: str) -> ApiError:
    """apimachinery errors.NewForbidden: `<resource>[.group] "name" is forbidden: message`."""
    qualified = f"{resource}.{group}" if group else resource
    subject = f'{qualified} "{name}"' if name else qualified
    # metav1.StatusDetails drops empty fields (omitempty): no "group" for the core group.
    details = {"name": name, "group": group, "kind": resource}
    return ApiError(
        403,
        "Forbidden",
        f"{subject} is forbidden: {message}",
        {key: value for key, value in details.items() if value},
    )


def format_quantity(resource: str, value: Decimal) -> str:
    """A canonical-enough quantity: milli-units for fractional values, plain integers else."""
    if value == value.to_integral_value():
        return str(int(value))
    millis = value * 1000
    if millis == millis.to_integral_value():
        return f"{int(millis)}m"
    return str(value.normalize())


# ----- sidecar injection (a mutating webhook) -------------------------------------------------
def sidecar_container(native: bool) -> dict[str, Any]:
    """A long-running proxy as Istio or Linkerd inject it; it exits 0 on SIGTERM and passes
    Pod Security "restricted" (webhooks run before PodSecurity validates)."""
    container: dict[str, Any] = {
        "name": SIDECAR_NAME,
        "image": "snakemake-k8s-azblob:sidecar",
        "command": ["/bin/sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"],
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
            "runAsUser": 1337,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent",
    }
    if native:
        container["restartPolicy"] = "Always"
    return container


def inject_sidecar(pod: dict[str, Any], mode: str) -> None:
    spec = pod.setdefault("spec", {})
    names = {
        c.get("name") for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])
    }
    if SIDECAR_NAME in names or mode not in ("classic", "native"):
        return
    if mode == "native":
        spec.setdefault("initContainers", []).append(sidecar_container(native=True))
    else:
        spec.setdefault("containers", []).append(sidecar_container(native=False))


# ----- LimitRanger ------------------------------------------------------------------------------
def _container_limit_items(limit_ranges: list[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    for limit_range in limit_ranges:
        for item in (limit_range.get("spec") or {}).get("limits") or []:
            if item.get("type") == "Container":
                yield item


def apply_limit_range_defaults(pod: dict[str, Any], limit_ranges: list[dict[str, Any]]) -> None:
    default_limits: dict[str, Any] = {}
    default_requests: dict[str, Any] = {}
    for item in _container_limit_items(limit_ranges):
        default_limits.update(item.get("default") or {})
        default_requests.update(item.get("defaultRequest") or {})
    if not default_limits and not default_requests:
        return
    notes: list[str] = []
    for container in (pod.get("spec") or {}).get("containers") or []:
        resources = container.setdefault("resources", {})
        limits = resources.setdefault("limits", {})
        requests = resources.setdefault("requests", {})
        set_limits = sorted(k for k in default_limits if k not in limits)
        set_requests = sorted(k for k in default_requests if k not in requests)
        limits.update({k: default_limits[k] for k in set_limits})
        requests.update({k: default_requests[k] for k in set_requests})
        name = container.get("name", "")
        if set_requests:
            notes.append(f"{', '.join(set_requests)} request for container {name}")
        if set_limits:
            notes.append(f"{', '.join(set_limits)} limit for container {name}")
        if not limits:
            del resources["limits"]
        if not requests:
            del resources["requests"]
    if notes:
        annotations = pod.setdefault("metadata", {}).setdefault("annotations", {})
        annotations[LIMIT_RANGER_ANNOTATION] = "LimitRanger plugin set: " + "; ".join(notes)


def limit_range_violations(pod: dict[str, Any], limit_ranges: list[dict[str, Any]]) -> list[str]:
    errors: list[str] = []
    for item in _container_limit_items(limit_ranges):
        for container in (pod.get("spec") or {}).get("containers") or []:
            resources = container.get("resources") or {}
            requests = resources.get("requests") or {}
            limits = resources.get("limits") or {}
            for name, bound in (item.get("min") or {}).items():
                enforced = parse_quantity(bound)
                if name not in requests:
                    errors.append(
                        f"minimum {name} usage per Container is {bound}.  No request is specified"
                    )
                elif parse_quantity(requests[name]) < enforced:
                    errors.append(
                        f"minimum {name} usage per Container is {bound}, but request is "
                        f"{requests[name]}"
                    )
                elif name in limits and parse_quantity(limits[name]) < enforced:
                    errors.append(
                        f"minimum {name} usage per Container is {bound}, but limit is "
                        f"{limits[name]}"
                    )
            for name, bound in (item.get("max") or {}).items():
                enforced = parse_quantity(bound)
                if name not in limits:
                    errors.append(
                        f"maximum {name} usage per Container is {bound}.  No limit is specified"
                    )
                elif parse_quantity(limits[name]) > enforced:
                    errors.append(
                        f"maximum {name} usage per Container is {bound}, but limit is "
                        f"{limits[name]}"
                    )
                elif name in requests and parse_quantity(requests[name]) > enforced:
                    errors.append(
                        f"maximum {name} usage per Container is {bound}, but request is "
                        f"{requests[name]}"
                    )
    return errors


# ----- ResourceQuota ----------------------------------------------------------------------------
def pod_usage(pod: dict[str, Any]) -> dict[str, Decimal]:
    """What a pod charges to a quota (pkg/quota/v1/evaluator/core/pods.go): requests and limits
    of its containers (plus native sidecars), at least those of its largest init container."""
    spec = pod.get("spec") or {}
    usage: dict[str, Decimal] = {"pods": Decimal(1), "count/pods": Decimal(1)}
    sums: dict[str, Decimal] = {}
    init_max: dict[str, Decimal] = {}
    sidecars = [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    for container in (spec.get("containers") or []) + sidecars:
        for key, value in _container_amounts(container).items():
            sums[key] = sums.get(key, Decimal(0)) + value
    for container in spec.get("initContainers") or []:
        if container.get("restartPolicy") == "Always":
            continue
        for key, value in _container_amounts(container).items():
            init_max[key] = max(init_max.get(key, Decimal(0)), value)
    for key in set(sums) | set(init_max):
        usage[key] = max(sums.get(key, Decimal(0)), init_max.get(key, Decimal(0)))
    for name in _COMPUTE:
        if f"requests.{name}" in usage:
            usage[name] = usage[f"requests.{name}"]
    return usage


def _container_amounts(container: dict[str, Any]) -> dict[str, Decimal]:
    resources = container.get("resources") or {}
    amounts: dict[str, Decimal] = {}
    for kind in ("requests", "limits"):
        for name, value in (resources.get(kind) or {}).items():
            try:
                amounts[f"{kind}.{name}"] = parse_quantity(value)
            except ValueError:
                continue
    return amounts


def _missing_limits(pod: dict[str, Any], hard: Iterable[str]) -> str | None:
    missing: dict[str, list[str]] = {}
    spec = pod.get("spec") or {}
    for tracked in hard:
        kind, _, name = tracked.partition(".")
        if kind not in ("requests", "limits") or name not in ("cpu", "memory"):
            continue
        for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
            if name not in ((container.get("resources") or {}).get(kind) or {}):
                missing.setdefault(tracked, []).append(container.get("name", ""))
    if not missing:
        return None
    return "must specify " + "; ".join(
        f"{key} for: {','.join(sorted(names))}" for key, names in sorted(missing.items())
    )


def quota_used(store: Store, namespace: str, hard: Iterable[str]) -> dict[str, Decimal]:
    tracked = set(hard)
    used = {key: Decimal(0) for key in tracked}
    for pod in store.list("pods", namespace):
        if (pod.get("status") or {}).get("phase") in TERMINAL_PHASES:
            continue
        for key, value in pod_usage(pod).items():
            if key in tracked:
                used[key] += value
    return used


def _pretty(amounts: dict[str, Decimal], keys: list[str]) -> str:
    return ",".join(f"{k}={format_quantity(k, amounts.get(k, Decimal(0)))}" for k in keys)


def check_quotas(store: Store, namespace: str, pod: dict[str, Any]) -> str | None:
    """The first quota this pod would exceed, as the admission plugin words it."""
    requested = pod_usage(pod)
    for quota in store.list("resourcequotas", namespace):
        name = quota["metadata"]["name"]
        hard_text = (quota.get("spec") or {}).get("hard") or {}
        hard = {k: parse_quantity(v) for k, v in hard_text.items()}
        missing = _missing_limits(pod, hard)
        if missing:
            return f"failed quota: {name}: {missing}"
        used = quota_used(store, namespace, hard)
        exceeded = sorted(
            key for key in hard if key in requested and used[key] + requested[key] > hard[key]
        )
        if exceeded:
            return (
                f"exceeded quota: {name}, requested: {_pretty(requested, exceeded)}, "
                f"used: {_pretty(used, exceeded)}, limited: {_pretty(hard, exceeded)}"
            )
    return None


def refresh_quota_status(store: Store, namespace: str) -> None:
    """Keep status.hard and status.used current, as the resource-quota controller does."""
    for quota in store.list("resourcequotas", namespace):
        hard_text = (quota.get("spec") or {}).get("hard") or {}
        used = quota_used(store, namespace, hard_text)
        status = {
            "hard": dict(hard_text),
            "used": {k: format_quantity(k, v) for k, v in sorted(used.items())},
        }
        if quota.get("status") != status:

            def write(obj: dict[str, Any], status: dict[str, Any] = status) -> None:
                obj["status"] = status

            store.mutate("resourcequotas", namespace, quota["metadata"]["name"], write)


# ----- the chain ---------------------------------------------------------------------------------
class Admission:
    """Called by the store for every create (defaults applied, name generated)."""

    def __init__(self, store: Store, service_account_tokens: Any = None) -> None:
        self.store = store
        # localcluster.rbac.Rbac: fills new service-account-token Secrets (token controller)
        self.service_account_tokens = service_account_tokens

    def _namespace_labels(self, namespace: str) -> dict[str, str]:
        ns = self.store.get("namespaces", None, namespace) or {}
        return (ns.get("metadata") or {}).get("labels") or {}

    def mutate(self, resource: str, namespace: str | None, obj: dict[str, Any]) -> None:
        if resource == "secrets" and namespace and self.service_account_tokens is not None:
            self.service_account_tokens.fill_token_secret(namespace, obj)
        if resource != "pods" or not namespace:
            return
        mode = self._namespace_labels(namespace).get(SIDECAR_LABEL)
        if mode:
            inject_sidecar(obj, mode)
        apply_limit_range_defaults(obj, self.store.list("limitranges", namespace))

    def validate(self, resource: str, namespace: str | None, obj: dict[str, Any]) -> list[str]:
        """Raise the 403 of the first plugin that refuses; return warnings otherwise."""
        if not namespace:
            return []
        warnings: list[str] = []
        if resource in ("pods", "jobs"):
            warnings += self._pod_security(resource, namespace, obj)
        if resource != "pods":
            return warnings
        name = obj["metadata"].get("name", "")
        errors = limit_range_violations(obj, self.store.list("limitranges", namespace))
        if errors:
            text = errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
            raise forbidden("pods", "", name, text)
        refusal = check_quotas(self.store, namespace, obj)
        if refusal:
            raise forbidden("pods", "", name, refusal)
        return warnings

    def _pod_security(self, resource: str, namespace: str, obj: dict[str, Any]) -> list[str]:
        policy = podsecurity.namespace_policy(self._namespace_labels(namespace))
        if resource == "pods":
            spec = obj.get("spec") or {}
            # Only pods are enforced; workload templates only warn (admission.go).
            findings = podsecurity.evaluate(policy.enforce.level, spec)
            if findings:
                raise forbidden(
                    "pods",
                    "",
                    obj["metadata"].get("name", ""),
                    f'violates PodSecurity "{policy.enforce}": {podsecurity.detail(findings)}',
                )
        else:
            spec = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
        findings = podsecurity.evaluate(policy.warn.level, spec)
        if findings:
            return [f'would violate PodSecurity "{policy.warn}": {podsecurity.detail(findings)}']
        return []


def warning_header(warnings: list[str]) -> str:
    """k8s.io/apimachinery/pkg/util/net NewWarningHeader: `299 - "text"` with \\ and " escaped;
    several warnings are separate header values joined by a comma."""
    quoted = []
    for text in warnings:
        escaped = text.replace("\\", "\\\\").replace('"', '\\"')
        quoted.append(f'299 - "{escaped}"')
    return ", ".join(quoted)
