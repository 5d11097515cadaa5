"""Supervising the processes we start: one for the sandbox, the test cluster and the load.

A supervised process is started detached (``spawn.spawn_detached``: its own session, so its
process group id is its pid, output appended to its log) and known afterwards by a
``ProcessRecord``: pid, kernel start time, process group id and boot id. A record written by one
process names the very process it meant when another reads it much later: a pid reused by an
unrelated program, or by another process of ours, has another start time and is never taken
for it, nor signalled.

What is the same for every user lives here: start and record (``start_recorded``, the record
written atomically to a state file), whether a record's process still runs (``running``), the
stop (``stop_group``: a signal to the whole group, SIGTERM then SIGKILL after a grace, our own
children reaped, the survivors returned), and the single retry of a process that exits while
starting (``start_until_ready``). What differs stays with each user: what "ready" means, which
errors to raise, which strays to look for.
"""

import contextlib
import json
import math
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from chaosregistry.errors import ChaosRegistryError
from chaosregistry.osutil.files import write_json
from chaosregistry.osutil.identity import boot_id, group_members, proc_stat
from chaosregistry.osutil.spawn import spawn_detached

POLL_INTERVAL = 0.05
KILL_WAIT = 5.0


class ProcessGone(ChaosRegistryError):
    """A process to be recorded does not exist (it exited and was collected)."""


