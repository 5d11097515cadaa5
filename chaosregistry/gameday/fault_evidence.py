"""What a run can show about each fault it injected: applied, confirmed, measured.

A game day's *passed* needs, for every fault of the run (docs/architecture.md, "Verdicts"):

* **applied**: the ledger entry reached ``injected`` with what was applied recorded. A dry run
  (``dry_run: true`` in what it recorded) applied nothing: never applied, marked ``dry_run``.
* **confirmed**: the backend saw the fault in place when it applied it (``injected:
  confirmed`` in its record, with ``confirmed_by``; ``backends.plan.confirmed``). A Chaos Mesh
  object its controller never reported (``injected: unconfirmed``) is not.
* **measured**: something crossed the faulted hop or target while the fault was active
  (``injected_at`` .. ``reverted_at``, or the end of the run for one never reverted):

  - direct evidence, for a fault on a Toxiproxy hop: the hop's byte counters
    (Toxiproxy's ``-proxy-metrics``) read at inject and at revert differ. Toxiproxy adds a
    connection's bytes when the connection closes, so the difference counts the connections
    through the hop that closed inside the window: a probe's pulls (its client closes when it
    ends), not a keep-alive client still connected at the revert (a Locust load, containerd
    after the kubelet's pulls: 0 bytes for a rollout through the hop on the test cluster);
  - otherwise, or when the counters did not move (a cut hop counts nothing; nodes,
    certificates, auth, kubernetes faults), a probe of the journal (hypothesis, during-checks,
    method) or a pull of a load whose time overlaps the window and whose traffic crosses the
    target. Where an activity's traffic goes is derived from its arguments: ``target`` /
    ``source`` (a registry name or URL, resolved as the activity resolves it), ``replica``
    (the hops that lead into it), ``deployment`` (the kubelet's pulls: through the mirror when
    ``node_pulls`` says ``mirror-first``, from the registry when it says ``origin``, either
    when it says nothing), a load's ``target_url``; then followed through the sandbox's wiring
    (``sandbox.layout.forwarding``). A fault on an image is crossed by an activity on that
    image, a fault on a Deployment by one on that Deployment, or by a probe that watches
    every provoked Deployment of its namespace (``prediction_agreement``, whose pods' pulls
    cross the kubelet's path as a ``deployment`` does).

Nothing here changes anything: it reads ledger entries, a journal and load records.
"""

import importlib
import inspect
import math
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from chaosregistry.backends.plan import CONFIRMED
from chaosregistry.errors import ConfigError
from chaosregistry.experiment.kinds import ResultKind
from chaosregistry.experiment.settings import (
    NODE_PULLS_MIRROR_FIRST,
    NODE_PULLS_ORIGIN,
    Settings,
    settings_for,
)
from chaosregistry.faults.ledger import Entry
from chaosregistry.gameday.journal import ActivityRun, Journal, journal_of
from chaosregistry.gameday.verdict import FaultEvidence, LoadEvidence, started_loads
from chaosregistry.loadgen import records
from chaosregistry.loadgen.store import LOAD_KIND
from chaosregistry.sandbox.layout import HOST, Ports, forwarding

OUR_MODULES = "chaosregistry."
# Arguments that name where an activity's requests go, and the one naming where content it
# waits for arrives (replication: the hops that lead into that registry carry it).
TARGET_ARGUMENTS = ("target", "source")
REPLICA_ARGUMENT = "replica"
# Where the kubelet's pulls go, by ``node_pulls``: the registry names they start at.
NODE_PULL_PATHS: dict[str | None, tuple[str, ...]] = {
    NODE_PULLS_ORIGIN: ("registry",),
    NODE_PULLS_MIRROR_FIRST: ("mirror",),
}
_EITHER_PATH: tuple[str, ...] = ("registry", "mirror")
# A measurement of every Deployment of a namespace names "<namespace>/*".
EVERY_DEPLOYMENT = "*"


@dataclass(frozen=True)
class Measurement:
    """One probe run or one load's pulls: when, and what its traffic crossed."""

    name: str
    start: float
    end: float
    addresses: frozenset[str]  # "host:port" of every listener its requests pass
    images: frozenset[str] = frozenset()
    deployments: frozenset[str] = frozenset()  # "namespace/name" or "name"


