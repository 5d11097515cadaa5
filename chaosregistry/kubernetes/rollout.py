"""Reading a Deployment's rollout the way ``kubectl rollout status`` does, and its images.

Pure functions over lightkube objects (no API calls), shared by ``probes/rollout.py`` and the
kubernetes backend's bad-tag fault and its undo.
"""

import re
from collections.abc import Iterable, Mapping
from typing import Any

from chaosregistry.errors import ConfigError

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
# Written on the Deployment before the bad image is set: where the original came from.
ORIGINAL_IMAGE_ANNOTATION = "chaosregistry.io/original-image"
# On a Deployment carrying our bad tag: label (so a sweep can list them) and annotation (JSON:
# the fault's expiry and its undo), so a later command can revert it without the ledger.
BAD_TAG_LABEL = "chaosregistry.io/fault"
BAD_TAG_LABEL_VALUE = "bad-tag"
BAD_TAG_ANNOTATION = "chaosregistry.io/bad-tag"
# Epoch seconds at which one of our actions started a rollout (the bad tag, its undo).
ROLLOUT_STARTED_ANNOTATION = "chaosregistry.io/rollout-started-at"
TEMPLATE_HASH_LABEL = "pod-template-hash"
PULL_ERRORS = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName"})


def with_tag(image: str, tag: str) -> str:
    """``image`` with its tag (and any digest) replaced by ``tag``."""
    if not tag or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", tag):
        raise ConfigError(f"tag {tag!r} is not a valid image tag")
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name = name[:colon]
    return f"{name}:{tag}"


def with_digest(image: str, digest: str) -> str:
    """``image`` named by ``digest`` (``name@sha256:...``), its tag and any digest dropped."""
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest or ""):
        raise ConfigError(f"digest {digest!r} is not a sha256 digest")
    return with_tag(image, "x").rsplit(":", 1)[0] + f"@{digest}"


def image_digest(image: str) -> str | None:
    """The digest an image name pins (``name@sha256:...``), or None."""
    return image.split("@", 1)[1] if "@" in image else None


def condition(deployment: Any, kind: str) -> Any:
    conditions = (deployment.status.conditions if deployment.status else None) or []
    return next((c for c in conditions if c.type == kind), None)


def revision_of(obj: Any) -> int:
    annotations = (obj.metadata.annotations if obj.metadata else None) or {}
    try:
        return int(annotations.get(REVISION_ANNOTATION, "0"))
    except ValueError:
        return 0


# What the API server sets when a Deployment leaves spec.revisionHistoryLimit out.
DEFAULT_REVISION_HISTORY_LIMIT = 10


def template_images(template: Any) -> dict[str, str]:
    """{container: image} of a pod template (init containers left out)."""
    spec = template.spec if template is not None else None
    return {c.name: c.image or "" for c in (spec.containers if spec else None) or []}


def owned_replica_sets(deployment: Any, replica_sets: Iterable[Any]) -> list[Any]:
    """The ReplicaSets controlled by ``deployment``, oldest revision first."""
    uid = deployment.metadata.uid
    owned = [
        rs
        for rs in replica_sets
        if rs.metadata
        and any(ref.uid == uid and ref.controller for ref in rs.metadata.ownerReferences or [])
    ]
    return sorted(owned, key=revision_of)


def waiting_reasons(pods: Iterable[Any]) -> dict[str, int]:
    """How many containers of ``pods`` wait, by reason (ErrImagePull, ImagePullBackOff...)."""
    counts: dict[str, int] = {}
    for pod in pods:
        statuses = (pod.status.containerStatuses if pod.status else None) or []
        for status in statuses:
            waiting = status.state.waiting if status.state else None
            if waiting is not None and waiting.reason:
                counts[waiting.reason] = counts.get(waiting.reason, 0) + 1
    return counts


def status_message(deployment: Any) -> tuple[bool, str]:
    """(done, message) exactly as ``kubectl rollout status`` decides them."""
    name = deployment.metadata.name
    spec, status = deployment.spec, deployment.status
    generation = deployment.metadata.generation or 0
    if status is None or (status.observedGeneration or 0) < generation:
        return False, "Waiting for deployment spec update to be observed..."
    progressing = condition(deployment, "Progressing")
    if progressing is not None and progressing.reason == "ProgressDeadlineExceeded":
        return False, f'deployment "{name}" exceeded its progress deadline'
    wanted = spec.replicas if spec and spec.replicas is not None else 1
    updated = status.updatedReplicas or 0
    if updated < wanted:
        return False, (
            f'Waiting for deployment "{name}" rollout to finish: {updated} out of {wanted} '
            "new replicas have been updated..."
        )
    if (status.replicas or 0) > updated:
        return False, (
            f'Waiting for deployment "{name}" rollout to finish: '
            f"{(status.replicas or 0) - updated} old replicas are pending termination..."
        )
    available = status.availableReplicas or 0
    if available < updated:
        return False, (
            f'Waiting for deployment "{name}" rollout to finish: {available} of {updated} '
            "updated replicas are available..."
        )
    return True, f'deployment "{name}" successfully rolled out'


