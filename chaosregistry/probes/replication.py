"""Probes of a second site: push notifications seen, and how long a push takes to replicate.

The sandbox's second site (``chaosregistry sandbox up --second-site``, see
``chaosregistry.sandbox.second_site``) runs a DR registry that regsync keeps in sync with the
primary, and a receiver that records the registries' Distribution notifications in the file
its endpoints name (``events_file``, one JSON object a line: ``received_at``, ``registry``,
``action``, ``repository``, ``tag``, ``digest``, ``media_type``, ``size``, ``timestamp``,
``event_time``; epoch seconds). Notifications are a CNCF Distribution feature (2.8 and 3.x
alike): go-containerregistry's registry sends none, so on a ``ggcr`` sandbox the primary's
pushes are never announced and replication lag is timed from the end of the push instead.

``replication_lag`` pushes one small image of its own (new content, a unique tag): content,
not a fault, as ``chaosregistry.actions.content.push_fresh_image``.
"""

import re
import secrets as _random
import time
from typing import Annotated, Any

from chaosregistry.errors import ConfigError, PullError
from chaosregistry.experiment.activity import (
    Configuration,
    Result,
    Secrets,
    activity,
)
from chaosregistry.experiment.contracts import (
    FAULT_DURATION,
    NON_NEGATIVE,
    REPOSITORY,
    ResultKind,
    Returns,
    Seconds,
    Target,
)
from chaosregistry.experiment.needs import SandboxNeed
from chaosregistry.experiment.settings import settings_for
from chaosregistry.observability.registry_events import (
    delivery_seconds,
    events_source,
    find_push_event,
    is_manifest_push,
    read_events,
)
from chaosregistry.oci.reference import ImageReference
from chaosregistry.sandbox.seed import push_unique_image
from chaosregistry.stats import summarize

__all__ = ["push_events", "replication_lag"]

# After the replica serves the digest, how long to keep looking for a late notification.
EVENT_GRACE = 2.0


