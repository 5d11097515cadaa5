"""The watchdog daemon: a detached process that reverts faults whose time is up or whose
owner died (``python -m chaosregistry.faults.watchdog_daemon <ledger_dir>``).

Started by ``chaosregistry.faults.watchdog.ensure_watchdog``, it detaches (own session,
re-parented away from the caller, so a SIGKILL or Ctrl-C to the caller's process group does not
reach it), holds ``watchdog.lock`` for its whole life, and every ``POLL_INTERVAL`` seconds
reverts each active entry that has expired (reason ``expired``) or whose owner process is gone
(``owner-gone``), retrying revert-failed entries with backoff. It exits once nothing has been
active for ``idle_exit`` seconds, and logs to ``watchdog.log`` in the ledger directory.
"""

import argparse
import contextlib
import logging
import os
import sys
import time
from pathlib import Path

from chaosregistry.faults import lifecycle
from chaosregistry.faults.ledger import (
    CorruptEntryError,
    Entry,
    FaultState,
    Instant,
    Ledger,
    RevertReason,
)
from chaosregistry.faults.undo import UndoError, get_handler, run_undo
from chaosregistry.faults.watchdog import DAEMON_MODULE, gate_path, lock_path
from chaosregistry.osutil import locks
from chaosregistry.osutil.spawn import send_line

log = logging.getLogger(DAEMON_MODULE)

POLL_INTERVAL = 0.2
IDLE_EXIT = 3.0
IDLE_EXIT_ENV = "CHAOSREGISTRY_WATCHDOG_IDLE_EXIT"
MAX_BACKOFF = 5.0
GIVE_UP_AFTER = 3600.0
# A fault whose owner died mid-apply may have its last API call land just after our undo:
# undo such never-confirmed faults once more, a little later.
RECHECK_DELAY = 1.0
RECHECK_ATTEMPTS = 5


def _default_idle_exit() -> float:
    try:
        return float(os.environ.get(IDLE_EXIT_ENV, IDLE_EXIT))
    except ValueError:
        return IDLE_EXIT


