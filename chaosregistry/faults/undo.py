"""Undo handlers, looked up by name when a fault is reverted.

A ledger entry stores its undo as data, ``{"kind": "toxiproxy.toxic", "params": {...}}``, so
that any process (the watchdog, ``chaosregistry rollback``) can undo a fault it did not
inject. A handler takes those params, removes the fault and returns only after VERIFYING it is
gone; it raises when it is not (the entry then becomes revert-failed and is retried). Handlers
must be idempotent: undoing a fault that is already gone succeeds. A handler may return what it
observed while verifying (e.g. a hop's byte counters); the ledger keeps it with the entry
(``applied["at_revert"]``), as evidence of what the fault met.

Handlers are registered with ``@undo_handler("name")`` in the modules listed in
``UNDO_MODULES``. A lookup imports as little as it can: nothing when the handler is registered
already (the process that injects a fault has imported its backend), else the module the ledger
entry names (``undo_module``), and only when that fails every listed module, so a fresh process
still finds every handler. Importing them all costs about 0.7 s of CPU (the Kubernetes backends
bring their client library), which a watchdog started for every fault would otherwise pay for
handlers it never runs. A module that defines handlers adds its import path to that tuple.
"""

import importlib
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from chaosregistry.errors import ChaosRegistryError
from chaosregistry.faults.ledger import validate_undo

log = logging.getLogger(__name__)

UndoHandler = Callable[[Mapping[str, Any]], Mapping[str, Any] | None]

# Modules whose import registers undo handlers. Add yours here.
UNDO_MODULES: tuple[str, ...] = (
    "chaosregistry.faults.toxiproxy_undo",
    "chaosregistry.backends.local",  # sandbox.restart-process
    "chaosregistry.backends.local_certificates",  # sandbox.tls-restore
    "chaosregistry.backends.local_auth",  # auth.token-path/token-key/htpasswd-restore
    "chaosregistry.backends.local_signatures",  # registry.restore-manifests
    "chaosregistry.backends.local_referrers",  # sandbox.referrers-restore
    "chaosregistry.backends.local_upstream",  # sandbox.upstream-restore
    "chaosregistry.backends.local_quota",  # sandbox.quota-restore
    "chaosregistry.backends.local_registry_changes",  # sandbox.read-only-restore
    "chaosregistry.backends.local_redirect",  # sandbox.redirect-restore
    "chaosregistry.loadgen.processes",  # process.terminate (Locust loads)
    "chaosregistry.backends.kubernetes",  # chaosmesh.delete (NetworkChaos)
    "chaosregistry.backends.kubernetes_deploy",  # kubernetes.rollout-undo, scale-restore
    "chaosregistry.backends.kubernetes_pods",  # kubernetes.pods-back, chaosmesh.pod-kill-back
    "chaosregistry.backends.kubernetes_provoke",  # kubernetes.provoke-undo
)


class UndoError(ChaosRegistryError):
    """An undo could not be run or could not be verified; the fault may still be in place."""


def string_param(params: Mapping[str, Any], name: str) -> str:
    """Undo parameter ``name``, a non-empty string; UndoError otherwise (a ledger entry
    written by another version, or edited by hand)."""
    value = params.get(name)
    if not isinstance(value, str) or not value:
        raise UndoError(f"undo params need a non-empty string {name!r}")
    return value


_handlers: dict[str, UndoHandler] = {}
_import_errors: dict[str, str] = {}
_loaded = False
_load_lock = threading.Lock()


def undo_handler(name: str) -> Callable[[UndoHandler], UndoHandler]:
    """Register the decorated function as the undo handler called ``name``."""

    def register(func: UndoHandler) -> UndoHandler:
        existing = _handlers.get(name)
        # The same function registering again (a module reloaded) is fine; two different
        # functions claiming one name would make reverts depend on import order.
        if existing is not None and _qualified(existing) != _qualified(func):
            raise ValueError(
                f"undo handler {name!r} is already registered by {_qualified(existing)}"
            )
        _handlers[name] = func
        return func

    return register


def _qualified(func: UndoHandler) -> str:
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"


def _load_modules() -> None:
    global _loaded
    with _load_lock:
        if _loaded:
            return
        for module in UNDO_MODULES:
            try:
                importlib.import_module(module)
            except Exception as exc:  # one broken module must not hide every other handler
                _import_errors[module] = f"{type(exc).__name__}: {exc}"
                log.error("cannot import undo handlers from %s: %s", module, exc)
        _loaded = True


# Modules a fresh process may import because a ledger entry names them (see ``get_handler``):
# only this project's own code, never an arbitrary module named in a file.
IMPORTABLE_PREFIX = "chaosregistry."


def get_handler(name: str, module: str | None = None) -> UndoHandler:
    """The handler registered as ``name``; UndoError when there is none.

    ``module`` is where the handler was registered when the fault was recorded: a handler
    from a module of this project not (yet) listed in ``UNDO_MODULES`` is still found.
    """
    handler = _handlers.get(name)
    if handler is None and module and module.startswith(IMPORTABLE_PREFIX):
        try:
            importlib.import_module(module)
        except Exception as exc:
            _import_errors[module] = f"{type(exc).__name__}: {exc}"
        handler = _handlers.get(name)
    if handler is None:
        _load_modules()
        handler = _handlers.get(name)
    if handler is None:
        detail = "; ".join(f"{module}: {error}" for module, error in _import_errors.items())
        raise UndoError(
            f"no undo handler named {name!r}"
            + (f" (modules that failed to import: {detail})" if detail else "")
        )
    return handler


def reachable_module(name: str) -> str:
    """The module that registers handler ``name``, checked to be importable by a fresh process
    (the watchdog); UndoError when it is not, so such a fault is never injected."""
    module = str(getattr(get_handler(name), "__module__", ""))
    if module not in UNDO_MODULES and not module.startswith(IMPORTABLE_PREFIX):
        raise UndoError(
            f"undo handler {name!r} is defined in {module or 'an unnamed module'}, which the "
            f"watchdog cannot import: add the module to {__name__}.UNDO_MODULES"
        )
    return module


def handler_names() -> list[str]:
    """Every registered handler name, sorted."""
    _load_modules()
    return sorted(_handlers)


def run_undo(undo: Mapping[str, Any], *, module: str | None = None) -> Mapping[str, Any] | None:
    """Run the undo described by ``undo``; returns once the handler verified the fault is gone,
    with what the handler observed (None when it reports nothing).

    ``module`` is the handler's module as recorded with the fault. Raises UndoError (or the
    handler's own ChaosRegistryError) when it could not.
    """
    validate_undo(undo, error=UndoError)
    return get_handler(undo["kind"], module)(undo["params"])
