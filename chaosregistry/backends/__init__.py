"""Backends turn a backend-neutral fault ("300 ms on the client->registry hop") into a plan.

A :class:`FaultPlan` is everything the fault lifecycle needs: what to record in the ledger,
how to apply the fault, and the undo (as data, so any process can run it). Actions never touch
Toxiproxy, processes or Kubernetes directly: they ask :func:`backend_for` for a plan.

``configuration.backend`` picks the backend (``local`` by default); experiments never name
one, the ``experiments/vars/<backend>.yaml`` file does. Backends are built from the typed
:class:`~chaosregistry.experiment.settings.Settings` (``settings_for(configuration)``), never
from the configuration mapping.

Layer: services (may import the package root, protocols and foundations; see docs/architecture.md).
"""

from chaosregistry.backends.plan import AUTH_KINDS, BACKENDS, CERTIFICATE_KINDS, Backend, FaultPlan
from chaosregistry.experiment.settings import Settings

__all__ = ["AUTH_KINDS", "BACKENDS", "CERTIFICATE_KINDS", "Backend", "FaultPlan", "backend_for"]


def backend_for(settings: Settings) -> Backend:
    """The backend ``settings.backend`` names (the parse has refused any other name)."""
    if settings.backend == "kubernetes":
        from chaosregistry.backends.kubernetes import KubernetesBackend
        from chaosregistry.backends.kubernetes_deploy import sweep

        backend = KubernetesBackend(settings)
        # Before any new fault: revert expired bad tags nobody is left to undo.
        sweep(backend.settings)
        return backend
    from chaosregistry.backends.local import LocalBackend

    return LocalBackend.from_settings(settings.local)