def fault_evidence(
    entries: Iterable[Entry],
    journal: Journal | Mapping[str, Any] | None,
    *,
    configuration: Mapping[str, Any] | None = None,
    settings: Settings | None = None,
    loads: Iterable[LoadEvidence] = (),
    run_ended: float | None = None,
) -> tuple[FaultEvidence, ...]:
    """The evidence for each fault among ``entries`` (one run's ledger entries; its loads'
    own entries are left out).

    ``configuration`` is the run's effective configuration (``${...}`` of the journal's
    arguments are resolved with it); ``settings`` the run's settings, where the sandbox and
    ``node_pulls`` are read (default: ``configuration``'s); ``loads``
    are the run's loads with their records (``verdict.load_evidence``); ``run_ended`` closes the
    window of a fault never reverted (default: now).
    """
    faults = [entry for entry in entries if entry.kind != LOAD_KIND]
    parsed = journal_of(journal)
    config = dict(configuration or {})
    settings = settings if settings is not None else settings_for(config)
    wiring = _Wiring.of(settings)
    measurements = [
        *_probe_measurements(parsed, config, settings, wiring),
        *_load_measurements(parsed, loads, wiring),
    ]
    return (
        *(_evidence(entry, measurements, wiring, settings, run_ended) for entry in faults),
        *_unrecorded_dry_runs(parsed),
    )


def _unrecorded_dry_runs(journal: Journal | None) -> Iterator[FaultEvidence]:
    """A method action of ours that ran as a dry run without a ledger entry (the bad-tag
    deploy, which records nothing when it changes nothing): its own evidence, so a dry run is
    never mistaken for a run without faults."""
    for run in journal.run if journal is not None else ():
        output, provider = run.output, run.activity.provider
        if not isinstance(output, Mapping):
            continue
        if output.get("dry_run") is not True or "fault_id" in output:
            continue
        if not run.is_action or not provider.module.startswith(OUR_MODULES):
            continue
        name = run.activity.name or provider.func
        yield FaultEvidence(
            id=f"dry-run:{name}",
            kind=f"{provider.module}.{provider.func}",
            target=str(output.get("target") or output.get("deployment") or "-"),
            applied=False,
            confirmed=False,
            measured=False,
            dry_run=True,
            detail=f"action {name} ran as a dry run: nothing was applied or recorded",
        )


# An apply is called slow, and the evidence says how long it took, from this many seconds and
# this share of the fault's duration (a read-only fault's apply restarts three processes).
SLOW_APPLY_SECONDS = 1.0
SLOW_APPLY_SHARE = 0.1


# -- one fault -----------------------------------------------------------------------------------
def _evidence(
    entry: Entry,
    measurements: list[Measurement],
    wiring: "_Wiring",
    settings: Settings,
    run_ended: float | None,
) -> FaultEvidence:
    applied_record = entry.applied if isinstance(entry.applied, dict) else None
    dry_run = bool(applied_record and applied_record.get("dry_run") is True)

    def result(applied: bool, confirmed: bool, measured: bool, detail: str) -> FaultEvidence:
        return FaultEvidence(
            entry.id, entry.kind, entry.target, applied, confirmed, measured, dry_run, detail
        )

    if dry_run:
        return result(False, False, False, "dry run, nothing was applied")
    if entry.injected_at is None or applied_record is None:
        why = entry.last_error or f"the ledger says {entry.state}"
        return result(False, False, False, f"never applied: {why}")
    if applied_record.get("injected") != CONFIRMED:
        said = applied_record.get("injected")
        return result(
            True,
            False,
            False,
            "applied but not confirmed in place"
            + (f" (the backend reported injected: {said})" if said else ""),
        )
    confirmed_by = str(applied_record.get("confirmed_by") or "confirmed")
    start = entry.injected_at
    end = entry.reverted_at if entry.reverted_at is not None else (run_ended or time.time())
    window = f"{end - start:.1f}s window"
    # The duration counts from the record, before the apply (docs/safety.md): an apply that
    # took a good part of it left the fault less time in place than the experiment asked.
    asked, took = entry.expires_at - entry.created_at, start - entry.created_at
    if took >= max(SLOW_APPLY_SECONDS, SLOW_APPLY_SHARE * asked):
        window += f" (its apply took {took:.1f}s of the {asked:g}s asked)"
    carried = hop_bytes(applied_record)
    if carried:
        return result(
            True,
            True,
            True,
            f"{confirmed_by}; {carried} bytes crossed the hop in its {window} "
            "(Toxiproxy's counters at inject and revert)",
        )
    crossing = [
        m
        for m in measurements
        if m.start < end and m.end > start and _crosses(m, entry, wiring, settings)
    ]
    if crossing:
        names = ", ".join(sorted({m.name for m in crossing}))
        return result(True, True, True, f"{confirmed_by}; measured in its {window} by {names}")
    counters = "" if carried is None else "; no bytes crossed the hop"
    return result(
        True,
        True,
        False,
        f"met no measurement in its {window}: no probe or load crossed "
        f"{entry.target} while it was active{counters}",
    )


