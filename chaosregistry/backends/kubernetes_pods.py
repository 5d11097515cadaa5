"""Registry node kill on the kubernetes backend: which pods a kill takes, and its undo.

Two ways to kill: delete the pods through the API (``kubernetes.pods-back`` undoes it), or a
Chaos Mesh ``PodChaos`` pod-kill carried out by its controller (``chaosmesh.pod-kill-back``).
Neither undo can bring deleted pods back (their controller replaces them); both verify that none
of the killed pods is left and as many pods as before are ready.
"""

import random
import time
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from typing import Any, Literal, get_args

from lightkube.resources.core_v1 import Pod

from chaosregistry.errors import ConfigError
from chaosregistry.faults.undo import UndoError, undo_handler
from chaosregistry.kubernetes import chaosmesh
from chaosregistry.kubernetes import client as kube

PODS_BACK = "kubernetes.pods-back"
POD_CHAOS_BACK = "chaosmesh.pod-kill-back"
PODS_BACK_WAIT = 20.0
PodKillMode = Literal["one", "all", "fixed", "fixed-percent"]
POD_KILL_MODES: tuple[PodKillMode, ...] = get_args(PodKillMode)


def kill_mode(mode: str, value: Any) -> tuple[PodKillMode, int | None]:
    """Check a kill's selector mode (Chaos Mesh's names) and its value; (mode, value or None)."""
    if mode not in POD_KILL_MODES:
        raise ConfigError(f"pod kill mode must be one of {', '.join(POD_KILL_MODES)}, not {mode!r}")
    if mode in ("one", "all"):
        return mode, None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"pod kill mode {mode!r} needs a whole number value >= 1, got {value!r}")
    if mode == "fixed-percent" and value > 100:
        raise ConfigError(f"fixed-percent value must be at most 100, got {value}")
    return mode, value


def pick_pods(pods: list[Pod], mode: str, value: Any) -> list[Pod]:
    """The pods a kill takes, Chaos Mesh's selector modes (``one`` picks at random)."""
    checked, count = kill_mode(mode, value)
    if checked == "one":
        return [random.choice(pods)]
    if checked == "all" or count is None:
        return list(pods)
    if checked == "fixed":
        return random.sample(pods, min(count, len(pods)))
    return random.sample(pods, max(1, len(pods) * count // 100))


def pod_ready(pod: Pod) -> bool:
    if pod.metadata is None or pod.metadata.deletionTimestamp is not None or pod.status is None:
        return False
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def _client(params: Mapping[str, Any]) -> Any:
    return kube.client(
        str(params["kubeconfig"]),
        timeout=float(params.get("timeout") or kube.DEFAULT_TIMEOUT),
        context=params.get("context") or None,
    )


def wait_pods_back(
    client: Any,
    namespace: str,
    selector: Mapping[str, str],
    *,
    wanted: int,
    deleted_uids: AbstractSet[str],
    deleted_names: AbstractSet[str] = frozenset(),
) -> None:
    """Wait until none of the killed pods is left and ``wanted`` others are ready; UndoError
    after PODS_BACK_WAIT (the watchdog retries a failed undo)."""

    def killed(pod: Pod) -> bool:
        meta = pod.metadata
        return meta is not None and (meta.uid in deleted_uids or meta.name in deleted_names)

    # Replacements usually take a few seconds; wait that long here rather than fail a rollback,
    # but not so long that the watchdog stalls.
    deadline = time.monotonic() + PODS_BACK_WAIT
    while True:
        with kube.translated():
            pods = list(client.list(Pod, namespace=namespace, labels=dict(selector)))
        lingering = sorted(p.metadata.name or "" for p in pods if p.metadata and killed(p))
        ready = sum(1 for p in pods if pod_ready(p) and not killed(p))
        if not lingering and ready >= wanted:
            return
        if time.monotonic() > deadline:
            raise UndoError(
                f"{ready} of {wanted} pods ready in {namespace}"
                + (f"; still terminating: {', '.join(lingering)}" if lingering else "")
            )
        time.sleep(0.5)


@undo_handler(PODS_BACK)
def pods_back(params: Mapping[str, Any]) -> None:
    """Verify the killed pods are replaced: none of them is left and as many pods as before the
    kill are ready. Raises (the watchdog retries) until then."""
    # A pod is "the same pod" by uid: a StatefulSet's replacement has the killed one's name.
    # Entries written before uids were recorded name pods only.
    deleted_uids = {str(u) for u in params.get("deleted_uids") or []}
    wait_pods_back(
        _client(params),
        str(params["namespace"]),
        dict(params["selector"]),
        wanted=int(params.get("ready") or 0),
        deleted_uids=deleted_uids,
        deleted_names=set() if deleted_uids else {str(n) for n in params.get("deleted") or []},
    )


def pod_chaos_victims(obj: Any) -> list[str]:
    """Names of the pods a PodChaos's controller recorded as killed (records are ns/name)."""
    status = (obj.get("status") if hasattr(obj, "get") else None) or {}
    records = (status.get("experiment") or {}).get("containerRecords") or []
    return sorted(
        str(r.get("id", "")).split("/", 1)[-1]
        for r in records
        if r.get("phase") == "Injected" or r.get("injectedCount")
    )


@undo_handler(POD_CHAOS_BACK)
def pod_chaos_back(params: Mapping[str, Any]) -> None:
    """Undo of a PodChaos pod-kill: read which pods the controller killed, delete the object
    (verified gone, so its finalizer is released), then wait for replacements as ``pods_back``.
    """
    client = _client(params)
    namespace, name = str(params["namespace"]), str(params["name"])
    obj = kube.get_if_exists(client, chaosmesh.resource("PodChaos"), name, namespace)
    # Deleted already: no victims to name, but the ready count still has to come back.
    victims = set(pod_chaos_victims(obj)) if obj is not None else set()
    chaosmesh.delete_verified(client, "PodChaos", name, namespace)
    before = {str(k): str(v) for k, v in (params.get("pods_before") or {}).items()}
    wait_pods_back(
        client,
        namespace,
        dict(params["selector"]),
        wanted=int(params.get("ready") or 0),
        deleted_uids={uid for uid, pod in before.items() if pod in victims},
    )
