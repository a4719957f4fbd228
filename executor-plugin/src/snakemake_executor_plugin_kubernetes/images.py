"""Container image references, as the per-rule `k8s_image` resource gives them.

The grammar is that of the OCI distribution reference (what the kubelet and every
registry accept): `[host[:port]/]path[:tag][@algorithm:hex]`, the path lowercase,
components joined by `.`, `_`, `__` or dashes, at most 255 characters of name.
"""

import re

from snakemake_interface_common.exceptions import WorkflowError

_HOST_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_HOST_PART}(?:\.{_HOST_PART})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME = rf"(?:{_HOST}/)?{_PATH_PART}(?:/{_PATH_PART})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(rf"^(?P<name>{_NAME})(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$")
MAX_NAME = 255


def check_image_reference(value: object, origin: str) -> str:
    """A valid, pinned image reference; a WorkflowError naming `origin` otherwise.

    A tag or a digest is required: without one the kubelet pulls `:latest`, which may
    be a different image for two pods of the same run.
    """
    text = str(value).strip()
    match = _REFERENCE.match(text)
    if not match or len(match["name"]) > MAX_NAME:
        raise WorkflowError(
            f"Invalid image {value!r} in {origin}: expected registry/repository:tag or "
            "registry/repository@sha256:digest (lowercase repository path)."
        )
    if not match["tag"] and not match["digest"]:
        raise WorkflowError(
            f"Invalid image {value!r} in {origin}: give a tag (:1.2) or a digest "
            "(@sha256:...); an untagged image means :latest, which can change during a run."
        )
    return text