class Watchdog:
    """The watchdog's loop over one ledger; ``run`` returns when it is time to exit."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        lock_fd: int,
        poll: float = POLL_INTERVAL,
        idle_exit: float = IDLE_EXIT,
        give_up_after: float = GIVE_UP_AFTER,
    ) -> None:
        self.ledger = ledger
        self.poll = poll
        self.idle_exit = idle_exit
        self.give_up_after = give_up_after
        self._lock_fd = lock_fd
        self._retry_at: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self._failing_since: dict[str, float] = {}
        self._given_up: set[str] = set()
        self._rechecks: dict[str, tuple[float, int, Entry]] = {}
        # Entry files are replaced (new inode) on every change: an unchanged signature means
        # an unchanged file, so terminal and corrupt files are read once, not every poll.
        self._terminal: dict[str, tuple[int, int, int]] = {}
        self._corrupt: dict[str, tuple[int, int, int]] = {}
        # Entries whose undo handler is imported: on first sight, not at the revert, when time
        # counts; and only theirs (see chaosregistry.faults.undo).
        self._prepared: set[str] = set()

    def run(self) -> None:
        idle_since: float | None = None
        while True:
            try:
                busy = self.tick()
            except Exception:
                # Whatever went wrong, a dead watchdog is worse: log it and poll again.
                log.exception("watchdog pass failed")
                busy = True
            now = time.monotonic()
            if busy:
                idle_since = None
            elif idle_since is None:
                idle_since = now
            elif now - idle_since >= self.idle_exit and self._exit_if_idle():
                log.info("no active faults for %.1fs; exiting", now - idle_since)
                return
            time.sleep(self.poll)

    def tick(self) -> bool:
        """One pass over the ledger; True while there is (or may soon be) work to do."""
        busy = bool(self._rechecks)
        # The ledger's clock: expiry by the boot clock, so a step of the wall clock neither
        # ends a fault early nor keeps one past its time.
        now = self.ledger.now()
        for entry in self._scan():
            if entry.id in self._given_up:
                continue
            busy = True
            self._prepare(entry)
            reason = self._due(entry, now)
            if reason is not None and time.monotonic() >= self._retry_at.get(entry.id, 0.0):
                self._revert(entry, reason)
        self._run_rechecks()
        return busy

    def _scan(self) -> list[Entry]:
        """The active entries; corrupt files are logged once and skipped."""
        try:
            names = sorted(os.listdir(self.ledger.path))
        except FileNotFoundError:
            return []
        active: list[Entry] = []
        for name in names:
            if not name.endswith(".json") or name.startswith("."):
                continue
            path = self.ledger.path / name
            try:
                stat = path.stat()
            except OSError:
                continue  # gone since the listing, or unreadable: the next pass sees
            signature = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            if self._terminal.get(name) == signature or self._corrupt.get(name) == signature:
                continue
            try:
                entry = self.ledger.read_file(path)
            except FileNotFoundError:
                continue
            except (CorruptEntryError, OSError) as exc:
                log.error("skipping unreadable entry file: %s", exc)
                self._corrupt[name] = signature
                continue
            if entry.active:
                active.append(entry)
            else:
                self._terminal[name] = signature
        return active

    def _prepare(self, entry: Entry) -> None:
        """Import ``entry``'s undo handler once; a missing one is the revert's to report."""
        if entry.id in self._prepared:
            return
        self._prepared.add(entry.id)
        with contextlib.suppress(UndoError):
            get_handler(str(entry.undo.get("kind")), entry.undo_module)

    @staticmethod
    def _due(entry: Entry, now: Instant) -> RevertReason | None:
        if entry.state is FaultState.REVERT_FAILED:
            return entry.revert_reason or RevertReason.MANUAL
        if entry.expired(now):
            return RevertReason.EXPIRED
        if entry.owner is not None and not entry.owner.is_alive():
            return RevertReason.OWNER_GONE
        return None

    def _revert(self, entry: Entry, reason: RevertReason) -> None:
        started = time.time()
        try:
            result = lifecycle.revert(self.ledger, entry.id, reason, lock_timeout=0)
        except locks.LockBusy:
            return  # being applied or reverted by another process right now: next pass
        except lifecycle.RevertError as exc:
            self._schedule_retry(entry.id, str(exc))
            return
        except Exception as exc:
            # The ledger itself failed (disk full, entry vanished): retry like a failed undo
            # rather than abandon the other entries of this pass.
            self._schedule_retry(entry.id, f"{entry.id}: {type(exc).__name__}: {exc}")
            return
        self._retry_at.pop(entry.id, None)
        self._failures.pop(entry.id, None)
        self._failing_since.pop(entry.id, None)
        if result.state is not FaultState.REVERTED or (result.reverted_at or 0.0) < started:
            return  # someone else finished it first
        lateness = ""
        if reason is RevertReason.EXPIRED:
            lateness = f", {-result.remaining(self.ledger.now()):.3f}s after expiry"
        log.info(
            "reverted %s (%s on %s): %s%s, undo took %.3fs",
            result.id,
            result.kind,
            result.target,
            reason,
            lateness,
            time.time() - started,
        )
        if result.injected_at is None:
            self._rechecks[result.id] = (time.monotonic() + RECHECK_DELAY, RECHECK_ATTEMPTS, result)

    def _schedule_retry(self, entry_id: str, error: str) -> None:
        now = time.monotonic()
        failures = self._failures.get(entry_id, 0) + 1
        self._failures[entry_id] = failures
        first = self._failing_since.setdefault(entry_id, now)
        if now - first > self.give_up_after:
            self._given_up.add(entry_id)
            log.error(
                "giving up on %s after %d failed reverts; run `chaosregistry rollback`: %s",
                entry_id,
                failures,
                error,
            )
            return
        delay = min(MAX_BACKOFF, self.poll * 2 ** (failures - 1))
        self._retry_at[entry_id] = now + delay
        log.warning("revert failed (attempt %d, next in %.1fs): %s", failures, delay, error)

    def _run_rechecks(self) -> None:
        now = time.monotonic()
        for entry_id, (when, attempts, entry) in list(self._rechecks.items()):
            if now < when:
                continue
            try:
                run_undo(entry.undo, module=entry.undo_module)
            except Exception as exc:
                if attempts <= 1:
                    del self._rechecks[entry_id]
                    log.error("second undo of %s failed, giving up: %s", entry_id, exc)
                else:
                    self._rechecks[entry_id] = (now + RECHECK_DELAY, attempts - 1, entry)
                    log.warning("second undo of %s failed: %s", entry_id, exc)
            else:
                del self._rechecks[entry_id]

    def _exit_if_idle(self) -> bool:
        """Release the watchdog lock and return True if, under the gate, nothing is active."""
        try:
            with locks.hold(gate_path(self.ledger.path), timeout=1.0):
                self._terminal.clear()  # a fresh look: nothing may be skipped on the way out
                if self.tick():
                    return False
                # Released while the gate is still held: a starter that gets the gate next
                # sees no watchdog and starts one.
                os.close(self._lock_fd)
                return True
        except locks.LockBusy:
            return False


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m chaosregistry.faults.watchdog_daemon LEDGER_DIR``."""
    parser = argparse.ArgumentParser(
        prog=f"python -m {DAEMON_MODULE}",
        description="Revert expired or orphaned faults of one ledger directory.",
    )
    parser.add_argument("ledger_dir", type=Path)
    parser.add_argument("--idle-exit", type=float, default=None)
    parser.add_argument("--poll", type=float, default=POLL_INTERVAL)
    parser.add_argument("--give-up-after", type=float, default=GIVE_UP_AFTER)
    parser.add_argument("--ready-fd", type=int, default=None)
    parser.add_argument("--foreground", action="store_true", help="do not detach")
    args = parser.parse_args(argv)
    # Fork so the launcher can exit (and be reaped by its caller) while we are re-parented.
    if not args.foreground and os.fork() > 0:
        os._exit(0)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s watchdog[%(process)d] %(levelname)s %(message)s",
    )
    # One line per revert is the useful record; not every HTTP request behind it.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    ledger_dir = args.ledger_dir.absolute()
    ledger_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    lock_fd = os.open(lock_path(ledger_dir), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    # Others probe this lock for microseconds (is_held): retry briefly before concluding that
    # another watchdog owns the ledger.
    deadline = time.monotonic() + 1.0
    while not locks.try_flock(lock_fd):
        if time.monotonic() >= deadline:
            send_line(args.ready_fd, "busy")
            return 0
        time.sleep(locks.POLL_INTERVAL)
    os.ftruncate(lock_fd, 0)
    os.pwrite(lock_fd, f"{os.getpid()}\n".encode(), 0)
    idle_exit = _default_idle_exit() if args.idle_exit is None else args.idle_exit
    # Ready as soon as the lock is ours: the injecting caller is waiting for this line.
    send_line(args.ready_fd, f"ready {os.getpid()}")
    log.info("watching %s (poll %.2fs, idle exit %.1fs)", ledger_dir, args.poll, idle_exit)
    Watchdog(
        Ledger(ledger_dir),
        lock_fd=lock_fd,
        poll=args.poll,
        idle_exit=idle_exit,
        give_up_after=args.give_up_after,
    ).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
