"""Backends turn a backend-neutral fault ("300 ms on the client->registry hop") into a plan.

A :class:`FaultPlan` is everything the fault lifecycle needs: what to record in the ledger,
how to apply the fault, and the undo (as data, so any process can run it). Actions never touch
Toxiproxy, processes or Kubernetes directly: they ask :func:`backend_for` for a plan.

``configuration['backend']`` picks the backend (``local`` by default); experiments never name
one, the ``experiments/vars/<backend>.yaml`` file does.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from chaosregistry.errors import ConfigError

BACKENDS = ("local", "kubernetes")
# What a certificate fault makes a TLS server serve: a certificate past its not_after, one whose
# SANs name another host, or one signed by a CA the clients do not trust.
CERTIFICATE_KINDS = ("expired", "wrong-host", "untrusted")


@dataclass(frozen=True)
class FaultPlan:
    kind: str  # e.g. "network.latency"
    target: str  # e.g. "hop:client-registry"
    parameters: dict[str, Any]
    apply: Callable[[], Mapping[str, Any]]
    undo: dict[str, Any]
    # Seconds after which the fault ends by itself when that is sooner than the duration (a
    # killed node restarting after N seconds); None means "at the duration".
    ends_after: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)


class Backend(Protocol):
    name: str

    def hops(self) -> list[str]: ...

    def network_fault(self, kind: str, hop: str, parameters: dict[str, Any]) -> FaultPlan: ...

    def kill_node(self, node: str) -> FaultPlan: ...

    def nodes(self) -> list[str]: ...

    def certificate_fault(self, kind: str, target: str) -> FaultPlan: ...


def backend_for(configuration: Mapping[str, Any] | None) -> Backend:
    """The backend named by ``configuration['backend']`` (default ``local``)."""
    configuration = configuration or {}
    name = configuration.get("backend", "local")
    if name == "local":
        from chaosregistry.backends.local import LocalBackend

        return LocalBackend.from_configuration(configuration)
    if name == "kubernetes":
        from chaosregistry.backends.kubernetes import KubernetesBackend

        return KubernetesBackend.from_configuration(configuration)
    raise ConfigError(
        f"configuration.backend: unknown backend {name!r} (known: {', '.join(BACKENDS)})"
    )
