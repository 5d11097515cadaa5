"""The kubernetes backend: faults on a real cluster, every one inside one blast-radius guard.

Configuration (under the experiment's ``chaosregistry`` mapping, usually from
``experiments/vars/kubernetes.yaml``):

``kubeconfig``        path to the kubeconfig; else ``$CHAOSREGISTRY_KUBECONFIG``, else
                      ``$KUBECONFIG``, else ``<cluster_state_dir>/kubeconfig`` (the one
                      ``chaosregistry cluster up`` writes, ``runs/cluster`` by default; the
                      vars file it writes, ``<state_dir>/vars.yaml``, names it outright)
``kube_context``      a context of that kubeconfig (default: its current one)
``namespace``         the namespace activities act in when they do not name one
``max_pods``          the most pods one fault may touch (default 10)
``dry_run``           ``true``: log the objects and patches a fault would apply, apply nothing
``kube_timeout``      seconds per API call (default 15)
``network_provider``  ``toxiproxy`` (default: the Toxiproxy hop in front of the node's pulls, of
                      the sandbox ``sandbox_dir`` names) or ``chaos-mesh``
``sandbox_dir``       for ``toxiproxy``: the sandbox the cluster pulls through (the test
                      cluster's vars file sets it); never looked up in a test bed's own files
``cluster_state_dir`` the test cluster's state directory, only for the kubeconfig default
``hop_selectors``     for ``chaos-mesh``: {hop: pod labels}, the pods a hop's NetworkChaos acts on
                      (e.g. ``client-registry: {app: registry}``: the registry's replies)
``hop_external_targets`` for ``chaos-mesh``: {hop: [hosts or CIDRs]} to limit it to
``registry_nodes``    {node: {selector: {labels}, mode: one|all|fixed|fixed-percent, value: N,
                      namespace}}: the registry pods ``kill_registry_node(node)`` deletes; a
                      kill also needs ``registry_url`` (the registry those pods serve)
``node_kill_provider`` ``api`` (default: delete the pods, grace 0) or ``chaos-mesh`` (a PodChaos
                      pod-kill its controller carries out and records)
``registry_mirrors``  {registry host: [mirror hosts]}: the hosts the nodes' runtime tries
                      first for that registry's images (containerd's hosts.toml); the blast
                      radius (``chaosregistry blast-radius``) counts an image as pullable in an
                      outage of its registry while one of its mirrors is not cut
``chaos_mesh_confirm_timeout`` seconds to wait for the controller to confirm (default 5); an
                      injection it never confirms is reported as ``injected: unconfirmed``

The blast radius (:func:`guard`): never ``kube-system`` or ``kube-public``; only namespaces
labelled ``chaosregistry.io/chaos=enabled``; a selector must match at least one pod and at
most ``max_pods``. It runs before anything is recorded or changed.

Every key is parsed once, into :class:`chaosregistry.experiment.settings.KubernetesSettings`
(re-exported here); the backend reads the typed fields only.
"""

import json
import logging
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from lightkube import Client
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Namespace, Pod

from chaosregistry.backends.kubernetes_pods import (
    POD_CHAOS_BACK,
    PODS_BACK,
    kill_mode,
    pick_pods,
    pod_chaos_victims,
    pod_ready,
)
from chaosregistry.backends.local import MIRROR_NODE
from chaosregistry.backends.plan import CONFIRMED, UNCONFIRMED, FaultPlan, confirmed
from chaosregistry.errors import ConfigError
from chaosregistry.experiment.settings import (
    DEFAULT_MAX_PODS,
    NETWORK_PROVIDERS,
    NODE_KILL_PROVIDERS,
    NODE_PULLS_ORIGIN,
    PROTECTED_NAMESPACES,
    KubernetesSettings,
    Settings,
)
from chaosregistry.faults.undo import undo_handler
from chaosregistry.kubernetes import chaosmesh
from chaosregistry.kubernetes import client as kube

