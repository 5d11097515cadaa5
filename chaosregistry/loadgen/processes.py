"""Process groups we start, identified safely, and the ``process.terminate`` undo handler.

A pull load runs as one process group (a supervisor, Locust's master, its worker processes).
Its ledger entry stores the group leader's identity: pid, kernel start time (``/proc/<pid>/stat``
field 22), process group id and boot id. A pid alone is not an identity (pids are reused), but a
process-group id is safe to signal while any member is left: Linux does not hand out a pid that
is still some group's id, so members of ``pgid`` are ours as long as the leader's pid was not
reused by a stranger (checked through its start time).

``process.terminate`` params: ``pid``, ``start_time``, ``pgid``, ``boot_id``, optional
``grace`` (seconds between SIGTERM and SIGKILL, default 10), ``marker`` (processes whose command
line contains it are ours too, e.g. the load's stats directory: they are stopped as well) and
``remove`` (private temporary directories to delete, e.g. a credentials copy). It returns once
no process of the group (and none with the marker) is left, and raises UndoError otherwise.
"""

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from chaosregistry.faults.undo import UndoError, undo_handler
from chaosregistry.osutil.identity import boot_id, group_members, marked_processes, proc_stat

TERMINATE = "process.terminate"
DEFAULT_GRACE = 10.0
KILL_WAIT = 5.0
POLL = 0.05


@dataclass(frozen=True)
class GroupIdentity:
    """A process-group leader as recorded in the ledger."""

    pid: int
    start_time: int
    pgid: int
    boot_id: str

    @classmethod
    def of(cls, pid: int) -> "GroupIdentity":
        stat = proc_stat(pid)
        if stat is None or not stat.alive:
            raise UndoError(f"process {pid} does not exist")
        return cls(pid, stat.start_time, stat.pgid, boot_id())

    def members(self) -> list[int]:
        """Live members of the group, or [] when the group is provably not ours any more."""
        if self.boot_id != boot_id():
            return []  # processes of an earlier boot are gone
        leader = proc_stat(self.pid)
        if leader is not None and leader.start_time != self.start_time:
            return []  # the leader's pid was reused: our group has no member left
        return group_members(self.pgid)


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
            "pid": identity.pid,
            "start_time": identity.start_time,
            "pgid": identity.pgid,
            "boot_id": identity.boot_id,
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

    def left() -> list[int]:
        return sorted(set(identity.members()) | set(marked_processes(marker)))

    if not left():
        return
    _signal_all(identity, marker, signal.SIGTERM)
    if _wait_until_gone(left, grace):
        return
    _signal_all(identity, marker, signal.SIGKILL)
    if _wait_until_gone(left, KILL_WAIT):
        return
    raise UndoError(f"processes still running after SIGKILL: {left()}")


def _signal_all(identity: GroupIdentity, marker: str, signum: signal.Signals) -> None:
    if identity.members():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(identity.pgid, signum)
    for pid in marked_processes(marker):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _wait_until_gone(left: Callable[[], list[int]], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while left():
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL)
    return True


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
