"""chaostoolkit-registry: chaos engineering for container image registries.

Chaos Toolkit loads this package by its distribution name and calls :func:`discover`.
Activities live in ``chaosregistry.probes.*`` and ``chaosregistry.actions.*``. The folders, by
domain (each ``__init__`` says what lives there and what it may import; docs/architecture.md
draws the whole map):

``probes/``, ``actions/``  the activities an experiment names
``experiment/``           the configuration parsed once, declared contracts, validation
``gameday/``              running a game day and judging it (the verdict, fault evidence)
``faults/``               the fault core: ledger, lifecycle, undo, watchdog, guardian
``backends/``             a backend-neutral fault turned into a plan (local sandbox, kubernetes)
``oci/``                  the pull protocol and its drivers, the one error-class table
``loadgen/``              concurrent pull load with Locust
``kubernetes/``           API clients, rollouts, Chaos Mesh objects, delivery
``observability/``        Prometheus, client-side SLIs, push notifications
``trust/``                X.509, TLS facts, cosign signatures
``reports/``              journals into HTML, summary.json, JUnit, Markdown
``sandbox/``, ``cluster/`` the two test beds (embedded registries; a real Kubernetes)
``osutil/``               process identity, locks, atomic writes, detached spawn
and the foundations beside them: ``errors`` (the exception tree), ``redaction`` (secrets by
value), ``stats`` (exact summaries), ``cli`` (the ``chaosregistry`` command) and
``cli_errors`` (every command's one-line errors).
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


# The packages whose modules are activity modules: every module directly in them whose
# ``__all__`` lists activities is discovered (a new file needs no list to be found).
ACTIVITY_PACKAGES = {"chaosregistry.probes": "probe", "chaosregistry.actions": "action"}


def activity_modules() -> dict[str, str]:
    """Every activity module of the package, found by walking ``chaosregistry.probes`` and
    ``chaosregistry.actions``: module name -> ``probe`` or ``action``, sorted by name."""
    import importlib
    import pkgutil

    found: dict[str, str] = {}
    for package_name, kind in ACTIVITY_PACKAGES.items():
        package = importlib.import_module(package_name)
        for module in pkgutil.iter_modules(package.__path__, prefix=f"{package_name}."):
            if not module.ispkg and not module.name.rsplit(".", 1)[-1].startswith("_"):
                found[module.name] = kind
    return dict(sorted(found.items()))


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
    for module, kind in activity_modules().items():
        found = discover_probes(module) if kind == "probe" else discover_actions(module)
        discovery["activities"].extend(_described(module, activity) for activity in found)
    return discovery


def _described(module_name: str, activity: dict[str, Any]) -> dict[str, Any]:
    """Chaos Toolkit's description of an activity, with the declared contracts read as ours
    are: its discovery calls ``Annotated[int, ...]`` an "object"; we give the base type's name
    (``integer``), each argument's ``domain`` in words, a probe's ``result_keys``, and what
    it may need of the embedded sandbox (``needs``, in words: ``experiment.needs``)."""
    import importlib
    import inspect

    from chaosregistry.experiment.contracts import contract_of, result_keys, type_name
    from chaosregistry.experiment.needs import declared_needs

    module = importlib.import_module(module_name)
    function = getattr(module, activity["name"])
    signature = inspect.signature(function)
    if signature.return_annotation is not inspect.Signature.empty:
        activity["return_type"] = type_name(signature.return_annotation)
    keys = result_keys(function)
    if keys is not None:
        activity["result_keys"] = list(keys)
    for argument in activity["arguments"]:
        annotation = signature.parameters[argument["name"]].annotation
        if annotation is inspect.Parameter.empty:
            continue
        argument["type"] = type_name(annotation)
        domain = contract_of(annotation).describe()
        if domain:
            argument["domain"] = domain
    needs = declared_needs(module, function)
    if needs:
        activity["needs"] = needs
    return activity
