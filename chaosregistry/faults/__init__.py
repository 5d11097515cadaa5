"""The fault ledger, its watchdog and the undo registry: no fault outlives its time or owner.

Every state-changing action goes through :func:`inject`: the fault is written to the on-disk
ledger (fsynced) and watched by a detached watchdog before it is applied, and it is undone on
rollback, expiry, the death of its owner process, or ``chaosregistry rollback``. See
docs/architecture.md, "The fault lifecycle".

The watchdog daemon (``chaosregistry.faults.watchdog_daemon``) is not imported here: it runs
as ``python -m chaosregistry.faults.watchdog_daemon``, which must find it not yet imported.

Layer: services (may import the package root, protocols and foundations; see docs/architecture.md).
"""

from chaosregistry.faults.ledger import (
    Clock,
    Entry,
    FaultConflict,
    FaultState,
    Ledger,
    LedgerError,
    RevertReason,
    resolve_ledger_dir,
)
from chaosregistry.faults.lifecycle import (
    FaultCancelled,
    RevertError,
    RevertResult,
    inject,
    revert,
    revert_all,
)
from chaosregistry.faults.undo import UndoError, undo_handler

__all__ = [
    "Clock",
    "Entry",
    "FaultCancelled",
    "FaultConflict",
    "FaultState",
    "Ledger",
    "LedgerError",
    "RevertError",
    "RevertReason",
    "RevertResult",
    "UndoError",
    "inject",
    "resolve_ledger_dir",
    "revert",
    "revert_all",
    "undo_handler",
]
