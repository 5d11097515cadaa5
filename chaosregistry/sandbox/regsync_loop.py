"""``regsync once`` in a loop: the second site's replication, run as a sandbox piece.

    python -m chaosregistry.sandbox.regsync_loop --regsync BIN --config run/config/regsync.yml \\
        --interval 0.5 --pass-timeout 20 --ready-file run/state/regsync.ready

A loop of ``once`` rather than ``regsync server``: every pass is a new regsync, so one that a
cut sync path left backing off a host starts afresh when the path heals, and a pass that hangs
longer than ``--pass-timeout`` (a black-holed hop) is killed and the next one started. Each pass
is logged with its exit code and seconds. The ready file is written after the first pass that
exits 0 (both sites answered), which is what ``sandbox up`` waits for.
"""

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from chaosregistry.osutil.files import write_text_atomic


def _log(message: str) -> None:
    stamp = time.strftime("%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}"
    print(f"regsync-loop {stamp} {message}", flush=True)


def run_pass(regsync: str, config: Path, timeout: float) -> int | None:
    """One ``regsync once``; its exit code, None when it was killed at ``timeout``."""
    process = subprocess.Popen([regsync, "once", "-c", str(config), "-v", "warn"])
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaosregistry.sandbox.regsync_loop")
    parser.add_argument("--regsync", required=True)
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--pass-timeout", type=float, default=20.0)
    parser.add_argument("--ready-file", required=True, type=Path)
    args = parser.parse_args(argv)
    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    ready = False
    number = 0
    while not stopping:
        number += 1
        started = time.monotonic()
        code = run_pass(args.regsync, args.config, args.pass_timeout)
        seconds = time.monotonic() - started
        if code is None:
            _log(f"pass {number} killed after {seconds:.1f} s (--pass-timeout)")
        elif code != 0 or not ready or seconds > 2.0:
            # Quiet passes are the common case: log failures, the first pass and slow ones.
            _log(f"pass {number} exit {code} in {seconds:.2f} s")
        if code == 0 and not ready:
            write_text_atomic(args.ready_file, f"{number}\n")
            ready = True
        time.sleep(args.interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
