"""Backends turn a backend-neutral fault ("300 ms on the client->registry hop") into a plan.

A :class:`FaultPlan` is everything the fault lifecycle needs: what to record in the ledger,
how to apply the fault, and the undo (as data, so any process can run it). Actions never touch
Toxiproxy, processes or Kubernetes directly: they ask :func:`backend_for` for a plan.

``configuration['backend']`` picks the backend (``local`` by default); experiments never name
one, the ``experiments/vars/<backend>.yaml`` file does.
"""

from collections.abc import Mapping
from typing import Any

from chaosregistry.backends.plan import BACKENDS, CERTIFICATE_KINDS, Backend, FaultPlan
from chaosregistry.errors import ConfigError

__all__ = ["BACKENDS", "CERTIFICATE_KINDS", "Backend", "FaultPlan", "backend_for"]


def backend_for(configuration: Mapping[str, Any] | None) -> Backend:
    """The backend named by ``configuration['backend']`` (default ``local``)."""
    configuration = configuration or {}
    name = configuration.get("backend", "local")
    if name == "local":
        from chaosregistry.backends.local import LocalBackend

        return LocalBackend.from_configuration(configuration)
    if name == "kubernetes":
        from chaosregistry.backends.kubernetes import KubernetesBackend
        from chaosregistry.backends.kubernetes_deploy import sweep

        backend = KubernetesBackend.from_configuration(configuration)
        # Before any new fault: revert expired bad tags nobody is left to undo.
        sweep(backend.settings)
        return backend
    raise ConfigError(
        f"configuration.backend: unknown backend {name!r} (known: {', '.join(BACKENDS)})"
    )
