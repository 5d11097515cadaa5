"""What a fault holds against other runs, declared once per fault family.

Two runs on one ledger must not fault the same thing at once: run B's undo would end run A's
fault (one Toxiproxy proxy has one ``enabled`` switch; a served certificate, a killed process
or a Deployment's image is restored by whichever undo runs first), or run A would measure B's
fault as its own. So every entry records what it holds (``Entry.holds``), and the ledger
refuses a new fault of another run that would hold the same (``Ledger.record``). Faults of one
run never conflict with each other: an experiment may stack what it likes.

What a family holds, by the part of the kind before its first dot:

========================  ==========  ==========================================================
family                    holds       why
========================  ==========  ==========================================================
``network``               its kind    one kind of toxic per proxy; a partition's enable switch
                          on target   (latency from one run and bandwidth from another coexist)
``load``                  nothing     each load is its own Locust processes
anything else             its target  one certificate served, one process, one image, one
(node, certificate, ...)              token key, one set of manifests: any two undo each other
========================  ==========  ==========================================================
"""

from enum import StrEnum


class Scope(StrEnum):
    """How much of its target a fault of a family holds."""

    KIND = "kind"  # its own kind of fault on the target
    TARGET = "target"  # the whole target, whatever the kind
    NOTHING = "nothing"  # nothing: faults of the family run side by side


# The families that differ from the default; a new family holds its whole target until it
# says otherwise here.
SCOPES: dict[str, Scope] = {"network": Scope.KIND, "load": Scope.NOTHING}
DEFAULT_SCOPE = Scope.TARGET


def scope_of(kind: str) -> Scope:
    return SCOPES.get(kind.split(".", 1)[0], DEFAULT_SCOPE)


def held_by(kind: str, target: str, place: str = "") -> str | None:
    """What a fault of ``kind`` on ``target`` holds, as one comparable string; None when it
    holds nothing. ``place`` names the system under test (a sandbox, a cluster): the same hop
    name in two sandboxes is two things."""
    scope = scope_of(kind)
    if scope is Scope.NOTHING:
        return None
    what = f"{kind} on {target}" if scope is Scope.KIND else target
    return f"{place} {what}" if place else what