@dataclass(frozen=True)
class ProcessRecord:
    """A process we started, and the process group it leads, as recorded on disk.

    ``start_time`` is the kernel's (``/proc/<pid>/stat`` field 22, clock ticks since boot). A
    process group id is safe to signal while any member is left, even after its leader died:
    Linux does not hand out a pid that is still some group's id.
    """

    pid: int
    start_time: int
    pgid: int
    boot_id: str

    @classmethod
    def of(cls, pid: int) -> "ProcessRecord":
        """The record of ``pid`` as it is now; a zombie is recorded too (its identity holds
        until it is collected). Raises ``ProcessGone`` when there is no such process."""
        stat = proc_stat(pid)
        if stat is None:
            raise ProcessGone(f"process {pid} does not exist")
        return cls(pid=pid, start_time=stat.start_time, pgid=stat.pgid, boot_id=boot_id())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ProcessRecord":
        """The record ``as_dict`` wrote; KeyError, TypeError or ValueError when it is not one."""
        return cls(
            pid=int(data["pid"]),
            start_time=int(data["start_time"]),
            pgid=int(data["pgid"]),
            boot_id=str(data["boot_id"]),
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def _leader_reused(self) -> bool:
        if self.boot_id != boot_id():
            return True  # processes of an earlier boot are gone; their pids mean nothing now
        leader = proc_stat(self.pid)
        return leader is not None and leader.start_time != self.start_time

    def runs(self) -> bool:
        """Whether the recorded process itself runs (a zombie does not, nor a reused pid)."""
        if self.boot_id != boot_id():
            return False
        leader = proc_stat(self.pid)
        return leader is not None and leader.alive and leader.start_time == self.start_time

    def members(self) -> list[int]:
        """Live members of the recorded group (its leader possibly gone, e.g. nginx workers
        whose master was SIGKILLed), or [] when the group is provably not ours any more."""
        if self._leader_reused():
            return []
        return group_members(self.pgid)


def write_record(path: Path, record: ProcessRecord) -> None:
    """Write ``record`` to ``path`` atomically: a reader sees the old record or the new one."""
    write_json(path, record.as_dict())


def read_record(path: Path, *, adopt: Callable[[int], bool] | None = None) -> ProcessRecord | None:
    """The record in ``path``, or None when there is none (missing or unreadable file).

    A file holding a bare pid (written before records held start times) names the process that
    has that pid now only when ``adopt(pid)`` says it is ours (e.g. its command line names our
    state directory); without ``adopt`` it names nothing.
    """
    try:
        text = path.read_text()
    except OSError:
        return None
    stripped = text.strip()
    if stripped.isdigit():
        pid = int(stripped)
        if adopt is None or not adopt(pid):
            return None
        with contextlib.suppress(ProcessGone):
            return ProcessRecord.of(pid)
        return None
    try:
        return ProcessRecord.from_dict(json.loads(text))
    except (ValueError, KeyError, TypeError):
        return None


def running(path: Path, *, adopt: Callable[[int], bool] | None = None) -> ProcessRecord | None:
    """The record in ``path`` when its process runs, else None (see ``read_record``)."""
    record = read_record(path, adopt=adopt)
    return record if record is not None and record.runs() else None


def start_recorded(
    argv: Sequence[str],
    *,
    record: Path,
    log: Path,
    cwd: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    header: str | None = None,
) -> "subprocess.Popen[bytes]":
    """Start ``argv`` detached (``spawn.spawn_detached``) and write its record to ``record``.

    The caller keeps the ``Popen`` to see an exit while it waits for the process to be ready.
    Raises OSError when it cannot be started.
    """
    process = spawn_detached(argv, log=log, cwd=cwd, env=env, header=header)
    # Not yet collected (only the Popen may wait for it), so its stat is there even if it has
    # exited already.
    write_record(record, ProcessRecord.of(process.pid))
    return process


def start_until_ready(
    start: Callable[[], int],
    wait_ready: Callable[[int], None],
    *,
    runs: Callable[[], bool],
    starts: int = 1,
    on_exit: Callable[[Exception], None] = lambda exc: None,
) -> int:
    """``start()`` a process (it returns the pid) and ``wait_ready(pid)`` (it raises when the
    process is not ready); returns the pid.

    When ``wait_ready`` raises and ``runs()`` is False, the process exited while starting: it is
    started again (after ``on_exit(error)``), up to ``starts`` starts in all. One that runs but
    is not ready is not: a second start would meet the same. The last error is raised.
    """
    if starts < 1:
        raise ValueError(f"starts must be 1 or more, got {starts}")
    for attempt in range(1, starts + 1):
        pid = start()
        try:
            wait_ready(pid)
        except Exception as exc:
            if attempt == starts or runs():
                raise
            on_exit(exc)
        else:
            return pid
    raise AssertionError("unreachable: the last attempt returns or raises")


def reap(pid: int) -> None:
    """Collect ``pid`` if it is an exited child of ours; anything else is left alone."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def signal_group(pgid: int, sig: int) -> None:
    """Send ``sig`` to process group ``pgid``; a group that is gone is no error."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def signal_pids(pids: Sequence[int], sig: int) -> None:
    """Send ``sig`` to each of ``pids``; one that is gone is no error."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def wait_gone(left: Callable[[], Sequence[int]], timeout: float, *, reaping: int = 0) -> bool:
    """Poll ``left()`` until it is empty (True) or ``timeout`` seconds pass (False),
    collecting ``reaping`` (a child of ours) meanwhile so it does not linger as a zombie."""
    deadline = time.monotonic() + timeout
    while True:
        if reaping:
            reap(reaping)
        if not left():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL)


class Remaining:
    """What is left of some processes, for a loop that waits for them to go.

    Finding them takes a scan of every process (a process group has no index in ``/proc``):
    on a machine running test clusters a thousand files, and a stop polls every 50 ms, so
    each poll here looks only at the processes the last scan found, by pid and start time.
    It scans again when all of them are gone, which also finds any process that joined
    meanwhile ("none left" always comes from a full scan), and at least every
    ``RESCAN_SECONDS`` (one that left the group is not waited for longer than that).
    """

    RESCAN_SECONDS = 1.0

    def __init__(self, scan: Callable[[], list[int]]) -> None:
        self._scan = scan
        self._seen: dict[int, int] = {}  # pid -> kernel start time
        self._scanned_at = -math.inf

    def __call__(self) -> list[int]:
        if time.monotonic() - self._scanned_at < self.RESCAN_SECONDS:
            still = [pid for pid, start in self._seen.items() if _runs(pid, start)]
            if still:
                return still
        found = self._scan()
        self._scanned_at = time.monotonic()
        self._seen = {pid: stat.start_time for pid in found if (stat := proc_stat(pid)) is not None}
        return found


def _runs(pid: int, start_time: int) -> bool:
    stat = proc_stat(pid)
    return stat is not None and stat.alive and stat.start_time == start_time


def stop_group(
    record: ProcessRecord,
    sig: int = signal.SIGTERM,
    *,
    grace: float,
    kill_wait: float = KILL_WAIT,
    also: Callable[[], list[int]] = list,
) -> list[int]:
    """Stop ``record``'s whole process group and ``also()``'s processes (ours outside it).

    Sends ``sig`` (and SIGCONT, so a SIGSTOP-frozen group can act on it), waits up to ``grace``
    seconds for every process to be gone, then SIGKILLs what is left and waits ``kill_wait``
    seconds more. Returns the survivors, sorted ([] when every one is gone). A group that is
    not ours any more (``ProcessRecord.members``) is never signalled.
    """

    def left() -> list[int]:
        return sorted(set(record.members()) | set(also()))

    if not left():
        reap(record.pid)
        return []
    for signum in (sig, signal.SIGCONT) if sig != signal.SIGKILL else (sig,):
        if record.members():
            signal_group(record.pgid, signum)
        signal_pids(also(), signum)
    if wait_gone(Remaining(left), grace, reaping=record.pid):
        return []
    if record.members():
        signal_group(record.pgid, signal.SIGKILL)
    signal_pids(also(), signal.SIGKILL)
    wait_gone(Remaining(left), kill_wait, reaping=record.pid)
    return left()