def container_images(deployment: Any) -> dict[str, str]:
    containers = deployment.spec.template.spec.containers if deployment.spec else []
    return {c.name: c.image or "" for c in containers or []}


def health(deployment: Any, new_pods: list[Any]) -> dict[str, Any]:
    """The rollout's state as a probe result (see ``probes/rollout.py`` for the keys)."""
    done, message = status_message(deployment)
    status = deployment.status
    progressing = condition(deployment, "Progressing")
    available = condition(deployment, "Available")
    waiting = waiting_reasons(new_pods)
    spec_replicas = deployment.spec.replicas if deployment.spec else None
    return {
        "deployment": deployment.metadata.name,
        "namespace": deployment.metadata.namespace,
        "healthy": bool(done and available is not None and available.status == "True"),
        "complete": done,
        "stalled": bool(progressing and progressing.reason == "ProgressDeadlineExceeded"),
        "available": bool(available is not None and available.status == "True"),
        "message": message,
        "generation": deployment.metadata.generation or 0,
        "observed_generation": (status.observedGeneration or 0) if status else 0,
        "revision": revision_of(deployment),
        "replicas": 1 if spec_replicas is None else spec_replicas,
        "current_replicas": (status.replicas or 0) if status else 0,
        "updated_replicas": (status.updatedReplicas or 0) if status else 0,
        "ready_replicas": (status.readyReplicas or 0) if status else 0,
        "available_replicas": (status.availableReplicas or 0) if status else 0,
        "unavailable_replicas": (status.unavailableReplicas or 0) if status else 0,
        "progressing": _condition_dict(progressing),
        "images": container_images(deployment),
        "new_pods": len(new_pods),
        "waiting": waiting,
        "image_pull_errors": sum(n for reason, n in waiting.items() if reason in PULL_ERRORS),
    }


def _condition_dict(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    return {"status": value.status, "reason": value.reason, "message": value.message}


_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def go_duration_seconds(text: str) -> float | None:
    """Seconds in a Go duration string (``1m2.5s``, ``523ms``); None when it is not one."""
    parts = _GO_DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


# kubelet: Successfully pulled image "x" in 1.2s (1.2s including waiting). Image size: 123 bytes.
_PULLED = re.compile(
    r'Successfully pulled image "(?P<image>[^"]+)" '
    r"in (?P<took>[0-9.]+[a-zµ]+(?:[0-9.]+[a-zµ]+)*)"
    r"(?: \((?P<waited>[0-9.a-zµ]+) including waiting\))?"
    r"(?:.*?Image size: (?P<size>\d+) bytes)?"
)
_IMAGE_IN_MESSAGE = re.compile(r'image "(?P<image>[^"]+)"')


def parse_pull_message(message: str) -> dict[str, Any]:
    """The image, pull seconds and size a kubelet event message reports (what it has)."""
    found: dict[str, Any] = {"image": None, "pull_seconds": None, "size_bytes": None}
    pulled = _PULLED.search(message)
    if pulled:
        found["image"] = pulled["image"]
        found["pull_seconds"] = go_duration_seconds(pulled["took"])
        if pulled["waited"]:
            found["pull_seconds_including_waiting"] = go_duration_seconds(pulled["waited"])
        if pulled["size"]:
            found["size_bytes"] = int(pulled["size"])
        return found
    image = _IMAGE_IN_MESSAGE.search(message)
    if image:
        found["image"] = image["image"]
    return found


def pod_template_patch(template: Mapping[str, Any]) -> dict[str, Any]:
    """A ReplicaSet's pod template as a Deployment's again (without the hash label)."""
    restored = dict(template)
    metadata = dict(restored.get("metadata") or {})
    labels = {k: v for k, v in (metadata.get("labels") or {}).items() if k != TEMPLATE_HASH_LABEL}
    metadata["labels"] = labels
    restored["metadata"] = metadata
    return restored
