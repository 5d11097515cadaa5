"""Waiting for the cluster's pieces: health endpoints, the node, a Deployment.

Each check is named for what is wrong (``node_not_ready``, ``http_not_ok``) and returns why, or
None when nothing is: ``a_not_ready(..) or b_not_ok(..)`` is the first problem of either.

Every wait has a deadline and, when a process dies while we wait, fails at once with the last
line of its log instead of waiting the deadline out.
"""

import socket
import ssl
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from lightkube import ApiError, Client
from lightkube.resources.apps_v1 import Deployment, StatefulSet
from lightkube.resources.core_v1 import Node, Pod

from chaosregistry.cluster.layout import Layout
from chaosregistry.cluster.pki import Pki
from chaosregistry.cluster.processes import ClusterError, exited_early
from chaosregistry.kubernetes.client import describe

PROBE_TIMEOUT = httpx.Timeout(3.0, connect=1.0)


def wait_until(
    what: str,
    check: Callable[[], str | None],
    *,
    timeout: float,
    layout: Layout | None = None,
    process: str | None = None,
    interval: float = 0.3,
) -> None:
    """Poll ``check`` (why not ready, or None when ready) until ready, ``timeout`` or
    ``process`` dies."""
    deadline = time.monotonic() + timeout
    reason = "not checked yet"
    while True:
        reason = check() or ""
        if not reason:
            return
        if layout is not None and process is not None:
            died = exited_early(layout, process)
            if died:
                raise ClusterError(died)
        if time.monotonic() > deadline:
            raise ClusterError(f"{what} not ready after {timeout:.0f} s: {reason}")
        time.sleep(interval)


def unix_socket_not_answering(path: Path) -> str | None:
    """Why nothing answers on the unix socket ``path``, or None when something does."""
    if not path.exists():
        return f"no socket {path}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(str(path))
        except OSError as exc:
            return f"{path}: {exc}"
    return None


