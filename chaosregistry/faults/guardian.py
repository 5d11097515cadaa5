"""The guardian: keeps a watchdog alive for every known ledger that has active faults.

The watchdog (``watchdog_daemon``) is the one process that reverts a fault after ``chaos run``
is gone. Kill both together (an OOM kill, a container stop, ``kill -9`` of a process tree) and
nothing would revert the fault until someone next ran a ledger-aware command. A running sandbox
therefore runs this process too (``sandbox up`` starts it as the piece ``guardian``): every
``POLL_INTERVAL`` seconds it walks the index of known ledgers (``watchdog.known_ledgers``;
every ledger is added there before its first entry is written) and, for a ledger with an active
entry and no watchdog, starts one (``watchdog.ensure_watchdog``, the same gate every injecting
process goes through, so a guardian and ``chaos run`` never start two). The new watchdog then
reverts what is due: at once for an entry whose owner is dead, at expiry otherwise.

It never reverts anything itself: one process type undoes faults. Ledgers whose directory is
gone are dropped from the index. Run as ``python -m chaosregistry.faults.guardian``; it writes
``--ready-file`` once its first pass is done and logs each watchdog it starts.
"""

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from chaosregistry.faults.ledger import Ledger
from chaosregistry.faults.watchdog import (
    WatchdogError,
    ensure_watchdog,
    forget_ledger,
    known_ledgers,
    known_ledgers_dir,
    watchdog_pid,
)
from chaosregistry.osutil.files import write_text_atomic

log = logging.getLogger("chaosregistry.faults.guardian")

# A watchdog killed while faults are active is running again within about this much plus its
# own start (~0.3 s): the bound is one second.
POLL_INTERVAL = 0.2


def watched_ledgers(index: Path | None = None) -> list[dict[str, Any]]:
    """The known ledgers that hold active faults: ``{"ledger", "active", "expired",
    "watchdog"}`` each (``watchdog``: its pid, None when none runs), for ``sandbox status``."""
    report = []
    for ledger_dir in known_ledgers(index or known_ledgers_dir()):
        ledger = Ledger(ledger_dir)
        active = ledger.active()
        now = ledger.now()
        if active:
            report.append(
                {
                    "ledger": str(ledger_dir),
                    "active": len(active),
                    "expired": sum(1 for entry in active if entry.expired(now)),
                    "watchdog": watchdog_pid(ledger_dir),
                }
            )
    return report


class Guardian:
    """One pass at a time over the index (``tick``); ``run`` loops until SIGTERM."""

    def __init__(self, index: Path) -> None:
        self.index = index
        # ledger dir -> its directory's mtime when a scan found nothing active. Entries are
        # written by rename, so an unchanged mtime means no entry changed: not read again.
        self._quiet: dict[Path, int] = {}

    def tick(self) -> list[tuple[Path, int]]:
        """Start the watchdogs that are missing; returns (ledger, watchdog pid) started."""
        started = []
        for ledger_dir in known_ledgers(self.index):
            try:
                mtime = ledger_dir.stat().st_mtime_ns
            except FileNotFoundError:
                forget_ledger(ledger_dir, self.index)
                self._quiet.pop(ledger_dir, None)
                log.info("ledger %s is gone; dropped from the index", ledger_dir)
                continue
            except OSError as exc:
                log.warning("cannot read ledger %s: %s", ledger_dir, exc)
                continue
            if self._quiet.get(ledger_dir) == mtime or watchdog_pid(ledger_dir) is not None:
                continue
            active = Ledger(ledger_dir).active()
            if not active:
                self._quiet[ledger_dir] = mtime
                continue
            self._quiet.pop(ledger_dir, None)
            try:
                pid = ensure_watchdog(ledger_dir)
            except WatchdogError as exc:
                log.error(
                    "%s: %d active fault(s) and no watchdog: %s", ledger_dir, len(active), exc
                )
                continue
            log.info(
                "%s: %d active fault(s) had no watchdog; started watchdog %d (%s)",
                ledger_dir,
                len(active),
                pid,
                ", ".join(entry.id for entry in active),
            )
            started.append((ledger_dir, pid))
        return started

    def run(self, poll: float, ready_file: Path | None) -> None:
        first = True
        while True:
            try:
                self.tick()
            except Exception:
                # A dead guardian protects nothing: log and go on.
                log.exception("guardian pass failed")
            if first and ready_file is not None:
                write_text_atomic(ready_file, f"{os.getpid()}\n")
                first = False
            time.sleep(poll)


def _stop(signum: int, frame: FrameType | None) -> None:
    log.info("stopping on %s", signal.Signals(signum).name)
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chaosregistry.faults.guardian",
        description="Keep a watchdog running for every known ledger with active faults.",
    )
    parser.add_argument("--index", type=Path, default=None, help="the index of known ledgers")
    parser.add_argument("--poll", type=float, default=POLL_INTERVAL)
    parser.add_argument("--ready-file", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s guardian[%(process)d] %(levelname)s %(message)s",
    )
    signal.signal(signal.SIGTERM, _stop)
    index = (args.index or known_ledgers_dir()).absolute()
    if args.ready_file is not None:
        args.ready_file.unlink(missing_ok=True)
    log.info("guarding the ledgers indexed in %s (poll %.2fs)", index, args.poll)
    Guardian(index).run(args.poll, args.ready_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
