"""chaostoolkit-registry: chaos engineering for container image registries.

Chaos Toolkit loads this package by its distribution name and calls :func:`discover`.
Activities live in ``chaosregistry.probes.*`` and ``chaosregistry.actions.*``.
"""

from typing import Any

__all__ = ["__version__", "discover"]


def _installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("chaostoolkit-registry")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        return "0.0.0"


def __getattr__(name: str) -> Any:
    # ``__version__`` is looked up on demand: importlib.metadata and its scan of the installed
    # distributions cost more than the rest of `chaosregistry --help`, which never needs it.
    if name == "__version__":
        return _installed_version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Modules whose __all__ lists activities. Kept explicit so discovery never imports test code
# or optional heavy dependencies by accident.
PROBE_MODULES = (
    "chaosregistry.probes.registry",
    "chaosregistry.probes.pull",
    "chaosregistry.probes.load",
    "chaosregistry.probes.mirror",
    "chaosregistry.probes.rollout",
    "chaosregistry.probes.hygiene",
    "chaosregistry.probes.replication",
)
ACTION_MODULES = (
    "chaosregistry.actions.network",
    "chaosregistry.actions.node",
    "chaosregistry.actions.content",
    "chaosregistry.actions.load",
    "chaosregistry.actions.deploy",
)


def discover(discover_system: bool = True) -> dict[str, Any]:
    """Describe every probe and action this extension offers (Chaos Toolkit's discovery hook)."""
    from chaoslib.discovery.discover import (
        discover_actions,
        discover_probes,
        initialize_discovery_result,
    )

    discovery: dict[str, Any] = dict(
        initialize_discovery_result("chaostoolkit-registry", _installed_version(), "registry")
    )
    for module in PROBE_MODULES:
        discovery["activities"].extend(discover_probes(module))
    for module in ACTION_MODULES:
        discovery["activities"].extend(discover_actions(module))
    return discovery