# KubernetesSettings and the constants live in chaosregistry.experiment.settings (the one parser);
# they stay importable from here, where kubernetes_deploy and the probes have always found them.
__all__ = [
    "CHAOS_LABEL",
    "CHAOS_MESH_DELETE",
    "DEFAULT_MAX_PODS",
    "NETWORK_PROVIDERS",
    "NODE_KILL_PROVIDERS",
    "PROTECTED_NAMESPACES",
    "KubernetesBackend",
    "KubernetesSettings",
    "delete_chaos_object",
    "get_deployment",
    "guard",
    "guard_namespace",
    "log",
    "refuse_protected",
    "selector_of",
]

log = logging.getLogger("chaosregistry.kubernetes")

CHAOS_LABEL = ("chaosregistry.io/chaos", "enabled")
CHAOS_MESH_DELETE = "chaosmesh.delete"


def refuse_protected(namespace: str) -> None:
    """kube-system and kube-public are refused before the API is even asked."""
    if namespace in PROTECTED_NAMESPACES:
        raise ConfigError(f"namespace {namespace!r} is never a chaos target")


def guard_namespace(client: Client, namespace: str) -> None:
    """Refuse a namespace outside the blast radius (ConfigError naming why)."""
    refuse_protected(namespace)
    found = kube.get_if_exists(client, Namespace, namespace)
    if found is None:
        raise ConfigError(f"namespace {namespace!r} does not exist")
    key, value = CHAOS_LABEL
    labels = (found.metadata.labels if found.metadata else None) or {}
    if labels.get(key) != value:
        raise ConfigError(
            f"namespace {namespace!r} is outside the blast radius: it lacks the label {key}={value}"
        )


def guard(
    client: Client, namespace: str, selector: Mapping[str, str] | None, max_pods: int
) -> list[Pod]:
    """The blast-radius check every kubernetes fault runs first; returns the pods it may touch.

    ``selector`` is a label selector (matchLabels); None checks the namespace only.
    """
    guard_namespace(client, namespace)
    if selector is None:
        return []
    if not selector:
        raise ConfigError("an empty label selector would match every pod: refused")
    with kube.translated():
        pods = list(client.list(Pod, namespace=namespace, labels=dict(selector)))
    pods = [p for p in pods if p.metadata is not None and p.metadata.deletionTimestamp is None]
    shown = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
    if not pods:
        raise ConfigError(f"selector {shown} matches no pod in {namespace}: refused")
    if len(pods) > max_pods:
        raise ConfigError(
            f"selector {shown} matches {len(pods)} pods in {namespace}, more than "
            f"configuration.max_pods ({max_pods}): refused"
        )
    return pods


def selector_of(deployment: Deployment) -> dict[str, Any]:
    spec = deployment.spec
    if spec is None or spec.selector is None:
        return {}
    if spec.selector.matchExpressions:
        raise ConfigError(
            f"deployment {deployment.metadata.name if deployment.metadata else '?'} selects pods "
            "with matchExpressions, which the blast-radius guard cannot count: refused"
        )
    return dict(spec.selector.matchLabels or {})


def get_deployment(client: Client, namespace: str, name: str) -> Deployment:
    deployment: Deployment | None = kube.get_if_exists(client, Deployment, name, namespace)
    if deployment is None:
        raise ConfigError(f"deployment {name!r} not found in namespace {namespace!r}")
    return deployment


@undo_handler(CHAOS_MESH_DELETE)
def delete_chaos_object(params: Mapping[str, Any]) -> None:
    """Delete the Chaos Mesh object and verify it is gone (already gone is fine)."""
    client = kube.client(
        str(params["kubeconfig"]),
        timeout=float(params.get("timeout") or kube.DEFAULT_TIMEOUT),
        context=params.get("context") or None,
    )
    chaosmesh.delete_verified(
        client, str(params["kind"]), str(params["name"]), str(params["namespace"])
    )


