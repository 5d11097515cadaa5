"""What a registry outage would do to a cluster's workloads, predicted from its API objects.

Pure (sans-I/O): :func:`analyze` takes the objects as the API lists them (plain JSON mappings,
one list per kind: :class:`Inventory`) and returns the prediction; ``kubernetes/inventory.py``
makes the list calls, ``probes/blast_radius.py`` and ``chaosregistry blast-radius`` drive both.

The rule, per container (init containers included) of every workload's pod template:

- its image resolved to a registry host (no host: ``docker.io``, one-word names under
  ``library/``), pinned by digest or by tag, and the hosts the nodes pull it from (the
  configured mirrors of that host first, then the host);
- its pull policy as written, else as the API server defaults it (``:latest`` or no tag:
  ``Always``, else ``IfNotPresent``);
- the nodes whose ``status.images`` name it. The kubelet lists at most
  :data:`NODE_IMAGES_CAP` images per node (``nodeStatusMaxImages``), so a node listing exactly
  that many may hold an image it does not name: such nodes are reported, and a container whose
  image is missing only from them is marked ``uncertain``.

Its class (:data:`KEEPS_RUNNING` < :data:`DEGRADED` < :data:`BREAKS`), with the reason:

- breaks: a pod of it already waits on a pull error (the image is not pullable even now: not in
  the registry, a bad name), or its registry is cut and it pulls ``Always``, or its image is on
  no node;
- degraded: its registry is cut and its image is on some schedulable nodes but not all: it
  cannot scale up (HPA bounds shown) or move to the others;
- keeps running: its registry is not cut (or a mirror of it is not), it never pulls
  (``Never``), or its image is on every schedulable node and it pulls ``IfNotPresent``.

A workload's class is its worst container's. Scheduling constraints (affinity, taints) are not
read: "every schedulable node" is every node neither cordoned nor NotReady.
"""

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chaosregistry.errors import ConfigError
from chaosregistry.oci.reference import split_image_name

__all__ = [
    "BREAKS",
    "CLASSES",
    "DEGRADED",
    "KEEPS_RUNNING",
    "NODE_IMAGES_CAP",
    "ImageName",
    "Inventory",
    "Outage",
    "analyze",
    "backoff_after",
    "is_schedulable",
    "parse_duration",
    "registry_host",
    "resolve_image",
    "table_lines",
]

KEEPS_RUNNING = "keeps-running"
DEGRADED = "degraded"
BREAKS = "breaks"
CLASSES = (KEEPS_RUNNING, DEGRADED, BREAKS)  # in order of harm
_RANK = {name: rank for rank, name in enumerate(CLASSES)}

# The kubelet's default nodeStatusMaxImages: node.status.images names at most this many images.
NODE_IMAGES_CAP = 50
# The kubelet's image pull back-off: 10 s, doubling, at most 300 s.
BACKOFF_INITIAL = 10.0
BACKOFF_MAX = 300.0
DOCKER_HUB = "docker.io"
_DOCKER_HUB_ALIASES = frozenset({"", "docker.io", "index.docker.io", "registry-1.docker.io"})
# A container waiting for one of these already cannot get its image.
PULL_ERRORS = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
)


@dataclass(frozen=True)
class Inventory:
    """The API objects the analysis reads, as listed (JSON mappings, camelCase fields)."""

    nodes: Sequence[Mapping[str, Any]] = ()
    pods: Sequence[Mapping[str, Any]] = ()
    replica_sets: Sequence[Mapping[str, Any]] = ()
    deployments: Sequence[Mapping[str, Any]] = ()
    stateful_sets: Sequence[Mapping[str, Any]] = ()
    daemon_sets: Sequence[Mapping[str, Any]] = ()
    jobs: Sequence[Mapping[str, Any]] = ()
    cron_jobs: Sequence[Mapping[str, Any]] = ()
    autoscalers: Sequence[Mapping[str, Any]] = ()  # autoscaling/v2 HorizontalPodAutoscalers
    disruption_budgets: Sequence[Mapping[str, Any]] = ()  # policy/v1 PodDisruptionBudgets


