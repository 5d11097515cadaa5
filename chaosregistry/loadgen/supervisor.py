"""The load supervisor process: waits for "go", runs Locust, ends it if it overstays.

Started by ``launch`` as the leader of the load's process group::

    python -m chaosregistry.loadgen.supervisor supervise STATS_DIR --go-fd N --ready-fd M TAG

It writes the load's ``status.json`` (see ``store``) as Locust starts and ends, deletes the
private credentials copy whichever way it ends, and writes ``timeseries.json`` when Locust
exits. Nothing imports this module: ``launch`` names it on the supervisor's command line.
"""

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from chaosregistry.osutil.files import write_json
from chaosregistry.osutil.identity import group_members
from chaosregistry.osutil.spawn import read_line, send_line

from .command import child_env
from .credentials import remove_private_credentials
from .parameters import STARTUP_ALLOWANCE, STOP_GRACE
from .stats import write_timeseries
from .store import Load, read_json

# The group's SIGTERM reaches Locust directly; the supervisor repeats it only when Locust is
# still there this long after (someone signalled the supervisor alone).
FORWARD_DELAY = 2.0
POLL = 0.1


def supervise(stats_dir: Path, go_fd: int, ready_fd: int) -> int:
    """Wait for "go", run Locust, end it if it overstays, write the time series."""
    spec = read_json(stats_dir / "load.json") or {}
    status: dict[str, Any] = {"state": "waiting", "supervisor_pid": os.getpid()}
    write_json(stats_dir / "status.json", status)
    credentials = Path(spec["credentials_dir"]) if spec.get("credentials_dir") else None
    try:
        line = read_line(go_fd, time.monotonic() + 24 * 3600)
        os.close(go_fd)
        if line != "go":
            status.update(state="cancelled", ended_at=time.time())
            write_json(stats_dir / "status.json", status)
            return 0
        return _run_locust(stats_dir, spec, status, ready_fd)
    finally:
        if credentials is not None:
            remove_private_credentials(credentials)


def _run_locust(
    stats_dir: Path, spec: dict[str, Any], status: dict[str, Any], ready_fd: int
) -> int:
    stop_requested: list[float] = []

    def on_signal(signum: int, _frame: Any) -> None:
        if not stop_requested:
            stop_requested.append(time.monotonic())

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    with open(stats_dir / "locust.log", "ab") as log:
        locust = subprocess.Popen(
            spec["command"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=stats_dir,
            env=child_env(),
        )
    status.update(state="running", locust_pid=locust.pid, started_at=time.time())
    write_json(stats_dir / "status.json", status)
    send_line(ready_fd, f"started {locust.pid}")
    deadline = time.monotonic() + float(spec.get("duration", 0)) + STARTUP_ALLOWANCE
    state = "finished"
    terminated_at: float | None = None
    killed = False
    while True:
        try:
            exit_code = locust.wait(timeout=POLL)
            break
        except subprocess.TimeoutExpired:
            pass
        now = time.monotonic()
        if terminated_at is None:
            if stop_requested and now - stop_requested[0] >= FORWARD_DELAY:
                state, terminated_at = "stopped", now
                locust.terminate()
            elif now >= deadline:
                state, terminated_at = "overran", now
                locust.terminate()
        elif not killed and now - terminated_at >= STOP_GRACE:
            killed = True
            for pid in group_members(os.getpgid(0)):
                if pid != os.getpid():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
    if stop_requested and state == "finished":
        state = "stopped"
    status.update(state=state, exit_code=exit_code, ended_at=time.time())
    write_json(stats_dir / "status.json", status)
    write_timeseries(Load.read(stats_dir))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m chaosregistry.loadgen.supervisor supervise STATS_DIR --go-fd N --ready-fd M TAG``
    (TAG only marks the command line, so leftover processes can be found)."""
    parser = argparse.ArgumentParser(prog="python -m chaosregistry.loadgen.supervisor")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("supervise", help="run one load (started by start_pull_load)")
    run.add_argument("stats_dir", type=Path)
    run.add_argument("--go-fd", type=int, required=True)
    run.add_argument("--ready-fd", type=int, required=True)
    run.add_argument("tag")
    args = parser.parse_args(argv)
    return supervise(args.stats_dir, args.go_fd, args.ready_fd)


if __name__ == "__main__":
    sys.exit(main())
