"""The blast radius verified: which case of a predicted workload to provoke, what its pods
then show, and how far the observation agrees with the prediction.

Pure (sans-I/O), like ``kubernetes/blast_radius.py`` whose rows it reads: the action
``provoke_blast_radius`` (``actions/blast_radius.py``) provokes each Deployment's case while
the registry is cut, the probe ``prediction_agreement`` (``probes/blast_radius.py``) lists its
pods and judges them here.

The provocation each class names (:func:`provocation_for`):

- keeps running: ``restart`` (a rollout restart: every pod replaced, so each new one needs its
  image on its node; ``scale-up`` when it has no replicas, since a restart would start none);
- breaks because it pulls ``Always`` or its image cannot be pulled even now: ``restart``;
- breaks because its image is on no node: ``scale-up`` (one replica more: the new pod pulls);
- degraded: ``move`` to a schedulable node without the image (its pod template pinned there:
  a rollout whose new pod must pull, while the old ones keep running where the image is).

What was observed (:func:`observed_class`), from the pods created by the provocation ("new")
and the others ("old"):

- every new pod running: keeps running;
- a new pod waiting on a pull error (``ErrImagePull``, ``ImagePullBackOff``): breaks after a
  restart or a scale-up (it cannot start anywhere it would have to pull); after a move,
  degraded while an old pod still runs where the image is, else breaks;
- otherwise (scheduled nowhere yet, creating, no new pod at all): not decided yet.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chaosregistry.kubernetes.blast_radius import BREAKS, DEGRADED, KEEPS_RUNNING, PULL_ERRORS

__all__ = [
    "MOVE",
    "PENDING",
    "PROVOCATIONS",
    "PROVOKE_KIND",
    "PULL_FAILED",
    "RESTART",
    "RUNNING",
    "SCALE_UP",
    "Provocation",
    "agreement",
    "judge",
    "observed_class",
    "pod_outcome",
    "provocation_for",
]

# The ledger's kind of a provocation (``backends/kubernetes_provoke.py`` makes them).
PROVOKE_KIND = "deploy.provoke"
RESTART = "restart"
SCALE_UP = "scale-up"
MOVE = "move"
PROVOCATIONS = (RESTART, SCALE_UP, MOVE)
# What a provoked workload's pods show.
RUNNING = "running"
PULL_FAILED = "pull-failed"
PENDING = "pending"
# The node label a move pins the pod template to.
HOSTNAME_LABEL = "kubernetes.io/hostname"


@dataclass(frozen=True)
class Provocation:
    """What to do to one workload: ``kind`` (restart | scale-up | move), the node a move
    pins it to, and why (the prediction's reason)."""

    kind: str
    node: str | None = None


def not_provoked(workload: Mapping[str, Any], schedulable_nodes: Iterable[str]) -> str | None:
    """Why ``workload`` (a row of ``blast_radius.analyze``) is not provoked; None when it is."""
    if workload.get("kind") != "Deployment":
        return "only Deployments are provoked"
    if workload.get("class") == DEGRADED:
        # Degraded is "the pods keep running where the image is, a pod moved elsewhere fails":
        # with no pod there is nothing to keep running and nothing to move.
        if workload.get("replicas") == 0:
            return "degraded at zero replicas: no pod to keep running or to move"
        if not _cold_nodes(workload, schedulable_nodes):
            return "no schedulable node lacks its image"
    return None


def _worst(workload: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    klass = workload.get("class")
    return [c for c in workload.get("containers") or () if c.get("class") == klass]


def _cold_nodes(workload: Mapping[str, Any], schedulable_nodes: Iterable[str]) -> list[str]:
    """The schedulable nodes without the images of ``workload``'s worst containers."""
    holding = set().union(*(set(c.get("nodes_with_image") or ()) for c in _worst(workload)))
    return sorted(set(schedulable_nodes) - holding)


def provocation_for(
    workload: Mapping[str, Any], schedulable_nodes: Iterable[str]
) -> Provocation | None:
    """The case of ``workload`` (a row of ``blast_radius.analyze``) to provoke; None when it is
    not provoked (``not_provoked`` says why)."""
    schedulable_nodes = list(schedulable_nodes)
    if not_provoked(workload, schedulable_nodes) is not None:
        return None
    klass = workload.get("class")
    # A restart of no pods starts none: a Deployment at zero replicas is scaled up instead.
    restart = Provocation(SCALE_UP if workload.get("replicas") == 0 else RESTART)
    if klass == KEEPS_RUNNING:
        return restart
    worst = _worst(workload)
    if klass == DEGRADED:
        return Provocation(MOVE, _cold_nodes(workload, schedulable_nodes)[0])
    # breaks: an image on no node needs a new pod to show it; Always or a bad image, a restart.
    if any(
        not c.get("nodes_with_image")
        and c.get("pull_policy") != "Always"
        and not str(c.get("reason") or "").startswith("cannot be pulled even now")
        for c in worst
    ):
        return Provocation(SCALE_UP)
    return restart


def created_at(pod: Mapping[str, Any]) -> float | None:
    """The pod's ``metadata.creationTimestamp`` in epoch seconds (whole seconds, as the API has
    it); None when absent or unreadable."""
    stamp = (pod.get("metadata") or {}).get("creationTimestamp")
    if isinstance(stamp, datetime):
        return stamp.timestamp()
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def pod_outcome(pod: Mapping[str, Any]) -> tuple[str, str]:
    """(running | pull-failed | pending, what shows it): running once every container is
    ready, pull-failed once one (init containers included) waits on a pull error."""
    status = pod.get("status") or {}
    containers = status.get("containerStatuses") or ()
    statuses = [*(status.get("initContainerStatuses") or ()), *containers]
    for container in statuses:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in PULL_ERRORS:
            message = str(waiting.get("message") or "").splitlines()
            detail = f": {message[0][:160]}" if message else ""
            return PULL_FAILED, f"{container.get('name')}: {waiting['reason']}{detail}"
    if status.get("phase") == "Running" and containers and all(c.get("ready") for c in containers):
        return RUNNING, "running, every container ready"
    return PENDING, str(status.get("phase") or "no status yet")


def observed_class(
    provocation: str, new: Sequence[tuple[str, str]], old_running: int
) -> tuple[str | None, str]:
    """(the class the pods show, or None while not decided; why), after ``provocation`` made
    the ``new`` pods (each ``pod_outcome``) while ``old_running`` of the others still run."""
    if not new:
        return None, "no new pod yet"
    failed = [detail for outcome, detail in new if outcome == PULL_FAILED]
    if failed:
        if provocation == MOVE and old_running:
            return DEGRADED, (
                f"the moved pod cannot pull ({failed[0]}); {old_running} pod(s) keep running "
                "where the image is"
            )
        return BREAKS, f"a new pod cannot pull ({failed[0]})"
    if all(outcome == RUNNING for outcome, _ in new):
        return KEEPS_RUNNING, f"{len(new)} new pod(s) running again"
    waiting = next(detail for outcome, detail in new if outcome == PENDING)
    return None, f"a new pod is {waiting}"


def judge(
    provocation: str,
    provoked_at: float,
    selector: Mapping[str, str],
    pods: Iterable[Mapping[str, Any]],
) -> dict[str, Any]:
    """What a workload's pods (among ``pods``, those its ``selector``'s labels match, not being
    deleted) show since ``provoked_at`` (epoch seconds): ``observed`` (a class, or None while
    not decided), ``why``, ``new_pods``, ``old_running``. A pod created in the provocation's
    second or later is new (the API keeps whole seconds)."""
    new: list[tuple[str, str]] = []
    old_running = 0
    since = float(int(provoked_at))
    for pod in pods:
        meta = pod.get("metadata") or {}
        labels = meta.get("labels") or {}
        if meta.get("deletionTimestamp") or any(labels.get(k) != v for k, v in selector.items()):
            continue
        outcome = pod_outcome(pod)
        created = created_at(pod)
        if created is not None and created >= since:
            new.append(outcome)
        elif outcome[0] == RUNNING:
            old_running += 1
    observed, why = observed_class(provocation, new, old_running)
    return {"observed": observed, "why": why, "new_pods": len(new), "old_running": old_running}


def agreement(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The comparison over ``rows`` ({kind, namespace, name, predicted, observed, ...} each):
    ``verified`` (rows compared), ``agreed``, ``agreement`` (agreed / verified; 0.0 when none
    was verified: nothing proven) and ``disagreements`` (``Kind/namespace/name: predicted
    X, observed Y``)."""
    agreed = [r for r in rows if r.get("observed") == r.get("predicted")]
    disagreements = [
        f"{r.get('kind')}/{r.get('namespace')}/{r.get('name')}: predicted {r.get('predicted')}, "
        f"observed {r.get('observed') or 'nothing decided'}"
        for r in rows
        if r.get("observed") != r.get("predicted")
    ]
    return {
        "verified": len(rows),
        "agreed": len(agreed),
        "agreement": round(len(agreed) / len(rows), 4) if rows else 0.0,
        "disagreements": disagreements,
    }
