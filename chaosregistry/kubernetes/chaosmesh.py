"""Chaos Mesh objects (``chaos-mesh.org/v1alpha1``) built as plain dicts, Go field names as-is.

Small typed builders, one per part of the spec (``PodSelectorSpec``, ``DelaySpec``,
``BandwidthSpec``, ``NetworkChaosSpec``, ``PodChaosSpec``), compose a ``NetworkChaos`` or a
``PodChaos``; every NetworkChaos carries a ``duration`` so Chaos Mesh's controller ends it by
itself even if nothing else does (a pod-kill is one-shot and has none). Creating is
idempotent (a 409 returns the object already there) and deleting is verified (the object must
be gone). Whether the fault is really in place is the controller's word only: when it has not
recorded the injection in ``status.experiment.containerRecords``, we say ``unconfirmed``.
"""

import time
from collections.abc import Mapping
from typing import Any, Literal, NotRequired, TypedDict

from lightkube import Client

from chaosregistry.errors import ConfigError
from chaosregistry.kubernetes import client as kube

GROUP, VERSION = "chaos-mesh.org", "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

SelectorMode = Literal["one", "all", "fixed", "fixed-percent", "random-max-percent"]
Direction = Literal["to", "from", "both"]
NetworkAction = Literal["delay", "loss", "bandwidth", "partition"]
PodAction = Literal["pod-kill"]
Injected = Literal["confirmed", "unconfirmed"]


class PodSelectorSpec(TypedDict, total=False):
    namespaces: list[str]
    labelSelectors: dict[str, str]


class DelaySpec(TypedDict):
    latency: str
    jitter: NotRequired[str]
    correlation: NotRequired[str]


class LossSpec(TypedDict):
    loss: str
    correlation: NotRequired[str]


class BandwidthSpec(TypedDict):
    rate: str
    limit: int
    buffer: int


class PodSelector(TypedDict):
    selector: PodSelectorSpec
    mode: SelectorMode
    value: NotRequired[str]


class NetworkChaosSpec(TypedDict):
    selector: PodSelectorSpec
    mode: SelectorMode
    value: NotRequired[str]
    action: NetworkAction
    direction: Direction
    duration: str
    delay: NotRequired[DelaySpec]
    loss: NotRequired[LossSpec]
    bandwidth: NotRequired[BandwidthSpec]
    target: NotRequired[PodSelector]
    externalTargets: NotRequired[list[str]]


def pod_selector(namespace: str, labels: Mapping[str, str]) -> PodSelectorSpec:
    return {"namespaces": [namespace], "labelSelectors": dict(labels)}


def go_duration(seconds: float) -> str:
    """Seconds as a Go duration string Chaos Mesh parses (``90s``, ``1.5s``, ``300ms``)."""
    if seconds <= 0:
        raise ConfigError(f"a Chaos Mesh duration must be positive, got {seconds!r}")
    milliseconds = round(seconds * 1000)
    if milliseconds % 1000:
        return f"{milliseconds}ms"
    return f"{milliseconds // 1000}s"


def delay(latency_ms: int, jitter_ms: int = 0) -> DelaySpec:
    spec: DelaySpec = {"latency": f"{latency_ms}ms"}
    if jitter_ms:
        spec["jitter"] = f"{jitter_ms}ms"
    return spec


def bandwidth(rate_kbps: int) -> BandwidthSpec:
    # tbf needs a queue limit and a bucket; these are Chaos Mesh's documented examples' sizes.
    return {"rate": f"{rate_kbps * 8}kbps", "limit": 20971520, "buffer": 10000}


def network_chaos_spec(
    *,
    selector: PodSelectorSpec,
    action: NetworkAction,
    duration: float,
    mode: SelectorMode = "all",
    value: str = "",
    direction: Direction = "to",
    delay_spec: DelaySpec | None = None,
    loss_spec: LossSpec | None = None,
    bandwidth_spec: BandwidthSpec | None = None,
    target: PodSelector | None = None,
    external_targets: list[str] | None = None,
) -> NetworkChaosSpec:
    """A NetworkChaos spec; ``duration`` is always set (seconds)."""
    if mode in ("fixed", "fixed-percent", "random-max-percent") and not value:
        raise ConfigError(f"selector mode {mode!r} needs a value")
    spec: NetworkChaosSpec = {
        "selector": selector,
        "mode": mode,
        "action": action,
        "direction": direction,
        "duration": go_duration(duration),
    }
    if value:
        spec["value"] = value
    parts = {"delay": delay_spec, "loss": loss_spec, "bandwidth": bandwidth_spec}
    if action in parts and parts[action] is None:
        raise ConfigError(f"NetworkChaos action {action!r} needs its {action} settings")
    if delay_spec is not None:
        spec["delay"] = delay_spec
    if loss_spec is not None:
        spec["loss"] = loss_spec
    if bandwidth_spec is not None:
        spec["bandwidth"] = bandwidth_spec
    if target is not None:
        spec["target"] = target
    if external_targets:
        spec["externalTargets"] = list(external_targets)
    return spec