@dataclass(frozen=True)
class Outage:
    """Which registries are cut and for how long. ``hosts`` None: every registry (mirrors too)."""

    hosts: frozenset[str] | None = None
    seconds: float = 600.0
    mirrors: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def sources(self, host: str) -> tuple[str, ...]:
        """The hosts a node pulls ``host``'s images from, in order: its mirrors, then it."""
        return (*(registry_host(m) for m in self.mirrors.get(host, ())), host)

    def cuts(self, sources: Iterable[str]) -> bool:
        return self.hosts is None or all(source in self.hosts for source in sources)


@dataclass(frozen=True)
class ImageName:
    """A container's image: registry host, repository, tag and digest (either may be None)."""

    host: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def key(self) -> str:
        """What a node's image list names it by: ``host/repo@digest``, else ``host/repo:tag``."""
        if self.digest:
            return f"{self.host}/{self.repository}@{self.digest}"
        return f"{self.host}/{self.repository}:{self.tag or 'latest'}"

    @property
    def pinned(self) -> str:
        return "digest" if self.digest else "tag"

    def default_pull_policy(self) -> str:
        """The API server's default: ``Always`` for ``:latest`` or no tag, else IfNotPresent."""
        if not self.digest and (self.tag is None or self.tag == "latest"):
            return "Always"
        return "IfNotPresent"


def registry_host(text: str) -> str:
    """A registry host as nodes name it: Docker Hub's aliases are ``docker.io``; a URL's scheme
    and path are dropped."""
    host = text.strip()
    if "://" in host:
        host = host.split("://", 1)[1]
    host = host.split("/", 1)[0].lower()
    return DOCKER_HUB if host in _DOCKER_HUB_ALIASES else host


# Bounded: the cache lives as long as the process (a probe's game day, a benchmark).
@functools.lru_cache(maxsize=65536)
def resolve_image(text: str) -> ImageName:
    """``text`` (a pod's ``image``) resolved as the container runtime does; ConfigError when it
    is not an image name. ``name:tag@sha256:...`` is pulled by its digest (the tag is kept)."""
    name, at, digest = text.strip().partition("@")
    tag: str | None = None
    slash, colon = name.rfind("/"), name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    host, reference = split_image_name(f"{name}@{digest}" if at else f"{name}:{tag or 'latest'}")
    repository = reference.repository
    host = registry_host(host)
    if host == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    return ImageName(host, repository, tag, digest or None)


def _node_image_key(text: str) -> str | None:
    try:
        return resolve_image(text).key
    except ConfigError:
        return None


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*$")


