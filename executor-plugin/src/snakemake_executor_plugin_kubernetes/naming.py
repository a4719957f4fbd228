"""DNS-safe object names and label values for a run's Kubernetes objects."""

import hashlib
import re
import uuid

from snakemake_interface_common.exceptions import WorkflowError

LABEL_PREFIX = "snakemake.io"
RUN_ID_LABEL = f"{LABEL_PREFIX}/run-id"
RULE_LABEL = f"{LABEL_PREFIX}/rule"
JOBID_LABEL = f"{LABEL_PREFIX}/jobid"
ATTEMPT_LABEL = f"{LABEL_PREFIX}/attempt"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "snakemake"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

MAX_NAME = 63
MAX_JOB_NAME_PREFIX = 20  # leaves room for the rule, its hash, the run id, job id and attempt
DEFAULT_JOB_NAME_PREFIX = "sm"


def new_run_id() -> str:
    """A short random id; valid as a DNS label and as a label value."""
    return uuid.uuid4().hex[:12]


def _slug(text: str, max_len: int) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:max_len].rstrip("-")


def _short_token(value: int | str) -> str:
    text = _slug(str(value), 63)
    if len(text) <= 10 and text == str(value):
        return text
    return hashlib.sha256(str(value).encode()).hexdigest()[:10]


def job_name(
    run_id: str, rule: str, jobid: int | str, attempt: int, prefix: str = DEFAULT_JOB_NAME_PREFIX
) -> str:
    """Job name unique per run, job and attempt, at most 63 characters.

    Job names become pod label values (job-name), hence the 63 limit. A hash of the
    full rule name keeps names of long, similar rule names apart after truncation;
    long job ids (group UUIDs) are hashed too.
    """
    suffix = f"{run_id}-{_short_token(jobid)}-{attempt}"
    digest = hashlib.sha256(rule.encode()).hexdigest()[:4]
    room = MAX_NAME - len(prefix) - len("--") - len(suffix) - len(digest) - 1
    slug = _slug(rule, max(room, 0)) or "job"
    return f"{prefix}-{slug}-{digest}-{suffix}"[:MAX_NAME].rstrip("-")


def secret_name(run_id: str) -> str:
    return f"snakemake-run-{run_id}"


def label_value(text: str) -> str:
    """Sanitise free text (e.g. a rule name) into a valid label value."""
    value = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:MAX_NAME]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value)


def is_dns_label(name: str) -> bool:
    return len(name) <= MAX_NAME and bool(_DNS_LABEL.match(name))


def is_dns_subdomain(name: str) -> bool:
    return len(name) <= 253 and bool(_DNS_SUBDOMAIN.match(name))


def check_namespace(namespace: str) -> str:
    if not is_dns_label(namespace):
        raise WorkflowError(
            f"Invalid Kubernetes namespace {namespace!r} (setting --kubernetes-namespace): "
            "it must be a DNS label (lowercase letters, digits, '-', at most 63 characters)."
        )
    return namespace


def check_job_name_prefix(prefix: str, origin: str) -> str:
    """A prefix that keeps every Job name (and the job-name label of its pods) a DNS-1123
    label, checked before anything is submitted."""
    if len(prefix) > MAX_JOB_NAME_PREFIX or not _DNS_LABEL.match(prefix):
        raise WorkflowError(
            f"Invalid job name prefix {prefix!r} ({origin}): it must be a DNS-1123 label of at "
            f"most {MAX_JOB_NAME_PREFIX} characters (lowercase letters, digits and '-', "
            "starting and ending with a letter or digit), as Job names are built from it."
        )
    return prefix


def check_label_key(key: str, origin: str) -> str:
    """Validate a label or annotation key ([prefix/]name); `origin` names the setting."""
    prefix, _, name = key.rpartition("/")
    ok = len(name) <= MAX_NAME and bool(_QUALIFIED_NAME.match(name))
    if prefix:
        ok = ok and is_dns_subdomain(prefix)
    if not ok:
        raise WorkflowError(
            f"Invalid key {key!r} in {origin}: expected [dns-prefix/]name with name of at most "
            "63 characters from letters, digits, '-', '_', '.', starting and ending "
            "alphanumeric."
        )
    return key


def check_label_value(value: str, origin: str) -> str:
    if len(value) > MAX_NAME or not _LABEL_VALUE.match(value):
        raise WorkflowError(
            f"Invalid label value {value!r} in {origin}: at most 63 characters from letters, "
            "digits, '-', '_', '.', starting and ending alphanumeric."
        )
    return value
