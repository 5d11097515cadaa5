"""The kubelet's image-pull back-off, read from pod status and the kubelet's events (pure).

After a failed pull the kubelet waits before it pulls that image for that pod again: 10 s after
the first failure, doubling after each one, at most 300 s (``flowcontrol.Backoff`` with the
kubelet's ``backOffPeriod`` and ``MaxContainerBackOff``; an entry idle for twice the maximum
starts again at 10 s). Meanwhile the container waits with reason ``ErrImagePull`` (the attempt
just failed) or ``ImagePullBackOff`` (the kubelet declined to try yet), and its pod worker
re-syncs about every 10 s, so the next attempt comes at the first sync after the delay.

The kubelet's events say what it did: ``Pulling`` once per attempt, ``Failed`` with
"Failed to pull image ..." once per failed attempt, ``BackOff`` ("Back-off pulling image ...")
each time it declined. Events are aggregated (``count``, ``lastTimestamp``), whole seconds.
From these, per pod: the attempts, the failures, the back-off checks, and the delay now in
force (derived from the failures: the kubelet does not publish it).
"""

import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from lightkube.resources.core_v1 import Pod

BACKOFF_INITIAL_SECONDS = 10.0
BACKOFF_MAX_SECONDS = 300.0
PULL_WAITING_REASONS = ("ErrImagePull", "ImagePullBackOff")
FAILED_PULL_PREFIX = "Failed to pull image"


def backoff_delay(failures: int) -> float | None:
    """The kubelet's delay before the next pull after ``failures`` consecutive failures."""
    if failures <= 0:
        return None
    return float(min(BACKOFF_INITIAL_SECONDS * 2 ** (failures - 1), BACKOFF_MAX_SECONDS))


def _stamp(value: Any) -> float | None:
    return float(value.timestamp()) if isinstance(value, datetime) else None


def _container_states(pod: Pod) -> tuple[str | None, str | None, bool, float | None]:
    """(waiting reason, its message, every container running, latest container start)."""
    statuses = (pod.status.containerStatuses if pod.status else None) or []
    reason = message = None
    started: list[float] = []
    running = bool(statuses)
    for status in statuses:
        state = status.state
        waiting = state.waiting if state is not None else None
        # A pull reason wins over any other waiting reason of another container.
        if waiting is not None and waiting.reason and reason not in PULL_WAITING_REASONS:
            reason, message = waiting.reason, waiting.message
        if state is None or state.running is None:
            running = False
        else:
            stamp = _stamp(state.running.startedAt)
            if stamp is not None:
                started.append(stamp)
    return reason, message, running, (max(started) if started and running else None)


def pod_backoff(pod: Pod, events: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """One pod's pull back-off state from its status and its kubelet events
    (``delivery.kubelet_pull_events`` items for this pod: reason, message, count, time)."""
    name = pod.metadata.name if pod.metadata else ""
    mine = [e for e in events if e.get("pod") == name]
    attempts = sum(int(e["count"]) for e in mine if e["reason"] == "Pulling")
    failures = [e for e in mine if str(e["message"]).startswith(FAILED_PULL_PREFIX)]
    failed = sum(int(e["count"]) for e in failures)
    back_offs = sum(int(e["count"]) for e in mine if e["reason"] == "BackOff")
    pulled = [e for e in mine if e["reason"] == "Pulled"]
    last_failure = max((float(e["time"]) for e in failures), default=None)
    last_attempt = max((float(e["time"]) for e in mine if e["reason"] == "Pulling"), default=None)
    last_pulled = max((float(e["time"]) for e in pulled), default=None)
    reason, message, running, started = _container_states(pod)
    in_back_off = reason in PULL_WAITING_REASONS
    delay = backoff_delay(failed) if in_back_off else None
    return {
        "pod": name,
        "node": pod.spec.nodeName if pod.spec else None,
        "ip": pod.status.podIP if pod.status else None,
        "phase": pod.status.phase if pod.status else None,
        "waiting_reason": reason,
        "waiting_message": message,
        "in_back_off": in_back_off,
        "running": running,
        "running_at": started,
        "pull_attempts": attempts,
        "failed_pulls": failed,
        "back_offs": back_offs,
        "pulled": sum(int(e["count"]) for e in pulled),
        "pull_seconds": next(
            (e.get("pull_seconds") for e in reversed(pulled) if e.get("pull_seconds") is not None),
            None,
        ),
        "last_attempt_at": last_attempt,
        "last_pulled_at": last_pulled,
        "last_failure_at": last_failure,
        "delay_seconds": delay,
        "next_attempt_after": (
            last_failure + delay if delay is not None and last_failure is not None else None
        ),
    }


def backoff_summary(pods: list[dict[str, Any]]) -> dict[str, Any]:
    """The probe's top level over ``pod_backoff`` results."""
    waiting: dict[str, int] = {}
    for pod in pods:
        if pod["waiting_reason"]:
            waiting[pod["waiting_reason"]] = waiting.get(pod["waiting_reason"], 0) + 1
    delays = [p["delay_seconds"] for p in pods if p["delay_seconds"] is not None]
    return {
        "pods": pods,
        "count": len(pods),
        "running": sum(1 for p in pods if p["running"]),
        "in_back_off": sum(1 for p in pods if p["in_back_off"]),
        "waiting": waiting,
        "failed_pulls": sum(p["failed_pulls"] for p in pods),
        "back_offs": sum(p["back_offs"] for p in pods),
        "max_delay_seconds": max(delays) if delays else None,
    }


def recovery_timeline(pods: list[dict[str, Any]], healed_at: float) -> dict[str, Any]:
    """How long after ``healed_at`` (epoch seconds) each pod ran, and how much of that it spent
    waiting for the kubelet to take it up again.

    The kubelet resumes a pod at its first ``Pulling`` (it pulls) or ``Pulled`` (another pod's
    pull left the image on the node: "already present") after the heal. ``back_off_seconds``:
    the heal to that moment, for a pod that had failed a pull (0 for one that never did): the
    back-off still to run plus the pod worker's next re-sync. ``back_off_left_seconds``: the
    back-off alone, derived (its last failure plus the kubelet's delay after that many
    failures, minus the heal). A pod can resume before its own back-off ends: the kubelet
    looks for the image on the node before it consults the back-off, so once another pod's
    pull lands, the rest start at their next sync. ``pull_to_running_seconds``: that moment to
    the container's start. The API's times are whole seconds, so each part is clamped at 0.
    """
    since = math.floor(healed_at)
    timeline = []
    for pod in pods:
        running_at, failed = pod["running_at"], pod["failed_pulls"]
        after = [
            t
            for t in (pod["last_attempt_at"], pod["last_pulled_at"])
            if t is not None and t >= since
        ]
        resumed = min(after) if after else None
        waited = None if resumed is None else (max(0.0, resumed - healed_at) if failed else 0.0)
        delay, last_failure = backoff_delay(failed), pod["last_failure_at"]
        left = (
            max(0.0, last_failure + delay - healed_at)
            if delay is not None and last_failure is not None
            else 0.0
        )
        timeline.append(
            {
                **pod,
                "resumed_at": resumed,
                "seconds": (
                    round(max(0.0, running_at - healed_at), 3) if running_at is not None else None
                ),
                "back_off_seconds": round(waited, 3) if waited is not None else None,
                "back_off_left_seconds": round(left, 3),
                "pull_to_running_seconds": (
                    max(0.0, running_at - resumed)
                    if running_at is not None and resumed is not None
                    else None
                ),
            }
        )
    return {"pods": timeline}
