"""Which process is which, read from ``/proc``.

A pid alone is not an identity: pids are reused. The kernel's start time of a process
(``/proc/<pid>/stat`` field 22, clock ticks since boot) and the boot id go with it, so a record
written by one process names the very process it meant even when read much later by another.
"""

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Zombies (Z) and dead tasks (X) have exited; only their parent has not collected them yet.
GONE_STATES = frozenset({"Z", "X"})


@dataclass(frozen=True)
class ProcStat:
    """The fields of ``/proc/<pid>/stat`` that we use."""

    pid: int
    state: str
    ppid: int
    pgid: int
    sid: int
    start_time: int
    cpu_ticks: int = 0  # user + system time so far (fields 14 and 15), in clock ticks
    threads: int = 1  # the process's live threads, the exited leader among them (field 20)

    @property
    def alive(self) -> bool:
        """Whether it runs: not a zombie, or a zombie leader whose other threads still run.

        A multithreaded program exits thread by thread: the leader can show Z while its other
        threads still hold the open files, a listening socket among them (a Go server stopped
        by SIGTERM still accepted connections, seen 13 times in 60 stops). Gone means nothing
        of it can act any more.
        """
        return self.state not in GONE_STATES or self.threads > 1

    @property
    def cpu_seconds(self) -> float:
        return self.cpu_ticks / os.sysconf("SC_CLK_TCK")


def _read_proc(path: str) -> bytes:
    """A ``/proc`` file's bytes, read with bare system calls.

    Scans read every process's files, often in a loop that waits for processes to go (up to
    a thousand files a pass on a machine running test clusters); ``Path.read_text`` spent 2.4
    times the CPU of this on the same scan.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_stat(pid: int) -> ProcStat | None:
    """``pid``'s stat, or None when there is no such process.

    Raises PermissionError when ``/proc`` hides the process (``hidepid``): callers that must not
    mistake "cannot tell" for "gone" (the fault ledger's owners) decide what that means.
    """
    try:
        raw = _read_proc(f"/proc/{pid}/stat")
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = raw[raw.rindex(b")") + 2 :].split()
    return ProcStat(
        pid=pid,
        state=fields[0].decode(),
        ppid=int(fields[1]),
        pgid=int(fields[2]),
        sid=int(fields[3]),
        start_time=int(fields[19]),
        cpu_ticks=int(fields[11]) + int(fields[12]),
        threads=int(fields[17]),
    )


def proc_stat(pid: int) -> ProcStat | None:
    """``pid``'s stat, or None when it is gone or hidden from us."""
    try:
        return read_stat(pid)
    except OSError:
        return None


def is_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    stat = proc_stat(pid)
    return stat is not None and stat.alive


_boot_id_cache: str | None = None


def boot_id() -> str:
    """This boot's random id (files on disk outlive reboots; the processes they name do not)."""
    global _boot_id_cache
    if _boot_id_cache is None:
        try:
            _boot_id_cache = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        except OSError:
            _boot_id_cache = ""
    return _boot_id_cache


def all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def live_processes() -> Iterator[ProcStat]:
    """Every live (non-zombie) process we can see."""
    for pid in all_pids():
        stat = proc_stat(pid)
        if stat is not None and stat.alive:
            yield stat


def group_members(pgid: int, *, session: int | None = None) -> list[int]:
    """Live processes whose process group is ``pgid`` (and, given ``session``, whose session
    is that one too), sorted."""
    return sorted(
        stat.pid
        for stat in live_processes()
        if stat.pgid == pgid and (session is None or stat.sid == session)
    )


def command_line(pid: int) -> str:
    """``pid``'s command line, arguments joined by spaces; "" for a zombie, a kernel thread or a
    process that is gone or hidden."""
    try:
        raw = _read_proc(f"/proc/{pid}/cmdline")
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()


def environment_text(pid: int) -> str:
    """``pid``'s environment, ``KEY=value`` pairs joined by spaces; "" when unreadable."""
    try:
        raw = _read_proc(f"/proc/{pid}/environ")
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode("utf-8", "replace")


def executable_name(pid: int) -> str:
    """The file name of ``pid``'s executable (still named after an upgrade replaced it); ""
    when unreadable."""
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe")).removesuffix(" (deleted)")
    except OSError:
        return ""


def marked_processes(marker: str) -> list[int]:
    """Live processes other than this one whose command line contains ``marker``, sorted."""
    if not marker:
        return []
    found = []
    for pid in all_pids():
        if pid != os.getpid() and marker in command_line(pid) and is_alive(pid):
            found.append(pid)
    return sorted(found)


def ancestry() -> set[int]:
    """This process and its ancestors up to (not including) init."""
    chain = set()
    pid = os.getpid()
    while pid > 1:
        chain.add(pid)
        stat = proc_stat(pid)
        if stat is None:
            break
        pid = stat.ppid
    return chain


# TCP states in /proc/net/tcp (include/net/tcp_states.h), the ones a bind can collide with.
_TCP_STATES = {"01": "established", "06": "time-wait", "08": "close-wait", "0A": "listen"}


def port_holders(port: int) -> list[str]:
    """Who holds local TCP ``port`` on this host: one ``"pid 123 (registry), listen"`` per
    socket whose owner we can see, ``"no process, time-wait"`` for one no process owns any
    more. Read from ``/proc/net/tcp{,6}`` and the fds of every process; for error messages."""
    sockets: dict[str, str] = {}  # inode -> state
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and int(fields[1].rsplit(":", 1)[1], 16) == port:
                sockets[fields[9]] = _TCP_STATES.get(fields[3], f"state {fields[3]}")
    owners: dict[str, int] = {}
    wanted = {f"socket:[{inode}]" for inode in sockets if inode != "0"}
    for pid in all_pids() if wanted else []:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target in wanted:
                owners[target[8:-1]] = pid
    found = []
    for inode, state in sorted(sockets.items(), key=lambda item: item[1]):
        owner = owners.get(inode)
        who = f"pid {owner} ({executable_name(owner) or '?'})" if owner else "no process"
        found.append(f"{who}, {state}")
    return found