def _pods_going(client: Client, namespace: str, killed: Mapping[str, str]) -> dict[str, Any]:
    """Confirm a kill: each killed pod (name -> uid) is gone, replaced (another uid) or
    terminating; ``injected: unconfirmed`` naming the first that is none of these."""
    for name, uid in killed.items():
        pod = kube.get_if_exists(client, Pod, name, namespace)
        if pod is None:
            continue
        meta = pod.metadata
        if meta is not None and meta.uid == uid and meta.deletionTimestamp is None:
            return {"injected": UNCONFIRMED, "still_running": name}
    return confirmed(f"{len(killed)} pod(s) deleted: gone or terminating")


class KubernetesBackend:
    """Backend-neutral actions (network, node) on a cluster."""

    name = "kubernetes"

    def __init__(self, settings: Settings) -> None:
        self.all_settings = settings
        self.settings = settings.kubernetes

    def _toxiproxy(self) -> Any:
        """The local backend on the Toxiproxy hops in front of the node's pulls (and the
        sandbox's mirror process): the sandbox comes from the settings (``sandbox_dir``) only,
        never from a test bed's state files."""
        from chaosregistry.backends.local import LocalBackend

        return LocalBackend.from_settings(self.all_settings.local)

    def _guard_configured_namespace(self) -> None:
        """Before a fault on the sandbox the cluster pulls through: as for the Toxiproxy hops,
        the configured namespace must still be opted in, so a vars file for the wrong cluster
        is refused."""
        if self.settings.namespace:
            refuse_protected(self.settings.namespace)
            guard_namespace(self.settings.client(), self.settings.namespace)

    def hops(self) -> list[str]:
        hops: list[str] = self._toxiproxy().hops()
        return hops

    def network_fault(self, kind: str, hop: str, parameters: dict[str, Any]) -> FaultPlan:
        settings = self.settings
        if settings.network_provider == "chaos-mesh":
            return self._chaos_mesh_fault(kind, hop, parameters)
        # The Toxiproxy hop slows every pull of the node; the configured namespace (when set)
        # must still be opted in, so a vars file for the wrong cluster is refused.
        if settings.namespace:
            refuse_protected(settings.namespace)
            guard_namespace(settings.client(), settings.namespace)
        plan: FaultPlan = self._toxiproxy().network_fault(kind, hop, parameters)
        return plan

    def _chaos_mesh_fault(self, kind: str, hop: str, parameters: dict[str, Any]) -> FaultPlan:
        """A NetworkChaos on the pods ``hop_selectors[hop]`` selects (e.g. the registry's)."""
        settings = self.settings
        chosen = settings.hop_selectors.get(hop)
        if chosen is None:
            raise ConfigError(
                f"configuration.hop_selectors.{hop}: the labels of the pods to hurt for this hop "
                "are needed with network_provider chaos-mesh"
            )
        labels = dict(chosen)  # a plain dict: it goes into the NetworkChaos document as JSON
        namespace = settings.namespace_or("")
        refuse_protected(namespace)
        client = settings.client()
        guard(client, namespace, labels, settings.max_pods)
        external = list(settings.hop_external_targets.get(hop) or ())
        duration = float(parameters["duration"])
        selector = chaosmesh.pod_selector(namespace, labels)
        if kind == "network.latency":
            spec = chaosmesh.network_chaos_spec(
                selector=selector,
                action="delay",
                duration=duration,
                delay_spec=chaosmesh.delay(
                    int(parameters["latency_ms"]), int(parameters.get("jitter_ms") or 0)
                ),
                external_targets=external,
            )
        elif kind == "network.bandwidth":
            spec = chaosmesh.network_chaos_spec(
                selector=selector,
                action="bandwidth",
                duration=duration,
                bandwidth_spec=chaosmesh.bandwidth(int(parameters["rate_kbps"])),
                external_targets=external,
            )
        elif kind == "network.partition":
            spec = chaosmesh.network_chaos_spec(
                selector=selector,
                action="partition",
                duration=duration,
                direction="both",
                external_targets=external,
            )
        else:
            raise ConfigError(f"network_provider chaos-mesh cannot inject {kind!r}")
        name = f"chaosregistry-{kind.split('.')[-1]}-{secrets.token_hex(4)}"
        document = chaosmesh.network_chaos(
            name, namespace, spec, labels={"app.kubernetes.io/managed-by": "chaosregistry"}
        )
        kubeconfig, context, timeout = settings.kubeconfig, settings.context, settings.timeout
        return FaultPlan(
            kind=kind,
            target=f"hop:{hop}",
            parameters={k: v for k, v in parameters.items() if k != "duration"},
            apply=self._chaos_object_apply(document),
            undo={
                "kind": CHAOS_MESH_DELETE,
                "params": {
                    "kubeconfig": str(kubeconfig),
                    "context": context,
                    "timeout": timeout,
                    "kind": "NetworkChaos",
                    "namespace": namespace,
                    "name": name,
                },
            },
        )

    def _pod_chaos_kill(
        self,
        node: str,
        namespace: str,
        labels: dict[str, Any],
        mode: str,
        value: Any,
        pods: list[Pod],
    ) -> FaultPlan:
        """The kill as a Chaos Mesh PodChaos pod-kill: its controller picks and deletes the pods
        (grace 0). Unconfirmed within ``chaos_mesh_confirm_timeout``: said so, never assumed."""
        checked, count = kill_mode(mode, value)  # the same checks as the API kill
        settings = self.settings
        spec = chaosmesh.pod_kill_spec(
            selector=chaosmesh.pod_selector(namespace, labels),
            mode=checked,
            value="" if count is None else str(count),
        )
        name = f"chaosregistry-pod-kill-{secrets.token_hex(4)}"
        document = chaosmesh.pod_chaos(
            name, namespace, spec, labels={"app.kubernetes.io/managed-by": "chaosregistry"}
        )
        before = {p.metadata.uid: p.metadata.name for p in pods if p.metadata and p.metadata.uid}
        ready_before = sum(1 for p in pods if pod_ready(p))
        kubeconfig, context, timeout = settings.kubeconfig, settings.context, settings.timeout
        dry_run = settings.dry_run
        return FaultPlan(
            kind="node.kill",
            target=f"node:{node}",
            parameters={"node": node, "mode": mode, "provider": "chaos-mesh"},
            apply=self._chaos_object_apply(
                document,
                lambda obj: {
                    "deleted": pod_chaos_victims(obj),
                    "namespace": namespace,
                    "ready_before": ready_before,
                },
            ),
            undo={
                "kind": POD_CHAOS_BACK,
                "params": {
                    "kubeconfig": str(kubeconfig),
                    "context": context,
                    "timeout": timeout,
                    "namespace": namespace,
                    "name": name,
                    "selector": labels,
                    "ready": 0 if dry_run else ready_before,
                    "pods_before": before,
                },
            },
        )

    def _chaos_object_apply(
        self,
        document: dict[str, Any],
        findings: Callable[[Any], dict[str, Any]] = lambda obj: {},
    ) -> Callable[[], dict[str, Any]]:
        """The apply step of a Chaos Mesh fault: create the object (idempotent), wait for its
        controller's word and report it (``unconfirmed`` when nothing reports in time), plus
        ``findings`` read off the object. In a dry run: log the object, create nothing."""
        settings = self.settings
        kind, name = str(document["kind"]), str(document["metadata"]["name"])
        namespace = str(document["metadata"]["namespace"])
        confirm_timeout = settings.chaos_mesh_confirm_timeout

        def apply() -> dict[str, Any]:
            if settings.dry_run:
                log.warning("dry run: would create %s", json.dumps(document))
                return {"dry_run": True, "would_apply": document, "injected": UNCONFIRMED}
            api = settings.client()
            created, new = chaosmesh.create(api, document)
            obj, state = chaosmesh.wait_for_injection(
                api, kind, name, namespace, timeout=confirm_timeout
            )
            return {
                "object": f"{kind} {namespace}/{name}",
                "uid": created.metadata.uid if created.metadata else None,
                "created": new,
                "spec": dict(document["spec"]),
                "injected": state,
                **(
                    confirmed(f"Chaos Mesh recorded {kind} {namespace}/{name} as injected")
                    if state == CONFIRMED
                    else {}
                ),
                **findings(obj),
            }

        return apply

    def nodes(self) -> list[str]:
        return sorted(self.settings.registry_nodes)

    def certificate_fault(self, kind: str, target: str) -> FaultPlan:
        # Swapping a cluster registry's serving certificate means its Secret, Ingress or
        # mesh: not built yet. Refused before anything is recorded.
        raise ConfigError(
            "the kubernetes backend cannot serve a bad certificate yet: certificate faults "
            "run on the local backend (the sandbox's nginx) only"
        )

    def auth_fault(self, kind: str, parameters: dict[str, Any]) -> FaultPlan:
        # A cluster registry's token service and htpasswd live in its own Secrets and pods:
        # not built yet. Refused before anything is recorded.
        raise ConfigError(
            "the kubernetes backend cannot make auth faults yet: they run on the local "
            "backend (the sandbox's token server and htpasswd) only"
        )

    def signature_fault(self, kind: str, image: str, source: str = "") -> FaultPlan:
        # A cluster's registry is written through its own API and credentials: not built yet.
        raise ConfigError(
            "the kubernetes backend cannot change signatures yet: signature faults run on the "
            "local backend (the sandbox's registry) only"
        )

    def referrers_fault(self, status: int) -> FaultPlan:
        # A cluster's ingress is not ours to rewrite: not built.
        raise ConfigError(
            "the kubernetes backend cannot break the referrers API yet: the referrers fault "
            "runs on the local backend (the sandbox's nginx) only"
        )

    def upstream_fault(self, status: int, retry_after: int) -> FaultPlan:
        """The sandbox's mirror (the one the test cluster's node pulls through, named by
        ``sandbox_dir``) gets its remote answering ``status``: the local backend's fault.
        Refused without ``sandbox_dir``: a cluster's own mirror reaches its remote through no
        nginx of ours."""
        if not self.all_settings.local.sandbox_dir:
            raise ConfigError(
                "the kubernetes backend cannot make a cluster's mirror upstream answer errors: "
                "set configuration.sandbox_dir to the sandbox whose mirror the node pulls through"
            )
        self._guard_configured_namespace()
        plan: FaultPlan = self._toxiproxy().upstream_fault(status, retry_after)
        return plan

    def quota_fault(self, requests: int, window: int) -> FaultPlan:
        """The quota on the registry of the sandbox the cluster pulls from (``sandbox_dir``):
        the local backend's fault. It counts the node's pulls when the node pulls from the
        origin (``node_pulls`` ``origin``); a mirror-first node's go through the mirror, whose
        fetches from its upstream are not counted. Refused without ``sandbox_dir``: a
        cluster's own registry ingress is not ours to rewrite."""
        if not self.all_settings.local.sandbox_dir:
            raise ConfigError(
                "the kubernetes backend cannot put a quota on a cluster's registry: set "
                "configuration.sandbox_dir to the sandbox the node pulls from"
            )
        self._guard_configured_namespace()
        plan: FaultPlan = self._toxiproxy().quota_fault(requests, window)
        return plan

    def redirect_fault(self, status: int) -> FaultPlan:
        """The registry of the sandbox the cluster pulls from (``sandbox_dir``) redirects its
        API to a new host name: the local backend's fault. The node follows it when it pulls
        from the origin (``node_pulls`` ``origin``). Refused without ``sandbox_dir``: a
        cluster's own registry ingress is not ours to rewrite."""
        if not self.all_settings.local.sandbox_dir:
            raise ConfigError(
                "the kubernetes backend cannot make a cluster's registry redirect: set "
                "configuration.sandbox_dir to the sandbox the node pulls from"
            )
        self._guard_configured_namespace()
        plan: FaultPlan = self._toxiproxy().redirect_fault(status)
        return plan

    def kill_node(self, node: str) -> FaultPlan:
        """Delete (grace period 0) the pods ``registry_nodes[node]`` picks; the undo waits until
        their controller has as many ready pods as before (it cannot bring the same pods back).

        ``mirror``, when ``registry_nodes`` has no such entry and ``sandbox_dir`` names the
        sandbox the cluster pulls through: SIGKILL of that sandbox's pull-through mirror (the
        local backend's kill, restarted by its undo), for a node that pulls through the mirror
        first (``cluster up --node-pulls mirror-first``); refused when ``node_pulls`` says the
        node pulls from the origin only."""
        known = self.settings.registry_nodes
        choice = known.get(node)
        if choice is None and node == MIRROR_NODE and self.all_settings.local.sandbox_dir:
            if self.settings.node_pulls == NODE_PULLS_ORIGIN:
                # The node never asks the mirror: the kill would hurt no pull, and a game day
                # about the fallback would pass having tested none.
                raise ConfigError(
                    "configuration.node_pulls is 'origin': this cluster's node does not pull "
                    "through the mirror, so killing it tests no fallback (bring the cluster up "
                    "with `chaosregistry cluster up --node-pulls mirror-first`)"
                )
            self._guard_configured_namespace()
            plan: FaultPlan = self._toxiproxy().kill_node(node)
            return plan
        if choice is None:
            raise ConfigError(
                f"unknown registry node {node!r}: configuration.registry_nodes.{node} needs a "
                f"selector (known: {', '.join(sorted(known)) or 'none'})"
            )
        if not self.all_settings.registry.urls.get("registry"):
            # Without it the probes fall back to the sandbox (or $CHAOSREGISTRY_URL): a kill
            # they cannot see would pass every check.
            raise ConfigError(
                f"configuration.registry_url: set it to the registry the pods of "
                f"registry_nodes.{node} serve, so the probes measure what the kill hurts"
            )
        settings = self.settings
        labels: dict[str, Any] = dict(choice.selector)
        mode = choice.mode
        namespace = settings.namespace_or(choice.namespace)
        refuse_protected(namespace)
        client = settings.client()
        pods = guard(client, namespace, labels, settings.max_pods)
        if settings.node_kill_provider == "chaos-mesh":
            return self._pod_chaos_kill(node, namespace, labels, mode, choice.value, pods)
        victims = pick_pods(pods, mode, choice.value)
        names = [p.metadata.name for p in victims if p.metadata and p.metadata.name]
        uids = [p.metadata.uid for p in victims if p.metadata and p.metadata.uid]
        killed = {
            p.metadata.name: p.metadata.uid or "" for p in victims if p.metadata and p.metadata.name
        }
        ready_before = sum(1 for p in pods if pod_ready(p))
        kubeconfig, context, timeout = settings.kubeconfig, settings.context, settings.timeout
        dry_run = settings.dry_run

        def apply() -> dict[str, Any]:
            if dry_run:
                log.warning("dry run: would delete pods %s in %s", names, namespace)
                return {"dry_run": True, "would_delete": names}
            api = kube.client(kubeconfig, timeout=timeout, context=context)
            with kube.translated():
                for name in names:
                    api.delete(Pod, name, namespace=namespace, grace_period=0)
            return {
                "deleted": names,
                "namespace": namespace,
                "ready_before": ready_before,
                **_pods_going(api, namespace, killed),
            }

        return FaultPlan(
            kind="node.kill",
            target=f"node:{node}",
            parameters={"node": node, "mode": mode, "pods": names},
            apply=apply,
            undo={
                "kind": PODS_BACK,
                "params": {
                    "kubeconfig": str(kubeconfig),
                    "context": context,
                    "timeout": timeout,
                    "namespace": namespace,
                    "selector": labels,
                    "ready": 0 if dry_run else ready_before,
                    "deleted": [] if dry_run else names,
                    "deleted_uids": [] if dry_run else uids,
                },
            },
        )
