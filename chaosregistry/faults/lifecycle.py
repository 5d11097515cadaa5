"""Inject and revert faults through the ledger (docs/architecture.md, "The fault lifecycle").

``inject`` writes the entry durably and makes sure a watchdog watches the ledger BEFORE the
fault exists, so the fault is undone on expiry or when its owner dies even if the caller is
SIGKILLed the next instant. ``revert`` runs the entry's undo handler, which verifies the fault
is gone, and only then marks the entry reverted.
"""

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from chaosregistry.errors import ChaosRegistryError
from chaosregistry.faults.ledger import (
    DEFAULT_LOCK_TIMEOUT,
    Entry,
    FaultState,
    Ledger,
    LedgerError,
    Owner,
    RevertReason,
    one_line,
    validate_duration,
    validate_undo,
)
from chaosregistry.faults.undo import reachable_module, run_undo
from chaosregistry.faults.watchdog import watchdog_guard
from chaosregistry.osutil.locks import LockBusy

log = logging.getLogger(__name__)


class RevertError(ChaosRegistryError):
    """The undo failed or could not verify the fault is gone; ``entry`` is now revert-failed
    and the watchdog keeps retrying it."""

    def __init__(self, entry: Entry) -> None:
        super().__init__(f"fault {entry.id} ({entry.kind} on {entry.target}): {entry.last_error}")
        self.entry = entry


class FaultCancelled(ChaosRegistryError):
    """The fault was reverted or expired between being recorded and being applied: nothing
    was applied."""


@dataclass(frozen=True)
class RevertResult:
    """What ``revert_all`` did with one entry: ``entry`` as it now stands, ``error`` when the
    revert failed (the entry is then revert-failed, or untouched when it was busy)."""

    entry: Entry
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _describe(exc: BaseException) -> str:
    return one_line(f"{type(exc).__name__}: {exc}")


def inject(
    ledger: Ledger,
    *,
    kind: str,
    target: str,
    parameters: Mapping[str, Any],
    duration: float,
    apply: Callable[[], Mapping[str, Any]],
    undo: Mapping[str, Any],
    owner_pid: int | None,
    run: str | None = None,
    place: str = "",
) -> Entry:
    """Record a fault, make sure the watchdog runs, then apply it; returns the injected entry.

    ``apply`` makes the fault and returns what it actually applied (stored as ``applied``).
    ``undo`` is ``{"kind": <undo handler>, "params": {...}}``; it must also be safe to run when
    ``apply`` did nothing or only part of its work. ``owner_pid`` is the process whose death
    ends the fault (usually ``os.getpid()``), or None for a fault bounded only by ``duration``.
    ``run`` is the run the fault belongs to (default ``ledger.current_run``: the game day's
    run id, else the owner process); ``place`` names the system under test (``Ledger.record``).

    Raises ConfigError (bad duration or undo; nothing recorded, nothing applied),
    FaultConflict (another run holds the target: nothing recorded, nothing applied),
    FaultCancelled, or whatever ``apply`` raised, after undoing it: the entry is then
    failed-to-inject, or revert-failed for the watchdog to retry when the undo failed too.
    """
    validate_duration(duration)
    validate_undo(undo)
    # An undo the watchdog cannot run must not be recorded, let alone applied.
    undo_module = reachable_module(undo["kind"])
    # Recording under the watchdog's gate means a watchdog that is about to exit for lack of
    # work either sees this entry or has already gone, and then a new one is started here.
    with watchdog_guard(ledger.path):
        entry = ledger.record(
            kind,
            target,
            parameters,
            undo,
            duration,
            owner_pid=owner_pid,
            undo_module=undo_module,
            run=run,
            place=place,
        )
    # Holding the entry's lock while applying keeps the watchdog and the CLI from reverting
    # half an injection; if this process dies, the kernel drops the lock and they take over.
    with ledger.lock(entry.id):
        current = ledger.get(entry.id)
        if current.state is not FaultState.PENDING or current.expired(ledger.now()):
            if current.state is FaultState.PENDING:
                ledger.mark_failed(entry.id, "expired before it could be injected")
            raise FaultCancelled(
                f"fault {entry.id} was {current.state} before it could be injected"
                + ("" if current.revert_reason is None else f" ({current.revert_reason})")
            )
        try:
            applied = apply()
            return ledger.mark_injected(entry.id, applied)
        except BaseException as exc:
            # BaseException: a SIGINT (KeyboardInterrupt) in the middle of apply must undo too.
            _undo_failed_inject(ledger, entry, exc)
            raise


