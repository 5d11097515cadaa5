"""Undo handlers, looked up by name when a fault is reverted.

A ledger entry stores its undo as data, ``{"kind": "toxiproxy.toxic", "params": {...}}``, so
that any process (the watchdog, ``chaosregistry rollback``) can undo a fault it did not
inject. A handler takes those params, removes the fault and returns only after VERIFYING it is
gone; it raises when it is not (the entry then becomes revert-failed and is retried). Handlers
must be idempotent: undoing a fault that is already gone succeeds.

Handlers are registered with ``@undo_handler("name")`` in the modules listed in
``UNDO_MODULES``; they are imported on first lookup, so a fresh process finds every handler.
A module that defines handlers adds its import path to that tuple.
"""

import importlib
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from chaosregistry.errors import ChaosRegistryError
from chaosregistry.faults.ledger import validate_undo

log = logging.getLogger(__name__)

UndoHandler = Callable[[Mapping[str, Any]], None]

# Modules whose import registers undo handlers. Add yours here.
UNDO_MODULES: tuple[str, ...] = (
    "chaosregistry.faults.toxiproxy_undo",
    "chaosregistry.backends.local",  # sandbox.restart-process
)


class UndoError(ChaosRegistryError):
    """An undo could not be run or could not be verified; the fault may still be in place."""


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


def get_handler(name: str) -> UndoHandler:
    """The handler registered as ``name``; UndoError when there is none."""
    _load_modules()
    handler = _handlers.get(name)
    if handler is None:
        detail = "; ".join(f"{module}: {error}" for module, error in _import_errors.items())
        raise UndoError(
            f"no undo handler named {name!r}"
            + (f" (modules that failed to import: {detail})" if detail else "")
        )
    return handler


def handler_names() -> list[str]:
    """Every registered handler name, sorted."""
    _load_modules()
    return sorted(_handlers)


def run_undo(undo: Mapping[str, Any]) -> None:
    """Run the undo described by ``undo``; returns once the handler verified the fault is gone.

    Raises UndoError (or the handler's own ChaosRegistryError) when it could not.
    """
    validate_undo(undo, error=UndoError)
    get_handler(undo["kind"])(undo["params"])