def hop_bytes(applied: Mapping[str, Any]) -> int | None:
    """Bytes the faulted hop received (both directions) between the readings taken at inject
    and at revert; None without both readings (no counters, not reverted, Toxiproxy
    restarted in between)."""
    before = _received(applied.get("hop_traffic"))
    after = _received(_mapping(applied.get("at_revert")).get("hop_traffic"))
    if before is None or after is None:
        return None
    carried = sum(after.values()) - sum(before.values())
    return carried if carried >= 0 else None  # counters reset: Toxiproxy restarted


def _received(sample: Any) -> dict[str, int] | None:
    if not isinstance(sample, Mapping):
        return None
    received = sample.get("received")
    if not isinstance(received, Mapping):
        return None
    return {str(k): int(v) for k, v in received.items() if isinstance(v, int | float)}


# -- where a fault sits, where traffic goes -------------------------------------------------------
@dataclass(frozen=True)
class _Wiring:
    """The sandbox's listeners and what each passes requests on to (empty without a sandbox)."""

    endpoints: Mapping[str, Any]
    edges: Mapping[str, tuple[str, ...]]
    names: Mapping[str, str]  # process or hop name -> its address

    @classmethod
    def of(cls, settings: Settings) -> "_Wiring":
        try:
            endpoints = settings.registry.endpoints()
        except ConfigError:
            endpoints = {}
        base = endpoints.get("base_port")
        if not isinstance(base, int):
            return cls(endpoints, {}, {})
        ports = Ports(base)
        second_site = bool(endpoints.get("second_site"))
        edges = {
            _address(HOST, port): tuple(_address(HOST, p) for p in onward)
            for port, onward in forwarding(ports, second_site).items()
        }
        names = {name: _address(HOST, port) for name, port in ports.all().items()}
        for hop, spec in (endpoints.get("hops") or {}).items():
            names[str(hop)] = str(spec.get("listen"))
        return cls(endpoints, edges, names)

    def reach(self, start: Iterable[str]) -> frozenset[str]:
        """Every address a request to ``start`` passes (following the wiring)."""
        seen: set[str] = set()
        todo = list(start)
        while todo:
            address = todo.pop()
            if address in seen:
                continue
            seen.add(address)
            todo.extend(self.edges.get(address, ()))
        return frozenset(seen)

    def leading_into(self, address: str) -> frozenset[str]:
        """The listeners whose requests end up at ``address`` (its ways in)."""
        return frozenset(a for a in self.edges if address in self.reach(self.edges[a]))


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _address(host: str, port: int) -> str:
    return f"{host}:{port}"


def url_address(url: Any) -> str | None:
    """``host:port`` of a URL (the scheme's default port when it names none)."""
    if not isinstance(url, str) or "://" not in url:
        return None
    parts = urlsplit(url)
    if not parts.hostname:
        return None
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    host = "127.0.0.1" if parts.hostname == "localhost" else parts.hostname
    return _address(host, port)


def _registry_url(name: str, settings: Settings, wiring: _Wiring) -> str | None:
    """The URL a registry name or URL stands for, as ``RegistrySettings.resolve`` picks it."""
    if "://" in name:
        return name
    url = settings.registry.urls.get(name) or wiring.endpoints.get(name)
    return str(url) if isinstance(url, str) and url else None


def _fault_addresses(entry: Entry, wiring: _Wiring, settings: Settings) -> frozenset[str]:
    """The listeners a fault sits on: its hop, its process, the server it changed."""
    name = entry.target.partition(":")[2]
    if (
        entry.target.startswith("node:")
        and settings.backend == "kubernetes"
        and name in settings.kubernetes.registry_nodes
    ):
        # Registry pods (kubernetes registry_nodes) serve the configured registry, which is what
        # a kill of them hurts; the sandbox's process of the same name is another server.
        address = url_address(settings.registry.urls.get("registry"))
        return frozenset({address} if address else ())
    found: set[str] = set()
    applied = entry.applied if isinstance(entry.applied, dict) else {}
    for url in (applied.get("url"), wiring.endpoints.get(f"{name}_direct")):
        address = url_address(url)
        if address:
            found.add(address)
    if name in wiring.names:
        found.add(wiring.names[name])
    if not found:
        address = url_address(_registry_url(name, settings, wiring))
        if address:
            found.add(address)
    return frozenset(found)


def _crosses(m: Measurement, entry: Entry, wiring: _Wiring, settings: Settings) -> bool:
    scheme, _, name = entry.target.partition(":")
    if scheme == "image":
        return name in m.images
    if scheme == "deployment":
        namespace, _, bare = name.partition("/")
        every = f"{namespace}/{EVERY_DEPLOYMENT}"
        return name in m.deployments or bare in m.deployments or every in m.deployments
    return bool(_fault_addresses(entry, wiring, settings) & m.addresses)


