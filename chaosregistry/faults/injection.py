"""The bridge between actions and the fault lifecycle: plan -> ledger -> inject, and back.

Faults are owned by the process that runs the experiment (``chaos run``): if it dies for any
reason, SIGKILL included, the watchdog reverts its faults at once; otherwise they end at their
duration or when a rollback reverts them.

Each fault belongs to the calling run (``faults.ledger.current_run``: the game day's run id,
else the ``chaos run`` process), and an undo action (``revert_matching``) reverts only that
run's faults: two runs sharing a ledger never end each other's faults.
"""

import os
from typing import Any

from chaosregistry.backends import FaultPlan
from chaosregistry.errors import ConfigError
from chaosregistry.experiment.activity import require_positive_number
from chaosregistry.experiment.contracts import (
    MAX_DURATION as MAX_DURATION,  # still importable from here
)
from chaosregistry.experiment.settings import Settings
from chaosregistry.faults.ledger import Entry, Ledger, RevertReason, current_run
from chaosregistry.faults.lifecycle import inject, revert


def ledger_for(settings: Settings) -> Ledger:
    return Ledger(settings.ledger_dir)


def system_under_test(settings: Settings) -> str:
    """The system a fault's target names belong to: two sandboxes (or clusters) sharing one
    ledger both have a ``client-registry`` hop, and a fault on one does not hold the other's."""
    if settings.backend == "kubernetes":
        kubernetes = settings.kubernetes
        return f"kubernetes:{kubernetes.kubeconfig.absolute()}#{kubernetes.context or ''}"
    local = settings.local
    sandbox = "" if local.sandbox_dir is None else str(local.sandbox_dir.absolute())
    return f"local:{local.toxiproxy_url or sandbox}"


def check_duration(duration: object) -> float:
    seconds = require_positive_number("duration", duration)
    if seconds > MAX_DURATION:
        raise ConfigError(f"duration {seconds:g}s is over the {MAX_DURATION:g}s limit")
    return seconds


def inject_plan(plan: FaultPlan, duration: float, settings: Settings) -> dict[str, Any]:
    """Record, inject and describe one fault; the result is what the action returns."""
    lifetime = plan.ends_after if plan.ends_after is not None else duration
    ledger = ledger_for(settings)
    entry = inject(
        ledger,
        kind=plan.kind,
        target=plan.target,
        parameters={**plan.parameters, "duration": duration},
        duration=lifetime,
        apply=plan.apply,
        undo=plan.undo,
        owner_pid=os.getpid(),
        place=system_under_test(settings),
    )
    result = describe(entry)
    # A backend that cannot see the fault take effect says so ("unconfirmed"): never hide it.
    if isinstance(entry.applied, dict) and "injected" in entry.applied:
        result["injected"] = entry.applied["injected"]
    return result


def describe(entry: Entry) -> dict[str, Any]:
    return {
        "fault_id": entry.id,
        "kind": entry.kind,
        "target": entry.target,
        "state": str(entry.state),
        "parameters": entry.parameters,
        "applied": entry.applied,
        "injected_at": entry.created_at,
        "expires_at": entry.expires_at,
        "expires_in": max(0.0, entry.remaining()),
    }


def revert_matching(settings: Settings, *, kind_prefix: str, target: str = "") -> dict[str, Any]:
    """Revert every active fault of the calling run whose kind starts with ``kind_prefix`` (and
    on ``target``); other runs' faults are left alone."""
    ledger = ledger_for(settings)
    run = current_run()
    reverted: list[dict[str, Any]] = []
    for entry in ledger.active():
        if entry.run_id != run or not entry.kind.startswith(kind_prefix):
            continue
        if target and entry.target != target:
            continue
        reverted.append(describe(revert(ledger, entry.id, RevertReason.ROLLBACK)))
    return {"reverted": reverted, "count": len(reverted)}
