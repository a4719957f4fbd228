"""Snakemake resources -> container resources, node selectors and deadlines."""

from dataclasses import dataclass, field
from typing import Any

from kubernetes.utils import parse_quantity
from snakemake_interface_common.exceptions import WorkflowError

from snakemake_executor_plugin_kubernetes.facts import JobFacts
from snakemake_executor_plugin_kubernetes.naming import check_label_value
from snakemake_executor_plugin_kubernetes.parsing import parse_bool

GPU_VENDORS = ("nvidia", "amd")
GPU_MODEL_LABELS = {"nvidia": "nvidia.com/gpu.product", "amd": "amd.com/gpu.product-name"}
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"


@dataclass
class ResourcePlan:
    requests: dict[str, str] = field(default_factory=dict)
    limits: dict[str, str] = field(default_factory=dict)
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, str]] = field(default_factory=list)
    active_deadline_seconds: int | None = None


def _error(facts: JobFacts, name: str, value: Any, expected: str) -> WorkflowError:
    return WorkflowError(
        f"Invalid resource {name}={value!r} in {facts.kind} {facts.rule} "
        f"(jobid {facts.jobid}): expected {expected}."
    )


def _number(facts: JobFacts, name: str, *, positive: bool = False) -> float | None:
    value = facts.resources.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        raise _error(facts, name, value, "a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _error(facts, name, value, "a number") from None
    if number != number or number < 0 or (positive and number == 0):
        raise _error(facts, name, value, "a positive number" if positive else "a number >= 0")
    return number


def _integer(facts: JobFacts, name: str) -> int | None:
    number = _number(facts, name)
    if number is None:
        return None
    if number != int(number):
        raise _error(facts, name, facts.resources[name], "a whole number")
    return int(number)


def _checked(quantity: str, facts: JobFacts, name: str) -> str:
    try:
        parse_quantity(quantity)
    except ValueError:
        raise _error(facts, name, facts.resources.get(name), "a valid quantity") from None
    return quantity


def rule_mem_mb(facts: JobFacts) -> int | None:
    """The job's own mem_mb (from its rule, or --default-resources as Snakemake applied
    them); None when it has none (0 counts as none: every pod gets a memory request)."""
    mem_mb = _integer(facts, "mem_mb")
    return mem_mb if mem_mb else None


def limits_equal_requests(facts: JobFacts) -> bool:
    """The 0.5.1 resource `scale`: 0 (False) sets limits equal to the requests for CPU,
    memory, disk and GPU; 1 (True, the default) sets no limits beyond our own."""
    scale = facts.resources.get("scale")
    if scale is None:
        return False
    return not parse_bool(scale, f"resource scale of {facts.kind} {facts.rule}")


def plan_resources(
    facts: JobFacts,
    *,
    cpu_scalar: float,
    memory_limit_scalar: float,
    default_mem_mb: int,
    cpu_limit_scalar: float = 0.0,
) -> ResourcePlan:
    plan = ResourcePlan()
    fixed = limits_equal_requests(facts)

    cores = _number(facts, "_cores")
    if cores is None:
        cores = float(facts.threads)
    millicores = max(1, int(cores * cpu_scalar * 1000))
    plan.requests["cpu"] = _checked(f"{millicores}m", facts, "_cores")
    if fixed:
        # As 0.5.1: the limit is the threads, unscaled, so the request fits under it.
        plan.limits["cpu"] = _checked(f"{max(1, int(cores * 1000))}m", facts, "_cores")
    elif cpu_limit_scalar > 0:
        limit = max(millicores, int(millicores * cpu_limit_scalar))
        plan.limits["cpu"] = _checked(f"{limit}m", facts, "_cores")

    mem_mb = rule_mem_mb(facts) or default_mem_mb
    plan.requests["memory"] = _checked(f"{mem_mb}M", facts, "mem_mb")
    if fixed:
        plan.limits["memory"] = plan.requests["memory"]
    elif memory_limit_scalar > 0:
        limit_mb = max(mem_mb, int(mem_mb * memory_limit_scalar))
        plan.limits["memory"] = _checked(f"{limit_mb}M", facts, "mem_mb")

    disk_mb = _integer(facts, "disk_mb")
    if disk_mb is not None and disk_mb > 0:
        plan.requests["ephemeral-storage"] = _checked(f"{disk_mb}M", facts, "disk_mb")
        if fixed:
            plan.limits["ephemeral-storage"] = plan.requests["ephemeral-storage"]

    _plan_gpu(facts, plan)

    runtime = _number(facts, "runtime")
    if runtime is not None and runtime > 0:
        plan.active_deadline_seconds = max(1, round(runtime * 60))

    machine_type = facts.resources.get("machine_type")
    if machine_type:
        origin = f"resource machine_type of {facts.kind} {facts.rule}"
        plan.node_selector[INSTANCE_TYPE_LABEL] = check_label_value(str(machine_type), origin)
    return plan


def _plan_gpu(facts: JobFacts, plan: ResourcePlan) -> None:
    gpus = _integer(facts, "gpu")
    if not gpus:
        return
    vendor = str(facts.resources.get("gpu_manufacturer") or "nvidia").lower()
    if vendor not in GPU_VENDORS:
        raise _error(
            facts, "gpu_manufacturer", facts.resources.get("gpu_manufacturer"), "nvidia or amd"
        )
    resource = f"{vendor}.com/gpu"
    plan.requests[resource] = str(gpus)
    plan.limits[resource] = str(gpus)
    # GPU node pools are commonly tainted with the device resource name.
    plan.tolerations.append({"key": resource, "operator": "Exists", "effect": "NoSchedule"})
    model = facts.resources.get("gpu_model")
    if model:
        origin = f"resource gpu_model of {facts.kind} {facts.rule}"
        plan.node_selector[GPU_MODEL_LABELS[vendor]] = check_label_value(str(model), origin)