def _mtls_context(pki: Pki, client_cert: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    context.load_cert_chain(str(pki.cert(client_cert)), str(pki.key(client_cert)))
    return context


def https_not_ok(url: str, pki: Pki | None = None, client_cert: str | None = None) -> str | None:
    """Why ``url`` does not answer 200, or None when it does (mutual TLS with our CA when
    ``client_cert`` is given).

    Components' own serving certs (controller-manager, scheduler) are self-signed by them on
    127.0.0.1, so those probes skip verification.
    """
    verify: ssl.SSLContext | bool = False
    if pki is not None and client_cert is not None:
        verify = _mtls_context(pki, client_cert)
    try:
        response = httpx.get(url, verify=verify, timeout=PROBE_TIMEOUT, trust_env=False)
    except httpx.HTTPError as exc:
        return f"{url}: {type(exc).__name__} {exc}"
    if response.status_code != 200:
        return f"{url}: HTTP {response.status_code} {response.text[:200]}"
    return None


def http_not_ok(url: str) -> str | None:
    """Why ``url`` does not answer 200, or None when it does."""
    try:
        response = httpx.get(url, timeout=PROBE_TIMEOUT, trust_env=False)
    except httpx.HTTPError as exc:
        return f"{url}: {type(exc).__name__}"
    return None if response.status_code == 200 else f"{url}: HTTP {response.status_code}"


def http_not_answering(url: str) -> str | None:
    """Why nothing answers HTTP at ``url``, or None once anything does (a balancer with no
    backend yet says 502)."""
    try:
        httpx.get(url, timeout=PROBE_TIMEOUT, trust_env=False)
    except httpx.HTTPError as exc:
        return f"{url}: {type(exc).__name__}"
    return None


def _get(kube: Client, kind: Any, namespace: str, name: str) -> tuple[Any, str | None]:
    """(object, None), or (None, why it could not be read) for a readiness answer."""
    try:
        return kube.get(kind, name, namespace=namespace), None
    except ApiError as exc:
        return None, str(describe(exc))
    except httpx.HTTPError as exc:
        return None, f"API: {type(exc).__name__}"


def statefulset_not_ready(kube: Client, namespace: str, name: str) -> str | None:
    """Why the StatefulSet is not ready, or None when every replica is ready and on its
    current revision."""
    sts, problem = _get(kube, StatefulSet, namespace, name)
    if problem is not None:
        return problem
    spec, status = sts.spec, sts.status
    wanted = spec.replicas if spec is not None and spec.replicas is not None else 1
    if status is None:
        return f"statefulset {namespace}/{name}: no status yet"
    ready = status.readyReplicas or 0
    if ready < wanted or status.currentRevision != status.updateRevision:
        return f"statefulset {namespace}/{name}: {ready}/{wanted} ready"
    return None


def node_not_ready(kube: Client, name: str, *, since: datetime | None = None) -> str | None:
    """Why the node is not Ready, or None when it says Ready; with ``since``, only a
    heartbeat after it counts.

    A node object outlives its kubelet: right after a restart it still shows the Ready status
    the previous kubelet posted, so a freshly started kubelet must have reported since.
    """
    try:
        node = kube.get(Node, name)
    except ApiError as exc:
        return str(describe(exc))
    except httpx.HTTPError as exc:
        return f"API: {type(exc).__name__}"
    conditions = (node.status.conditions if node.status else None) or []
    for condition in conditions:
        if condition.type == "Ready":
            beat = condition.lastHeartbeatTime
            if since is not None and (beat is None or beat < since):
                return f"no heartbeat from the kubelet since {since:%H:%M:%S}"
            if condition.status == "True":
                return None
            return f"Ready={condition.status}: {condition.reason}: {condition.message}"
    return "node has no Ready condition yet"


def deployment_condition(deployment: Any, kind: str) -> Any:
    conditions = (deployment.status.conditions if deployment.status else None) or []
    return next((c for c in conditions if c.type == kind), None)


def deployment_not_available(kube: Client, namespace: str, name: str) -> str | None:
    """Why the Deployment is not available, or None when its current generation is fully
    rolled out and Available."""
    deployment, problem = _get(kube, Deployment, namespace, name)
    if problem is not None:
        return problem
    status = deployment.status
    wanted = deployment.spec.replicas if deployment.spec else None
    generation = deployment.metadata.generation if deployment.metadata else None
    if status is None or status.observedGeneration != generation:
        return "rollout not observed yet"
    available = deployment_condition(deployment, "Available")
    if available is None or available.status != "True":
        return f"Available={getattr(available, 'status', None)}"
    if status.updatedReplicas != wanted or status.availableReplicas != wanted:
        return (
            f"{status.updatedReplicas or 0} updated, {status.availableReplicas or 0} available "
            f"of {wanted}"
        )
    # The status may be stale (a controller-manager stopped while its pods went away), so the
    # pods themselves must be there and ready. And they must run the current template's images:
    # right after the template changes, the status and the ready pods can still be the previous
    # revision's (seen: a demo put back on its image read Available, then its rollout began).
    selector = deployment.spec.selector.matchLabels if deployment.spec else None
    labels: dict[str, Any] = dict(selector or {})
    try:
        pods = list(kube.list(Pod, namespace=namespace, labels=labels))
    except (ApiError, httpx.HTTPError) as exc:
        return str(describe(exc))
    images = _images(deployment.spec.template.spec if deployment.spec else None)
    ready = [pod for pod in pods if _pod_ready(pod) and _images(pod.spec) == images]
    if len(ready) < (wanted or 0):
        return f"{len(ready)} of {wanted} pods of the current template running and ready"
    return None


def _images(spec: Any) -> list[str]:
    """The container images of a pod spec (a Deployment's template's or a pod's), in order."""
    return [str(container.image) for container in (spec.containers if spec else None) or []]


def _pod_ready(pod: Pod) -> bool:
    if pod.metadata is None or pod.metadata.deletionTimestamp is not None:
        return False
    if pod.status is None or pod.status.phase != "Running":
        return False
    conditions = pod.status.conditions or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)