@activity
def push_events(
    repository: Annotated[str, REPOSITORY] = "",
    registry: str = "",
    since_seconds: Annotated[float, NON_NEGATIVE] = 0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Annotated[
    Result,
    Returns(
        "supported note events_file push_events by_registry tags delivery_seconds last",
        kind=ResultKind.PUSH_EVENTS,
    ),
    SandboxNeed("reads the sandbox's event receiver"),
]:
    """Report the manifest push events the sandbox's event receiver has recorded.

    Arguments:
      repository: only events of this repository (empty: all).
      registry: only events sent by this registry (``registry-1``, ``registry-2``,
        ``registry-dr``; empty: all).
      since_seconds: only events received in the last this many seconds (0: all).

    Returns a mapping: ``supported`` (bool: the primary's pushes are announced; false on a
    ``ggcr`` sandbox or one without its second site, and ``note`` says why), ``note``,
    ``events_file``, ``push_events`` (manifest pushes, by tag or digest), ``by_registry``
    {name: count}, ``tags`` (distinct ``repository:tag`` pushed), ``delivery_seconds``
    {min, mean, p50, p95, p99, max} (nulls without events) of the time from the registry's
    event timestamp to the receiver recording it, and ``last`` (the ten latest push events,
    as recorded).
    Raises ActivityFailed without a sandbox or for a negative ``since_seconds``.
    """
    if isinstance(since_seconds, bool) or not isinstance(since_seconds, int | float):
        raise ConfigError(f"since_seconds must be a number of seconds, got {since_seconds!r}")
    if since_seconds < 0:
        raise ConfigError(f"since_seconds must be >= 0, got {since_seconds!r}")
    settings = settings_for(configuration).registry
    if settings.sandbox_dir is None:
        raise ConfigError("push_events reads the sandbox's event receiver: set 'sandbox_dir'")
    events_file, supported, note = events_source(settings.endpoints())
    events = read_events(events_file) if events_file is not None else []
    oldest = time.time() - since_seconds if since_seconds else None
    pushes = [
        event
        for event in events
        if is_manifest_push(event)
        and (not repository or event.get("repository") == repository)
        and (not registry or event.get("registry") == registry)
        and (oldest is None or float(event.get("received_at") or 0) >= oldest)
    ]
    by_registry: dict[str, int] = {}
    for event in pushes:
        name = str(event.get("registry"))
        by_registry[name] = by_registry.get(name, 0) + 1
    delays = [d for d in map(delivery_seconds, pushes) if d is not None]
    return {
        "supported": supported,
        "note": note,
        "events_file": str(events_file) if events_file is not None else None,
        "push_events": len(pushes),
        "by_registry": by_registry,
        "tags": len({(e.get("repository"), e.get("tag")) for e in pushes if e.get("tag")}),
        "delivery_seconds": summarize(delays),
        "last": pushes[-10:],
    }


@activity
def replication_lag(
    image: Annotated[str, REPOSITORY] = "replication/probe",
    source: Target = "replication_source",
    replica: Target = "dr_registry",
    within: Annotated[float, FAULT_DURATION] = 30,
    interval: Seconds = 0.1,
    timeout: Seconds = 5,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Annotated[
    Result,
    Returns(
        "image digest source replica replicated lag_seconds lag_from push_seconds",
        "waited_seconds checks events_supported note event event_delay_seconds",
        "push_to_event_seconds error",
        kind=ResultKind.REPLICATION,
    ),
]:
    """Push a unique image to ``source`` and time until ``replica`` serves the same digest.

    The lag is measured from the primary's push event (the registry's own timestamp of the
    manifest push, as the event receiver recorded it) to the first answer of the replica with
    the pushed digest; without notifications (a ``ggcr`` sandbox, a registry outside the
    sandbox) from the end of the push. The replica is asked every ``interval`` seconds.

    Arguments:
      image: the repository to push to (a tag unique to this call is made); in the sandbox it
        must be one regsync copies (``replication/...``).
      source: where to push: ``replication_source`` (the sandbox's primary as regsync reads
        it), ``registry`` or another configured name, or a URL.
      replica: the registry that should receive it: ``dr_registry`` (the sandbox's second
        site), a configured name or a URL.
      within: seconds to wait for the replica after the push (> 0, at most 3600).
      interval: seconds between two checks of the replica (> 0).
      timeout: seconds per request to the replica.

    Returns a mapping: ``image`` (``repository:tag`` pushed), ``digest``, ``source``,
    ``replica`` (URLs), ``replicated`` (bool: served within ``within``), ``lag_seconds``
    (float, null when not replicated), ``lag_from`` (``event`` or ``push``), ``push_seconds``,
    ``waited_seconds`` (from the end of the push to the replica's answer or the give-up),
    ``checks`` (requests to the replica), ``events_supported``, ``note`` (why there is no
    event, else empty), ``event`` (the push event as recorded, or null),
    ``event_delay_seconds`` (registry timestamp to receiver) and ``push_to_event_seconds``
    (start of the push to the receiver recording its event; both null without an event), and
    ``error`` (the replica's last failure other than "not there yet", as {class, message,
    status, detail}, or null).

    Raises ActivityFailed on bad arguments, a repository regsync does not copy, or a push the
    source refuses (no lag can be measured then).
    """
    # image, within, interval and timeout are in their declared domains (@activity checks).
    repository = ImageReference.parse(f"{image}:x").repository
    wait = float(within)
    pause = float(interval)
    request_timeout = float(timeout)
    settings = settings_for(configuration).registry
    endpoints = settings.endpoints()
    pattern = endpoints.get("replicated_repositories")
    if pattern and not re.fullmatch(str(pattern), repository):
        raise ConfigError(
            f"image {image!r}: the sandbox's regsync copies only repositories matching {pattern!r}"
        )
    origin = settings.resolve(secrets, source)
    target = settings.resolve(secrets, replica)
    events_file, supported, note = events_source(endpoints)

    tag = f"lag-{int(time.time())}-{_random.token_hex(4)}"
    push_started = time.time()
    entry = push_unique_image(
        origin.url,
        origin.credentials,
        repository,
        tag,
        layer_sizes=(4096,),
        verify=origin.verify,
    )
    pushed = time.time()
    digest = str(entry["digest"])

    event: dict[str, Any] | None = None
    served_at: float | None = None
    error: dict[str, Any] | None = None
    checks = 0
    deadline = pushed + wait
    with target.client(max_connections=1, timeout=request_timeout) as client:
        while True:
            if supported and event is None and events_file is not None:
                event = find_push_event(events_file, repository, tag, digest)
            if served_at is None:
                checks += 1
                try:
                    if client.get_manifest(repository, tag).digest == digest:
                        served_at = time.time()
                except PullError as exc:
                    if exc.status != 404:
                        error = exc.as_dict()
            now = time.time()
            looking_for_event = supported and event is None
            if served_at is not None and (not looking_for_event or now > served_at + EVENT_GRACE):
                break
            if served_at is None and now > deadline:
                break
            time.sleep(pause)

    from_event = event is not None and isinstance(event.get("event_time"), int | float)
    start = float(event["event_time"]) if event is not None and from_event else pushed
    received = float(event["received_at"]) if event is not None else None
    if supported and event is None:
        note = "the push event was not recorded (the receiver or its registry's queue is behind)"
    return {
        "image": f"{repository}:{tag}",
        "digest": digest,
        "source": origin.url,
        "replica": target.url,
        "replicated": served_at is not None,
        "lag_seconds": served_at - start if served_at is not None else None,
        "lag_from": "event" if from_event else "push",
        "push_seconds": pushed - push_started,
        "waited_seconds": (served_at if served_at is not None else time.time()) - pushed,
        "checks": checks,
        "events_supported": supported,
        "note": note,
        "event": event,
        "event_delay_seconds": delivery_seconds(event) if event is not None else None,
        "push_to_event_seconds": received - push_started if received is not None else None,
        "error": error,
    }
