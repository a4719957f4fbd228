"""Render one Snakemake job as a batch/v1 Job manifest (a plain dict)."""

from dataclasses import dataclass, field
from typing import Any

from snakemake_executor_plugin_kubernetes.config import RunConfig
from snakemake_executor_plugin_kubernetes.facts import JobFacts
from snakemake_executor_plugin_kubernetes.naming import (
    ATTEMPT_LABEL,
    JOBID_LABEL,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    RULE_LABEL,
    RUN_ID_LABEL,
    job_name,
    label_value,
)
from snakemake_executor_plugin_kubernetes.resources import plan_resources
from snakemake_executor_plugin_kubernetes.scheduling import plan_scheduling
from snakemake_executor_plugin_kubernetes.template import CONTAINER_NAME, apply_pod_template
from snakemake_executor_plugin_kubernetes.usage import TERMINATION_MESSAGE_PATH
from snakemake_executor_plugin_kubernetes.volumes import pod_volumes, volume_mounts

WORKDIR = "/workdir"
WORKDIR_VOLUME = "workdir"
RULE_ANNOTATION = "snakemake.io/rule-name"
# The job image's user and group (Dockerfile: USER 1000:1000).
JOB_USER_ID = 1000
JOB_GROUP_ID = 1000


@dataclass(frozen=True)
class RenderInput:
    run_id: str
    image: str
    command: str  # the shell command line of the spawned Snakemake job
    secret_name: str | None = None
    secret_env: tuple[str, ...] = ()  # env var names, each a key of the run Secret
    apptainer: bool = False  # job uses apptainer/singularity: needs a privileged container
    plain_env: dict[str, str] = field(default_factory=dict)  # non-secret env


def run_labels(run_id: str) -> dict[str, str]:
    return {RUN_ID_LABEL: run_id, MANAGED_BY_LABEL: MANAGED_BY_VALUE}


def render_job(config: RunConfig, facts: JobFacts, given: RenderInput) -> dict[str, Any]:
    settings = config.settings
    resources = plan_resources(
        facts,
        cpu_scalar=settings.cpu_scalar,
        memory_limit_scalar=settings.memory_limit_scalar,
        default_mem_mb=settings.default_mem_mb,
        cpu_limit_scalar=settings.cpu_limit_scalar,
    )
    sched = plan_scheduling(config, facts, apptainer=given.apptainer and facts.is_containerized)
    name = job_name(
        given.run_id, facts.rule, facts.jobid, facts.attempt, prefix=settings.job_name_prefix
    )
    labels = {
        **sched.labels,
        **run_labels(given.run_id),
        RULE_LABEL: label_value(facts.rule) or "job",
        JOBID_LABEL: label_value(str(facts.jobid)),
        ATTEMPT_LABEL: str(facts.attempt),
    }
    annotations = {**sched.annotations, RULE_ANNOTATION: facts.rule}

    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": sched.image or given.image,
        "command": ["/bin/sh", "-c"],
        "args": [given.command],
        "workingDir": WORKDIR,
        "volumeMounts": [
            {"name": WORKDIR_VOLUME, "mountPath": WORKDIR},
            *volume_mounts(settings.persistent_volumes),
        ],
        "resources": {"requests": resources.requests},
        "env": _env(given),
        "securityContext": _security_context(sched.privileged),
        # The kubelet's defaults, explicit: the usage recorder writes to this path.
        "terminationMessagePath": TERMINATION_MESSAGE_PATH,
        "terminationMessagePolicy": "File",
    }
    if resources.limits:
        container["resources"]["limits"] = resources.limits
    if sched.image_pull_policy:
        container["imagePullPolicy"] = sched.image_pull_policy
    if not container["env"]:
        del container["env"]

    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [container],
        "volumes": [
            {"name": WORKDIR_VOLUME, "emptyDir": {}},
            *pod_volumes(settings.persistent_volumes),
        ],
        "automountServiceAccountToken": sched.service_account is not None,
        "securityContext": _pod_security_context(sched.privileged),
    }
    node_selector = {**sched.node_selector, **resources.node_selector}
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
    tolerations = sched.tolerations + [
        t for t in resources.tolerations if t not in sched.tolerations
    ]
    if tolerations:
        pod_spec["tolerations"] = tolerations
    if sched.affinity:
        pod_spec["affinity"] = sched.affinity
    optional = {
        "priorityClassName": sched.priority_class,
        "runtimeClassName": sched.runtime_class,
        "schedulerName": sched.scheduler_name,
        "serviceAccountName": sched.service_account,
        "activeDeadlineSeconds": resources.active_deadline_seconds,
    }
    pod_spec.update({k: v for k, v in optional.items() if v is not None})
    if sched.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": n} for n in sched.image_pull_secrets]

    # Rendered fields win over the rule's template, which wins over the run's.
    pod_template = apply_pod_template(
        config.pod_template,
        apply_pod_template(
            sched.pod_template,
            {"metadata": {"labels": labels, "annotations": annotations}, "spec": pod_spec},
        ),
    )
    job_spec: dict[str, Any] = {
        # Application failures are final (Snakemake owns --retries); disruptions are
        # ignored by the Job (it replaces the pod) and bounded by the executor, because
        # ignored failures never count against backoffLimit.
        "backoffLimit": 0,
        "podFailurePolicy": {
            "rules": [
                {
                    "action": "Ignore",
                    "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                },
                {
                    "action": "FailJob",
                    # empty, as Go clients send it: the 1.28 schema requires the field
                    "onPodConditions": [],
                    "onExitCodes": {
                        "containerName": CONTAINER_NAME,
                        "operator": "NotIn",
                        "values": [0],
                    },
                },
            ]
        },
        "template": pod_template,
    }
    if settings.ttl_seconds_after_finished is not None:
        job_spec["ttlSecondsAfterFinished"] = settings.ttl_seconds_after_finished
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": settings.namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": job_spec,
    }


def _env(given: RenderInput) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in given.plain_env.items()]
    if given.secret_name:
        env += [
            {
                "name": var,
                "valueFrom": {"secretKeyRef": {"name": given.secret_name, "key": var}},
            }
            for var in given.secret_env
        ]
    return env


def _pod_security_context(privileged: bool) -> dict[str, Any]:
    """Pod Security "restricted" by default: a non-root numeric user, the Dockerfile's
    (USER 1000:1000), so that the kubelet can verify runAsNonRoot without reading the image;
    fsGroup makes the emptyDir working directory writable for it."""
    if privileged:
        return {"seccompProfile": {"type": "RuntimeDefault"}}
    return {
        "runAsNonRoot": True,
        "runAsUser": JOB_USER_ID,
        "runAsGroup": JOB_GROUP_ID,
        "fsGroup": JOB_GROUP_ID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _security_context(privileged: bool) -> dict[str, Any]:
    if privileged:
        return {"privileged": True, "allowPrivilegeEscalation": True}
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
