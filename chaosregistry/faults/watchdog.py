"""The caller's side of the watchdog: is one running for this ledger, and start one if not.

Chaos Toolkit keeps rollbacks in memory and skips them on interrupted runs, so a fault's undo
cannot depend on ``chaos run`` surviving. ``ensure_watchdog`` starts, once per ledger
directory, the detached daemon ``python -m chaosregistry.faults.watchdog_daemon <ledger_dir>``
(what it does: ``chaosregistry.faults.watchdog_daemon``). The daemon holds ``watchdog.lock``
for its whole life, with its pid in it; ``watchdog-gate.lock`` serialises "start a watchdog"
against "the watchdog exits".

Every ledger that gets a watchdog is also written to the index of known ledgers
(``known_ledgers_dir()``), so that a sandbox's guardian (``chaosregistry.faults.guardian``) can
start a watchdog again for a ledger whose watchdog was killed while faults were active.

This module never imports the daemon, nor the fault lifecycle: ``lifecycle`` imports it.
"""

import contextlib
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from chaosregistry.errors import ChaosRegistryError
from chaosregistry.faults.ledger import state_home
from chaosregistry.osutil import locks
from chaosregistry.osutil.files import write_text_atomic
from chaosregistry.osutil.spawn import env_with_this_package, read_line, spawn_detached

DAEMON_MODULE = "chaosregistry.faults.watchdog_daemon"
START_TIMEOUT = 10.0
LEDGER_INDEX_ENV = "CHAOSREGISTRY_LEDGER_INDEX"


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


def known_ledgers_dir() -> Path:
    """The index of ledgers that have had a watchdog: ``$CHAOSREGISTRY_LEDGER_INDEX``, else
    ``<state home>/ledgers.d``. One file per ledger, named by a hash of its path, holding it."""
    value = os.environ.get(LEDGER_INDEX_ENV)
    return Path(value).absolute() if value else state_home() / "ledgers.d"


def _index_file(index: Path, ledger_dir: Path) -> Path:
    digest = hashlib.sha256(str(ledger_dir).encode()).hexdigest()[:24]
    return index / f"{digest}.ledger"


def register_ledger(ledger_dir: Path, index: Path | None = None) -> None:
    """Add ``ledger_dir`` to the index of known ledgers (once; a no-op when it is there)."""
    index = index or known_ledgers_dir()
    path = _index_file(index, ledger_dir)
    with contextlib.suppress(OSError):
        if path.read_text() == f"{ledger_dir}\n":
            return
    index.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_text_atomic(path, f"{ledger_dir}\n", mode=0o600)


def forget_ledger(ledger_dir: Path, index: Path) -> None:
    """Drop ``ledger_dir`` from the index (its directory is gone)."""
    _index_file(index, ledger_dir).unlink(missing_ok=True)


def known_ledgers(index: Path | None = None) -> list[Path]:
    """The ledger directories in the index, sorted; unreadable index files are skipped."""
    index = index or known_ledgers_dir()
    try:
        names = sorted(name for name in os.listdir(index) if name.endswith(".ledger"))
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        with contextlib.suppress(OSError):
            text = (index / name).read_text().strip()
            if os.path.isabs(text):
                found.append(Path(text))
    return found


@contextlib.contextmanager
def watchdog_guard(
    ledger_dir: str | os.PathLike[str], *, idle_exit: float | None = None
) -> Iterator[int]:
    """Hold the watchdog gate with a watchdog running (started if needed); yields its pid.

    The watchdog only exits after checking, under this gate, that no entry is active; an entry
    recorded inside this block is therefore always watched.
    """
    directory = Path(ledger_dir).absolute()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Before any entry can exist: a guardian must be able to find every ledger with faults.
    try:
        register_ledger(directory)
    except OSError as exc:
        raise WatchdogError(f"cannot add {directory} to the index of ledgers: {exc}") from None
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