def parse_duration(text: str | float, what: str = "outage") -> float:
    """``90``, ``90s``, ``10m`` or ``1h`` in seconds (> 0); ConfigError in one line otherwise."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        seconds = float(text)
    else:
        match = _DURATION.match(str(text))
        if match is None:
            raise ConfigError(f"{what} {text!r} is not a duration (90, 90s, 10m, 1h)")
        seconds = float(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2) or "s"]
    if seconds <= 0:
        raise ConfigError(f"{what} must be longer than 0 seconds, got {text!r}")
    return seconds


def backoff_after(outage_seconds: float) -> float:
    """The kubelet's pull back-off a pod that failed from the outage's start has reached when
    it ends: the longest it may wait after the registry is back before its next try."""
    elapsed, delay = 0.0, BACKOFF_INITIAL
    while elapsed + delay < outage_seconds and delay < BACKOFF_MAX:
        elapsed += delay
        delay = min(delay * 2, BACKOFF_MAX)
    return delay


# -- the objects' fields --------------------------------------------------------------------
def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _controller(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    owners = _meta(obj).get("ownerReferences") or ()
    for owner in owners:
        if owner.get("controller"):
            return owner  # type: ignore[no-any-return]
    return owners[0] if owners else None


def _matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A label selector (matchLabels and matchExpressions) against ``labels``. An empty
    selector matches everything, as a PDB's does (policy/v1)."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or ():
        key, operator = expression.get("key"), expression.get("operator")
        values = expression.get("values") or ()
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


@dataclass
class _Workload:
    kind: str
    namespace: str
    name: str
    uid: str
    template: Mapping[str, Any]  # a pod template: {metadata, spec}
    replicas: int | None = None
    suspended: bool = False
    finished: bool = False
    pods: list[Mapping[str, Any]] = field(default_factory=list)


def _workloads(inventory: Inventory) -> tuple[list[_Workload], int]:
    """Every workload with its pods: each controller kind, then the pods no known controller
    owns (bare pods, static pods, pods of controllers this analysis does not list)."""
    found: list[_Workload] = []
    by_uid: dict[str, _Workload] = {}

    def add(kind: str, obj: Mapping[str, Any], template: Mapping[str, Any], **extra: Any) -> None:
        meta = _meta(obj)
        workload = _Workload(
            kind,
            meta.get("namespace") or "",
            meta.get("name") or "",
            meta.get("uid") or "",
            template,
            **extra,
        )
        found.append(workload)
        if workload.uid:
            by_uid[workload.uid] = workload

    for obj in inventory.deployments:
        spec = obj.get("spec") or {}
        add("Deployment", obj, spec.get("template") or {}, replicas=spec.get("replicas", 1))
    for obj in inventory.stateful_sets:
        spec = obj.get("spec") or {}
        add("StatefulSet", obj, spec.get("template") or {}, replicas=spec.get("replicas", 1))
    for obj in inventory.daemon_sets:
        spec = obj.get("spec") or {}
        add("DaemonSet", obj, spec.get("template") or {})
    for obj in inventory.cron_jobs:
        spec = obj.get("spec") or {}
        job_spec = (spec.get("jobTemplate") or {}).get("spec") or {}
        add("CronJob", obj, job_spec.get("template") or {}, suspended=bool(spec.get("suspend")))
    # Pods of a Deployment belong to its ReplicaSets; of a CronJob, to its Jobs.
    via: dict[str, _Workload] = {}
    for obj in inventory.replica_sets:
        owner = _controller(obj)
        parent = by_uid.get(owner.get("uid") or "") if owner else None
        uid = _meta(obj).get("uid") or ""
        if parent is not None:
            via[uid] = parent
        else:
            spec = obj.get("spec") or {}
            add("ReplicaSet", obj, spec.get("template") or {}, replicas=spec.get("replicas", 1))
    for obj in inventory.jobs:
        owner = _controller(obj)
        parent = by_uid.get(owner.get("uid") or "") if owner else None
        uid = _meta(obj).get("uid") or ""
        if parent is not None:
            via[uid] = parent
        else:
            status = obj.get("status") or {}
            done = any(
                c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
                for c in status.get("conditions") or ()
            )
            add("Job", obj, (obj.get("spec") or {}).get("template") or {}, finished=done)

    pods = 0
    others: dict[tuple[str, str, str], _Workload] = {}
    for pod in inventory.pods:
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            continue
        pods += 1
        owner = _controller(pod)
        uid = (owner.get("uid") or "") if owner else ""
        workload = by_uid.get(uid) or via.get(uid)
        if workload is None:
            meta = _meta(pod)
            if owner is None or owner.get("kind") == "Node":  # a bare pod, or a static pod
                key = ("Pod", meta.get("namespace") or "", meta.get("name") or "")
            else:
                key = (str(owner.get("kind")), meta.get("namespace") or "", owner.get("name") or "")
            workload = others.get(key)
            if workload is None:
                workload = _Workload(*key, uid=uid, template=pod)
                others[key] = workload
                found.append(workload)
        workload.pods.append(pod)
    return found, pods


# -- the analysis ---------------------------------------------------------------------------
def is_schedulable(node: Mapping[str, Any]) -> bool:
    """Not cordoned, and not reported NotReady (a node whose Ready condition is False or
    Unknown takes no new pods; one without conditions yet counts)."""
    if (node.get("spec") or {}).get("unschedulable"):
        return False
    conditions = (node.get("status") or {}).get("conditions") or ()
    return all(c.get("status") == "True" for c in conditions if c.get("type") == "Ready")


def _node_index(
    nodes: Sequence[Mapping[str, Any]],
) -> tuple[dict[str, list[str]], list[str], list[str], list[str]]:
    """{image key: node names}, every node, the schedulable ones, those at the list's cap."""
    holding: dict[str, list[str]] = {}
    names: list[str] = []
    schedulable: list[str] = []
    capped: list[str] = []
    for node in nodes:
        name = _meta(node).get("name") or ""
        names.append(name)
        if is_schedulable(node):
            schedulable.append(name)
        images = (node.get("status") or {}).get("images") or ()
        if len(images) >= NODE_IMAGES_CAP:
            capped.append(name)
        seen: set[str] = set()
        for image in images:
            for text in image.get("names") or ():
                key = _node_image_key(text)
                if key is not None and key not in seen:
                    seen.add(key)
                    holding.setdefault(key, []).append(name)
    return holding, names, schedulable, capped


