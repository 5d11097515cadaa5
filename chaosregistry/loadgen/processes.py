"""The ``process.terminate`` undo handler: the end of a pull load's process group.

A pull load runs as one process group (a supervisor, Locust's master, its worker processes).
Its ledger entry stores the group leader's ``osutil.supervise.ProcessRecord`` (pid, kernel
start time, process group id, boot id): members of the group are ours as long as the leader's
pid was not reused by a stranger, and the stop itself is ``supervise.stop_group``'s.

``process.terminate`` params: ``pid``, ``start_time``, ``pgid``, ``boot_id``, optional
``grace`` (seconds between SIGTERM and SIGKILL, default 10), ``marker`` (processes whose command
line contains it are ours too, e.g. the load's stats directory: they are stopped as well) and
``remove`` (private temporary directories to delete, e.g. a credentials copy). It returns once
no process of the group (and none with the marker) is left, and raises UndoError otherwise.
"""

import shutil
from collections.abc import Iterable, Mapping
from typing import Any

from chaosregistry.faults.undo import UndoError, undo_handler
from chaosregistry.osutil.identity import marked_processes
from chaosregistry.osutil.supervise import ProcessRecord, stop_group

TERMINATE = "process.terminate"
DEFAULT_GRACE = 10.0
KILL_WAIT = 5.0

# The load's name for the record of its group's leader (its ledger params say "pid",
# "start_time", "pgid", "boot_id").
GroupIdentity = ProcessRecord


def terminate_undo(
    identity: GroupIdentity,
    *,
    grace: float = DEFAULT_GRACE,
    marker: str = "",
    remove: Iterable[str] = (),
) -> dict[str, Any]:
    """The ledger undo spec that ends ``identity``'s group (see the module docstring)."""
    return {
        "kind": TERMINATE,
        "params": {
            **identity.as_dict(),
            "grace": grace,
            "marker": marker,
            "remove": list(remove),
        },
    }


def terminate_group(
    identity: GroupIdentity, *, grace: float = DEFAULT_GRACE, marker: str = ""
) -> None:
    """SIGTERM the group (and marked processes), SIGKILL what is left after ``grace`` seconds,
    and return once none is left; UndoError names the survivors."""
    survivors = stop_group(
        identity, grace=grace, kill_wait=KILL_WAIT, also=lambda: marked_processes(marker)
    )
    if survivors:
        raise UndoError(f"processes still running after SIGKILL: {survivors}")


def _int_param(params: Mapping[str, Any], name: str) -> int:
    value = params.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise UndoError(f"undo params need an integer {name!r}")
    return value


@undo_handler(TERMINATE)
def terminate(params: Mapping[str, Any]) -> None:
    """Stop the recorded process group; verified gone on return (idempotent)."""
    identity = GroupIdentity(
        pid=_int_param(params, "pid"),
        start_time=_int_param(params, "start_time"),
        pgid=_int_param(params, "pgid"),
        boot_id=str(params.get("boot_id", "")),
    )
    grace = params.get("grace", DEFAULT_GRACE)
    if isinstance(grace, bool) or not isinstance(grace, int | float) or grace < 0:
        raise UndoError(f"undo param 'grace' must be seconds, got {grace!r}")
    terminate_group(identity, grace=float(grace), marker=str(params.get("marker") or ""))
    for path in params.get("remove") or []:
        shutil.rmtree(str(path), ignore_errors=True)
