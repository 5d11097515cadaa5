"""The registries' push notifications, as the sandbox's event receiver records them.

The sandbox's second site (``sandbox up --second-site``) runs a receiver of the registries'
Distribution notifications; it appends one JSON object a line to the file the sandbox's
endpoints name (``events_file``: ``received_at``, ``registry``, ``action``, ``repository``,
``tag``, ``digest``, ``media_type``, ``size``, ``timestamp``, ``event_time``; epoch seconds).
Read here for the probes (``probes/replication.py``) and for ``push_to_running``'s registry-event
phase (``chaosregistry.kubernetes.delivery``). go-containerregistry's registry sends no
notifications.
"""

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# The DR registry's own notifications (regsync's writes) are not the primary's pushes.
DR_REGISTRY = "registry-dr"
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
NO_EVENTS_GGCR = (
    "go-containerregistry's registry sends no notifications: the primary's pushes are not "
    "announced (only registry-dr's are)"
)
NO_EVENTS_SANDBOX = "no event receiver: the sandbox runs without its second site (--second-site)"


def events_source(endpoints: Mapping[str, Any]) -> tuple[Path | None, bool, str]:
    """(events file, whether the primary's pushes are announced, a note when they are not)."""
    events_file = endpoints.get("events_file")
    if not events_file:
        return None, False, NO_EVENTS_SANDBOX if endpoints else "no sandbox: no event receiver"
    if endpoints.get("implementation") == "ggcr":
        return Path(str(events_file)), False, NO_EVENTS_GGCR
    return Path(str(events_file)), True, ""


def read_events(path: Path) -> list[dict[str, Any]]:
    """Every whole line of the events file (a line being written is skipped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    found = []
    for line in text.splitlines():
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(item, dict):
            found.append(item)
    return found


def is_manifest_push(event: Mapping[str, Any]) -> bool:
    return event.get("action") == "push" and event.get("media_type") in MANIFEST_TYPES


def delivery_seconds(event: Mapping[str, Any]) -> float | None:
    """From the registry's event timestamp to the receiver recording it."""
    received, created = event.get("received_at"), event.get("event_time")
    if isinstance(received, int | float) and isinstance(created, int | float):
        return float(received) - float(created)
    return None


def find_push_event(path: Path, repository: str, tag: str, digest: str) -> dict[str, Any] | None:
    """The primary's push event of ``repository:tag`` at ``digest``, or None."""
    for event in read_events(path):
        if (
            event.get("action") == "push"
            and event.get("repository") == repository
            and event.get("tag") == tag
            and event.get("digest") == digest
            and event.get("registry") != DR_REGISTRY
        ):
            return event
    return None
