"""The caller's side of the watchdog: is one running for this ledger, and start one if not.

Chaos Toolkit keeps rollbacks in memory and skips them on interrupted runs, so a fault's undo
cannot depend on ``chaos run`` surviving. ``ensure_watchdog`` starts, once per ledger
directory, the detached daemon ``python -m chaosregistry.faults.watchdog_daemon <ledger_dir>``
(what it does: ``chaosregistry.faults.watchdog_daemon``). The daemon holds ``watchdog.lock``
for its whole life, with its pid in it; ``watchdog-gate.lock`` serialises "start a watchdog"
against "the watchdog exits".

This module never imports the daemon, nor the fault lifecycle: ``lifecycle`` imports it.
"""

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from chaosregistry.errors import ChaosRegistryError
from chaosregistry.osutil import locks
from chaosregistry.osutil.spawn import env_with_this_package, read_line, spawn_detached

DAEMON_MODULE = "chaosregistry.faults.watchdog_daemon"
START_TIMEOUT = 10.0


class WatchdogError(ChaosRegistryError):
    """The watchdog could not be started; no fault may be injected without one."""


def lock_path(ledger_dir: Path) -> Path:
    return ledger_dir / "watchdog.lock"


def gate_path(ledger_dir: Path) -> Path:
    return ledger_dir / "watchdog-gate.lock"


def log_path(ledger_dir: Path) -> Path:
    return ledger_dir / "watchdog.log"


def watchdog_pid(ledger_dir: str | os.PathLike[str]) -> int | None:
    """The pid of the watchdog running for ``ledger_dir``, or None when none runs."""
    path = lock_path(Path(ledger_dir))
    deadline = time.monotonic() + 1.0
    while locks.is_held(path):
        with contextlib.suppress(OSError, ValueError):
            pid = int(path.read_text().strip() or "0")
            if pid > 0:
                return pid
        # Locked but the pid is not written yet: the watchdog is starting this very moment.
        if time.monotonic() >= deadline:
            return None
        time.sleep(locks.POLL_INTERVAL)
    return None


@contextlib.contextmanager
def watchdog_guard(
    ledger_dir: str | os.PathLike[str], *, idle_exit: float | None = None
) -> Iterator[int]:
    """Hold the watchdog gate with a watchdog running (started if needed); yields its pid.

    The watchdog only exits after checking, under this gate, that no entry is active; an entry
    recorded inside this block is therefore always watched.
    """
    directory = Path(ledger_dir)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        with locks.hold(gate_path(directory), timeout=START_TIMEOUT):
            pid = watchdog_pid(directory) or _start(directory, idle_exit)
            yield pid
    except locks.LockBusy as exc:
        raise WatchdogError(f"cannot start a watchdog for {directory}: {exc}") from None


def ensure_watchdog(ledger_dir: str | os.PathLike[str], *, idle_exit: float | None = None) -> int:
    """Start the watchdog for ``ledger_dir`` unless one runs; returns its pid.

    Returns once the watchdog holds its lock. ``idle_exit`` (seconds without active faults
    before it exits) defaults to ``$CHAOSREGISTRY_WATCHDOG_IDLE_EXIT`` or 3. Raises
    WatchdogError when it cannot be started.
    """
    with watchdog_guard(ledger_dir, idle_exit=idle_exit) as pid:
        return pid


def _start(ledger_dir: Path, idle_exit: float | None) -> int:
    command = [sys.executable, "-m", DAEMON_MODULE, str(ledger_dir)]
    if idle_exit is not None:
        command += ["--idle-exit", str(idle_exit)]
    ready_read, ready_write = os.pipe()
    try:
        # From "/": the watchdog must not pin the caller's working directory.
        launcher = spawn_detached(
            [*command, "--ready-fd", str(ready_write)],
            log=log_path(ledger_dir),
            cwd="/",
            env=env_with_this_package(os.environ),
            pass_fds=(ready_write,),
        )
    except OSError as exc:
        os.close(ready_read)
        raise WatchdogError(f"cannot start a watchdog for {ledger_dir}: {exc}") from None
    finally:
        os.close(ready_write)
    try:
        message = read_line(ready_read, time.monotonic() + START_TIMEOUT)
    finally:
        os.close(ready_read)
    # The launcher forks the watchdog and exits at once; reap it so it leaves no zombie.
    with contextlib.suppress(subprocess.TimeoutExpired):
        launcher.wait(timeout=START_TIMEOUT)
    if message.startswith("ready "):
        return int(message.split()[1])
    if message == "busy":
        pid = watchdog_pid(ledger_dir)
        if pid is not None:
            return pid
    raise WatchdogError(
        f"the watchdog for {ledger_dir} did not start; see {log_path(ledger_dir)}"
        + (f" ({_last_line(log_path(ledger_dir))})" if message == "" else f" ({message})")
    )


def _last_line(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return lines[-1] if lines else "empty log"
