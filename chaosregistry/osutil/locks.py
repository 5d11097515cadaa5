"""Advisory file locks (``flock``): the fault ledger's entries and watchdog, a sandbox's or a
test cluster's state directory, a build cache entry.

``flock`` locks belong to an open file description and the kernel drops them when the holder
dies, even by SIGKILL: a crashed process can never leave a fault locked. A process-wide registry
makes the locks re-entrant within one thread (``inject`` holds an entry's lock while it calls
``mark_injected``, which takes it again) while still excluding other threads and processes.
"""

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from chaosregistry.errors import ChaosRegistryError

POLL_INTERVAL = 0.01


class LockBusy(ChaosRegistryError):
    """Another process (or thread) holds the lock and the caller chose not to wait longer."""


class _PathLock:
    def __init__(self) -> None:
        self.thread_lock = threading.RLock()
        self.fd: int | None = None
        self.depth = 0


_registry_guard = threading.Lock()
_registry: dict[str, _PathLock] = {}


def _path_lock(path: Path) -> _PathLock:
    key = os.path.realpath(path)
    with _registry_guard:
        return _registry.setdefault(key, _PathLock())


def try_flock(fd: int) -> bool:
    """Take an exclusive ``flock`` on ``fd`` without waiting; False when someone else holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _flock_until(fd: int, deadline: float | None) -> bool:
    # Polling instead of a blocking flock keeps the wait bounded and interruptible.
    while not try_flock(fd):
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL)
    return True


@contextlib.contextmanager
def hold(path: Path, *, timeout: float | None) -> Iterator[None]:
    """Hold the exclusive lock on ``path`` (created if missing) for the ``with`` block.

    ``timeout`` is how long to wait: 0 tries once, None waits forever. Raises ``LockBusy`` when
    the lock could not be taken in time.
    """
    lock = _path_lock(path)
    deadline = None if timeout is None else time.monotonic() + timeout
    acquired = lock.thread_lock.acquire(timeout=-1 if timeout is None else max(timeout, 0.0))
    if not acquired:
        raise LockBusy(f"{path} is held by another thread")
    try:
        if lock.depth == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            if not _flock_until(fd, deadline):
                os.close(fd)
                raise LockBusy(f"{path} is held by another process")
            lock.fd = fd
        lock.depth += 1
        try:
            yield
        finally:
            lock.depth -= 1
            if lock.depth == 0 and lock.fd is not None:
                fd, lock.fd = lock.fd, None
                # Closing the descriptor releases the flock.
                os.close(fd)
    finally:
        lock.thread_lock.release()


@contextlib.contextmanager
def hold_or_raise(path: Path, error: Exception, *, timeout: float | None) -> Iterator[None]:
    """``hold``, raising ``error`` instead of ``LockBusy`` when the lock is not taken in time.

    Only taking the lock is translated: a ``LockBusy`` raised inside the block (some other
    lock) passes through unchanged.
    """
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(hold(path, timeout=timeout))
        except LockBusy:
            raise error from None
        yield


def is_held(path: Path) -> bool:
    """Whether some other open file description holds the lock on ``path`` right now."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        return not try_flock(fd)
    finally:
        os.close(fd)