def _undo_failed_inject(ledger: Ledger, entry: Entry, exc: BaseException) -> None:
    error = f"inject failed: {_describe(exc)}"
    try:
        run_undo(entry.undo, module=entry.undo_module)
    except Exception as undo_exc:
        log.error("fault %s: %s; undo failed: %s", entry.id, error, undo_exc)
        try:
            ledger.mark_revert_failed(
                entry.id, RevertReason.ROLLBACK, f"{error}; undo failed: {_describe(undo_exc)}"
            )
        except ChaosRegistryError as mark_exc:
            # Still pending with a dead owner soon: the watchdog reverts it as owner-gone.
            log.error("fault %s: cannot mark revert-failed: %s", entry.id, mark_exc)
        return
    try:
        ledger.mark_failed(entry.id, error)
    except ChaosRegistryError as mark_exc:
        log.error("fault %s: cannot mark failed-to-inject: %s", entry.id, mark_exc)


def revert(
    ledger: Ledger,
    entry_id: str,
    reason: RevertReason | str,
    *,
    lock_timeout: float | None = DEFAULT_LOCK_TIMEOUT,
) -> Entry:
    """Undo one fault, verify it is gone, mark it reverted; returns the entry.

    Idempotent: an entry already reverted (or failed-to-inject) is returned unchanged.
    Raises RevertError after marking the entry revert-failed when the undo fails, LockBusy when
    another process held the entry for ``lock_timeout`` seconds, LedgerError for an unknown id.
    """
    why = RevertReason(reason)
    with ledger.lock(entry_id, timeout=lock_timeout):
        entry = ledger.get(entry_id)
        if not entry.active:
            return entry
        try:
            observed = run_undo(entry.undo, module=entry.undo_module)
        except Exception as exc:
            raise RevertError(ledger.mark_revert_failed(entry_id, why, _describe(exc))) from exc
        return ledger.mark_reverted(entry_id, why, observed=observed)


def revert_all(
    ledger: Ledger,
    reason: RevertReason | str,
    *,
    owner_pid: int | None = None,
    run: str | None = None,
    lock_timeout: float | None = DEFAULT_LOCK_TIMEOUT,
) -> list[RevertResult]:
    """Revert every active fault, newest first (the reverse of injection); one result each.

    ``run`` limits it to the faults of that run (the end of a game day passes its run id), and
    ``owner_pid`` to the faults owned by that running process (a signal handler passes
    ``os.getpid()``); with neither, every active fault in the ledger goes (the operator's
    ``chaosregistry rollback``). Never raises for a single fault: failures are in the results.
    """
    entries = ledger.active()
    if run is not None:
        entries = [entry for entry in entries if entry.run_id == run]
    if owner_pid is not None:
        owner = Owner.of(owner_pid)
        entries = [entry for entry in entries if entry.owner == owner]
    results: list[RevertResult] = []
    for entry in reversed(entries):
        try:
            results.append(
                RevertResult(revert(ledger, entry.id, reason, lock_timeout=lock_timeout))
            )
        except RevertError as exc:
            results.append(RevertResult(exc.entry, error=str(exc)))
        except (LockBusy, LedgerError) as exc:
            results.append(RevertResult(entry, error=f"fault {entry.id}: {exc}"))
    return results