# -- the run's measurements ----------------------------------------------------------------------
def _probe_runs(journal: Journal | None) -> Iterator[ActivityRun]:
    """Every probe run of the journal: hypothesis before, during and after, and the method's."""
    if journal is None:
        return
    yield from journal.probe_runs()
    yield from (run for run in journal.run if run.is_probe)


def _probe_measurements(
    journal: Journal | None,
    configuration: dict[str, Any],
    settings: Settings,
    wiring: _Wiring,
) -> Iterator[Measurement]:
    for run in _probe_runs(journal):
        start, end, provider = run.start, run.end, run.activity.provider
        if start is None or end is None or not provider.module.startswith(OUR_MODULES):
            continue
        arguments = _arguments(provider.module, provider.func, provider.arguments, configuration)
        if arguments is None:
            continue
        deployments = _deployments(arguments)
        if run.kind is ResultKind.PREDICTION_AGREEMENT:
            # It watches every provoked Deployment of its namespace, and so the kubelet's pulls
            # of their pods.
            namespace = settings.kubernetes.namespace_or(str(arguments.get("namespace") or ""))
            deployments |= {f"{namespace}/{EVERY_DEPLOYMENT}"}
        yield Measurement(
            name=str(run.activity.name or provider.func),
            start=start,
            end=end,
            addresses=_activity_addresses(
                arguments, settings, wiring, kubelet_pulls=bool(deployments)
            ),
            images=frozenset(str(arguments[k]) for k in ("image",) if arguments.get(k)),
            deployments=deployments,
        )


def _arguments(
    module: str, func: str, arguments: Mapping[str, Any], configuration: dict[str, Any]
) -> dict[str, Any] | None:
    """The call's arguments as the activity saw them: given ones resolved (Chaos Toolkit's
    ``substitute``), defaults filled."""
    from chaoslib import substitute

    try:
        parameters = inspect.signature(getattr(importlib.import_module(module), func)).parameters
    except (ImportError, AttributeError, TypeError, ValueError):
        return None
    given = {str(k): substitute(v, configuration, None) for k, v in arguments.items()}
    return {
        name: given.get(name, parameter.default)
        for name, parameter in parameters.items()
        if name in given or parameter.default is not inspect.Parameter.empty
    }


def _activity_addresses(
    arguments: Mapping[str, Any], settings: Settings, wiring: _Wiring, *, kubelet_pulls: bool
) -> frozenset[str]:
    starts: set[str] = set()
    for key in TARGET_ARGUMENTS:
        value = arguments.get(key)
        address = (
            url_address(_registry_url(value, settings, wiring)) if isinstance(value, str) else None
        )
        if address:
            starts.add(address)
    if kubelet_pulls:
        # The kubelet pulls the Deployment's images as ``node_pulls`` says; when it says
        # nothing, either way (the mirror kill is allowed then too).
        for pulls_from in NODE_PULL_PATHS.get(settings.kubernetes.node_pulls, _EITHER_PATH):
            address = url_address(_registry_url(pulls_from, settings, wiring))
            if address:
                starts.add(address)
    reached = set(wiring.reach(starts))
    replica = arguments.get(REPLICA_ARGUMENT)
    if isinstance(replica, str) and replica:
        address = url_address(_registry_url(replica, settings, wiring))
        if address:
            reached |= wiring.leading_into(address) | {address}
    return frozenset(reached)


def _deployments(arguments: Mapping[str, Any]) -> frozenset[str]:
    name = arguments.get("deployment")
    if not isinstance(name, str) or not name:
        return frozenset()
    namespace = arguments.get("namespace")
    return frozenset({name, f"{namespace}/{name}"} if namespace else {name})


def _load_measurements(
    journal: Journal | None, loads: Iterable[LoadEvidence], wiring: _Wiring
) -> Iterator[Measurement]:
    """Each pull of each load, with the load's target (one measurement a pull: a pull that
    overlaps the window is what crossed the fault)."""
    targets = {
        str(output.get("load_id")): url_address(output.get("target_url"))
        for _, output in started_loads(journal)
    }
    for load in loads:
        address = targets.get(load.load_id)
        if not load.found or address is None:
            continue
        reached = wiring.reach({address})
        for record in records.read_records(Path(load.records_dir)):
            start, end = float(record["start"]), float(record["end"])
            if math.isfinite(start) and math.isfinite(end):
                yield Measurement(
                    name=f"load {load.load_id}",
                    start=start,
                    end=end,
                    addresses=reached,
                    images=frozenset({str(record.get("image") or "")}),
                )