class PodChaosSpec(TypedDict):
    selector: PodSelectorSpec
    mode: SelectorMode
    value: NotRequired[str]
    action: PodAction
    gracePeriod: NotRequired[int]
    duration: NotRequired[str]


def pod_kill_spec(
    *, selector: PodSelectorSpec, mode: SelectorMode, value: str = "", grace_period: int = 0
) -> PodChaosSpec:
    """A PodChaos ``pod-kill``: one-shot (the controller deletes the pods it selects once), so
    no duration; the ledger entry's duration bounds how long we wait for replacements."""
    if mode in ("fixed", "fixed-percent", "random-max-percent") and not value:
        raise ConfigError(f"selector mode {mode!r} needs a value")
    spec: PodChaosSpec = {
        "selector": selector,
        "mode": mode,
        "action": "pod-kill",
        "gracePeriod": grace_period,
    }
    if value:
        spec["value"] = value
    return spec


def _document(
    kind: str, name: str, namespace: str, spec: Mapping[str, Any], labels: Mapping[str, str] | None
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        metadata["labels"] = dict(labels)
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": metadata, "spec": dict(spec)}


def network_chaos(
    name: str, namespace: str, spec: NetworkChaosSpec, labels: Mapping[str, str] | None = None
) -> dict[str, Any]:
    return _document("NetworkChaos", name, namespace, spec, labels)


def pod_chaos(
    name: str, namespace: str, spec: PodChaosSpec, labels: Mapping[str, str] | None = None
) -> dict[str, Any]:
    return _document("PodChaos", name, namespace, spec, labels)


def resource(kind: str) -> Any:
    plural = kind.lower()  # networkchaos, podchaos: Chaos Mesh's plurals are the kind, lowered
    return kube.custom_resource(GROUP, VERSION, kind, plural)


def create(client: Client, document: Mapping[str, Any]) -> tuple[Any, bool]:
    """Create the object, or return the one already there (409); (object, created)."""
    kind = resource(str(document["kind"]))
    metadata = document["metadata"]
    try:
        with kube.translated():
            return client.create(kind.from_dict(dict(document))), True
    except kube.KubeError as exc:
        if exc.status != 409:
            raise
    with kube.translated():
        return client.get(kind, metadata["name"], namespace=metadata["namespace"]), False


def injection_state(obj: Any) -> Injected:
    """``confirmed`` once the controller recorded an injected container, else ``unconfirmed``."""
    status = obj.get("status") if hasattr(obj, "get") else None
    experiment = (status or {}).get("experiment") or {}
    records = experiment.get("containerRecords") or []
    injected = any(r.get("phase") == "Injected" or r.get("injectedCount") for r in records)
    return "confirmed" if injected else "unconfirmed"


def wait_for_injection(
    client: Client, kind: str, name: str, namespace: str, *, timeout: float
) -> tuple[Any, Injected]:
    """Poll until the controller confirms the injection or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        with kube.translated():
            obj = client.get(resource(kind), name, namespace=namespace)
        state = injection_state(obj)
        if state == "confirmed" or time.monotonic() >= deadline:
            return obj, state
        time.sleep(0.5)


def delete_verified(client: Client, kind: str, name: str, namespace: str) -> None:
    """Delete the object and check it is gone (ConfigError-free: KubeError when it stays)."""
    res = resource(kind)
    try:
        with kube.translated():
            client.delete(res, name, namespace=namespace)
    except kube.KubeError as exc:
        if exc.status != 404:
            raise
    deadline = time.monotonic() + 10
    while (obj := kube.get_if_exists(client, res, name, namespace)) is not None:
        if time.monotonic() > deadline:
            finalizers = obj.metadata.finalizers if obj.metadata else None
            raise kube.KubeError(
                f"{kind} {namespace}/{name} still exists after delete (finalizers: {finalizers})"
            )
        time.sleep(0.2)