def _pull_errors(pods: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """{container: "reason: message"} of the pods' containers waiting on a pull error."""
    errors: dict[str, str] = {}
    for pod in pods:
        status = pod.get("status") or {}
        for item in (
            *(status.get("initContainerStatuses") or ()),
            *(status.get("containerStatuses") or ()),
        ):
            waiting = (item.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in PULL_ERRORS and item.get("name") not in errors:
                message = str(waiting.get("message") or "").splitlines()
                errors[str(item.get("name"))] = f"{waiting['reason']}" + (
                    f": {message[0][:200]}" if message else ""
                )
    return errors


def _container(
    spec: Mapping[str, Any],
    init: bool,
    outage: Outage,
    holding: Mapping[str, list[str]],
    context: "_Cluster",
    pull_error: str | None,
) -> dict[str, Any]:
    text = str(spec.get("image") or "")
    result: dict[str, Any] = {"name": spec.get("name"), "init": init, "image": text}
    written = spec.get("imagePullPolicy")
    try:
        image = resolve_image(text)
    except ConfigError:
        result.update(
            host=None,
            repository=None,
            tag=None,
            digest=None,
            pinned=None,
            pull_policy=written or "IfNotPresent",
            pull_policy_source="written" if written else "defaulted",
            sources=[],
            cut=False,
            nodes_with_image=[],
            on_every_node=False,
            uncertain=False,
            **{"class": BREAKS, "reason": f"{text!r} is not an image name"},
        )
        return result
    policy = written or image.default_pull_policy()
    sources = outage.sources(image.host)
    cut = outage.cuts(sources)
    nodes = holding.get(image.key, [])
    missing_from = context.schedulable_count - context.schedulable_holding(image.key)
    uncertain = missing_from > 0 and context.missing_only_capped(image.key)
    result.update(
        host=image.host,
        repository=image.repository,
        tag=image.tag,
        digest=image.digest,
        pinned=image.pinned,
        pull_policy=policy,
        pull_policy_source="written" if written else "defaulted",
        sources=list(sources),
        cut=cut,
        nodes_with_image=nodes,
        on_every_node=missing_from == 0 and context.schedulable_count > 0,
        uncertain=uncertain,
    )
    via = f" (mirrors {', '.join(sources[:-1])} first)" if len(sources) > 1 else ""
    if pull_error is not None:
        klass, reason = BREAKS, f"cannot be pulled even now ({pull_error})"
    elif not cut:
        klass, reason = KEEPS_RUNNING, f"pulls from {image.host}{via}, not cut"
    elif policy == "Never":
        klass, reason = KEEPS_RUNNING, "pullPolicy Never: the kubelet never pulls it"
    elif policy == "Always":
        klass, reason = (
            BREAKS,
            (
                f"pullPolicy Always ({result['pull_policy_source']}): every start pulls from "
                f"{image.host}{via}"
            ),
        )
    elif not nodes:
        klass, reason = BREAKS, f"image on no node: every start pulls from {image.host}{via}"
    elif missing_from > 0:
        klass, reason = (
            DEGRADED,
            (
                f"image on {context.schedulable_holding(image.key)} of {context.schedulable_count} "
                "schedulable nodes: cannot scale up or move to the others"
            ),
        )
    else:
        klass, reason = KEEPS_RUNNING, "IfNotPresent and the image is on every schedulable node"
    if uncertain and klass != KEEPS_RUNNING:
        reason += " (nodes without it list the kubelet's cap of images: it may be there)"
    result["class"] = klass
    result["reason"] = reason
    return result


class _Cluster:
    """The node facts the containers' classes need, counted once per image."""

    def __init__(self, holding: Mapping[str, list[str]], schedulable: list[str], capped: list[str]):
        self.holding = holding
        self.schedulable = frozenset(schedulable)
        self.schedulable_count = len(self.schedulable)
        self.capped = frozenset(capped)
        self._counts: dict[str, int] = {}
        self._only_capped: dict[str, bool] = {}

    def schedulable_holding(self, key: str) -> int:
        count = self._counts.get(key)
        if count is None:
            count = sum(1 for n in self.holding.get(key, ()) if n in self.schedulable)
            self._counts[key] = count
        return count

    def missing_only_capped(self, key: str) -> bool:
        """Every schedulable node without the image lists the cap (so may hold it unnamed)."""
        only = self._only_capped.get(key)
        if only is None:
            held = set(self.holding.get(key, ()))
            only = all(n in self.capped for n in self.schedulable if n not in held)
            self._only_capped[key] = only
        return only


def _autoscalers(inventory: Inventory) -> dict[tuple[str, str, str], dict[str, Any]]:
    bounds: dict[tuple[str, str, str], dict[str, Any]] = {}
    for hpa in inventory.autoscalers:
        spec = hpa.get("spec") or {}
        target = spec.get("scaleTargetRef") or {}
        key = (str(target.get("kind")), _meta(hpa).get("namespace") or "", str(target.get("name")))
        bounds[key] = {
            "name": _meta(hpa).get("name"),
            "min_replicas": spec.get("minReplicas", 1),
            "max_replicas": spec.get("maxReplicas"),
            "current_replicas": (hpa.get("status") or {}).get("currentReplicas"),
        }
    return bounds


def _budgets(inventory: Inventory) -> dict[str, list[Mapping[str, Any]]]:
    by_namespace: dict[str, list[Mapping[str, Any]]] = {}
    for pdb in inventory.disruption_budgets:
        by_namespace.setdefault(_meta(pdb).get("namespace") or "", []).append(pdb)
    return by_namespace


def _budget(pdb: Mapping[str, Any]) -> dict[str, Any]:
    spec, status = pdb.get("spec") or {}, pdb.get("status") or {}
    return {
        "name": _meta(pdb).get("name"),
        "min_available": spec.get("minAvailable"),
        "max_unavailable": spec.get("maxUnavailable"),
        "disruptions_allowed": status.get("disruptionsAllowed"),
    }


def analyze(inventory: Inventory, outage: Outage) -> dict[str, Any]:
    """The blast radius of ``outage`` over ``inventory`` (see the module's docstring).

    Returns ``workloads`` [{kind, namespace, name, class, reason, replicas, pods, nodes (where
    its pods run), hpa {name, min_replicas, max_replicas, current_replicas} or null, pdbs
    [{name, min_available, max_unavailable, disruptions_allowed}], containers [{name, init,
    image, host, repository, tag, digest, pinned (digest | tag), pull_policy,
    pull_policy_source (written | defaulted), sources (hosts pulled from, mirrors first),
    cut, nodes_with_image, on_every_node, uncertain, class, reason}]}] (breaks first),
    ``classes`` {class: workloads}, ``keeps_running``, ``degraded``, ``breaks`` (counts),
    ``outage`` {registries (null: every registry), seconds, backoff_after_heal_seconds},
    ``nodes``, ``schedulable_nodes``, ``pods``, ``capped_nodes`` (nodes listing exactly the
    kubelet's cap of images) and ``notes``.
    """
    holding, node_names, schedulable, capped = _node_index(inventory.nodes)
    cluster = _Cluster(holding, schedulable, capped)
    autoscalers = _autoscalers(inventory)
    budgets = _budgets(inventory)
    workloads, pod_count = _workloads(inventory)
    rows: list[dict[str, Any]] = []
    for workload in workloads:
        template_spec = workload.template.get("spec") or {}
        labels = _meta(workload.template).get("labels") or {}
        errors = _pull_errors(workload.pods)
        containers = [
            _container(spec, init, outage, holding, cluster, errors.get(str(spec.get("name"))))
            for init, key in ((True, "initContainers"), (False, "containers"))
            for spec in template_spec.get(key) or ()
        ]
        worst = max(containers, key=lambda c: _RANK[c["class"]], default=None)
        klass = worst["class"] if worst else KEEPS_RUNNING
        reason = f"{worst['name']}: {worst['reason']}" if worst else "no containers"
        hpa = autoscalers.get((workload.kind, workload.namespace, workload.name))
        if klass == DEGRADED and hpa and hpa.get("max_replicas") is not None:
            reason += f" (HPA may scale it to {hpa['max_replicas']})"
        if workload.kind == "CronJob" and workload.suspended:
            reason += " (suspended: starts no Job now)"
        if workload.finished:
            klass, reason = KEEPS_RUNNING, "finished: starts no pod"
        rows.append(
            {
                "kind": workload.kind,
                "namespace": workload.namespace,
                "name": workload.name,
                "class": klass,
                "reason": reason,
                "replicas": workload.replicas,
                "pods": len(workload.pods),
                "nodes": sorted(
                    {str((p.get("spec") or {}).get("nodeName")) for p in workload.pods} - {"None"}
                ),
                "hpa": hpa,
                "pdbs": [
                    _budget(pdb)
                    for pdb in budgets.get(workload.namespace, ())
                    if labels and _matches((pdb.get("spec") or {}).get("selector"), labels)
                ],
                "containers": containers,
            }
        )
    rows.sort(key=lambda r: (-_RANK[r["class"]], r["namespace"], r["kind"], r["name"]))
    counts = {name: sum(1 for r in rows if r["class"] == name) for name in CLASSES}
    notes = []
    if capped:
        notes.append(
            f"{len(capped)} node(s) list exactly {NODE_IMAGES_CAP} images, the kubelet's cap "
            "(nodeStatusMaxImages): they may hold images they do not name, so an image missing "
            "only from them is marked uncertain"
        )
    if not node_names:
        notes.append("no nodes listed: every image counts as on no node")
    silent = [
        _meta(n).get("name") for n in inventory.nodes if not (n.get("status") or {}).get("images")
    ]
    if silent:
        notes.append(
            f"{len(silent)} node(s) list no images (a kubelet reports them within about 30 s "
            f"of starting): {', '.join(map(str, silent[:5]))}; images count as absent there"
        )
    return {
        "workloads": rows,
        "classes": counts,
        "keeps_running": counts[KEEPS_RUNNING],
        "degraded": counts[DEGRADED],
        "breaks": counts[BREAKS],
        "outage": {
            "registries": None if outage.hosts is None else sorted(outage.hosts),
            "seconds": outage.seconds,
            "backoff_after_heal_seconds": backoff_after(outage.seconds),
        },
        "nodes": len(node_names),
        "schedulable_nodes": len(schedulable),
        "pods": pod_count,
        "capped_nodes": sorted(capped),
        "notes": notes,
    }


def table_lines(result: Mapping[str, Any]) -> list[str]:
    """The prediction as a text table, one workload a line, then the totals and notes."""
    rows = [
        (
            str(w["class"]),
            f"{w['kind']}/{w['namespace']}/{w['name']}"
            if w["namespace"]
            else f"{w['kind']}/{w['name']}",
            " ".join(sorted({f"{c['pull_policy']}:{c['pinned'] or '?'}" for c in w["containers"]})),
            str(w["reason"]),
        )
        for w in result["workloads"]
    ]
    headers = ("CLASS", "WORKLOAD", "PULL:PIN", "REASON")
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers[:3])]
    lines = ["  ".join(h.ljust(widths[i]) if i < 3 else h for i, h in enumerate(headers)).rstrip()]
    lines += ["  ".join(r[i].ljust(widths[i]) if i < 3 else r[i] for i in range(4)) for r in rows]
    outage = result["outage"]
    cut = ", ".join(outage["registries"]) if outage["registries"] else "every registry"
    lines.append("")
    lines.append(
        f"outage of {cut} for {outage['seconds']:g} s: "
        + ", ".join(f"{result['classes'][c]} {c}" for c in CLASSES)
        + f" ({len(result['workloads'])} workloads, {result['pods']} pods, "
        f"{result['nodes']} nodes); pods failing to pull wait up to "
        f"{outage['backoff_after_heal_seconds']:g} s of back-off after it heals"
    )
    lines.extend(f"note: {note}" for note in result["notes"])
    return lines
