"""``osutil.supervise`` against real processes: start and record, identity, stop escalation."""

import contextlib
import dataclasses
import os
import re
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.polling import eventually

from chaosregistry.osutil import supervise
from chaosregistry.osutil.identity import ProcStat, group_members, is_alive, read_stat
from chaosregistry.osutil.supervise import ProcessRecord

# It starts (small) processes of ours.

# A group leader that forks one child, says "ready", then waits for signals until one ends it;
# "stubborn" makes both ignore SIGTERM (and say so in the log).
GROUP_SCRIPT = """
import os, signal, sys
if sys.argv[1] == "stubborn":
    signal.signal(signal.SIGTERM, lambda *_: print("SIGTERM ignored", flush=True))
if os.fork() == 0:
    while True:
        signal.pause()
print("ready", flush=True)
while True:
    signal.pause()
"""


@pytest.fixture
def started() -> Iterator[list[ProcessRecord]]:
    records: list[ProcessRecord] = []
    yield records
    for record in records:
        # A test that failed half-way must not leave its group running; ``members`` is empty
        # once the group's pid may belong to someone else.
        if record.members():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(record.pgid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(record.pid, 0)


def start_group(tmp_path: Path, records: list[ProcessRecord], mode: str = "polite") -> Path:
    """Start GROUP_SCRIPT under supervision, wait for its "ready"; returns the record file."""
    record_file = tmp_path / f"{mode}.pid"
    log = tmp_path / f"{mode}.log"
    supervise.start_recorded(
        [sys.executable, "-c", GROUP_SCRIPT, mode],
        record=record_file,
        log=log,
        cwd=tmp_path,
        header="--- test starts it",
    )
    record = supervise.read_record(record_file)
    assert record is not None
    records.append(record)
    eventually(f"{mode} group ready", lambda: "ready" in log.read_text(), timeout=20)
    return record_file


def test_a_started_process_is_recorded_by_identity_and_found_running(
    tmp_path: Path, started: list[ProcessRecord]
) -> None:
    record_file = start_group(tmp_path, started)
    record = supervise.running(record_file)
    assert record is not None
    assert record == ProcessRecord.of(record.pid)
    assert record.pgid == record.pid  # detached: it leads its own group
    assert len(record.members()) == 2  # the leader and its forked child
    assert (tmp_path / "polite.log").read_text().startswith("--- test starts it\n")


def test_sigterm_ends_the_whole_group_without_waiting_for_the_grace(
    tmp_path: Path, started: list[ProcessRecord]
) -> None:
    record = supervise.running(start_group(tmp_path, started))
    assert record is not None
    began = time.monotonic()
    assert supervise.stop_group(record, grace=20.0) == []
    assert time.monotonic() - began < 10.0
    assert group_members(record.pgid) == []
    assert supervise.running(tmp_path / "polite.pid") is None


def test_a_group_that_ignores_sigterm_is_killed_after_the_grace(
    tmp_path: Path, started: list[ProcessRecord]
) -> None:
    record = supervise.running(start_group(tmp_path, started, "stubborn"))
    assert record is not None
    began = time.monotonic()
    assert supervise.stop_group(record, grace=1.0) == []
    assert time.monotonic() - began >= 1.0
    assert group_members(record.pgid) == []
    assert "SIGTERM ignored" in (tmp_path / "stubborn.log").read_text()


def test_a_pid_with_another_start_time_is_not_ours_and_is_never_signalled(
    tmp_path: Path, started: list[ProcessRecord]
) -> None:
    record = supervise.running(start_group(tmp_path, started))
    assert record is not None
    # What a record of an earlier process that had this pid looks like: same pid, other start.
    earlier = dataclasses.replace(record, start_time=record.start_time - 1)
    supervise.write_record(tmp_path / "earlier.pid", earlier)
    assert supervise.running(tmp_path / "earlier.pid") is None
    assert earlier.members() == []
    assert supervise.stop_group(earlier, signal.SIGKILL, grace=1.0) == []
    assert len(group_members(record.pgid)) == 2  # the process that has the pid now is untouched


def test_a_record_from_another_boot_names_no_process(
    tmp_path: Path, started: list[ProcessRecord]
) -> None:
    record = supervise.running(start_group(tmp_path, started))
    assert record is not None
    other_boot = dataclasses.replace(record, boot_id="another-boot")
    assert not other_boot.runs()
    assert other_boot.members() == []


def test_a_group_whose_leader_died_is_still_ours_until_its_members_are_gone(
    tmp_path: Path, started: list[ProcessRecord]
) -> None:
    record = supervise.running(start_group(tmp_path, started))
    assert record is not None
    os.kill(record.pid, signal.SIGKILL)  # the leader only, as a fault kills nginx's master
    eventually("leader gone", lambda: not is_alive(record.pid), timeout=10)
    assert not record.runs()
    child = record.members()
    assert len(child) == 1 and child[0] != record.pid
    assert supervise.stop_group(record, grace=5.0) == []
    assert not is_alive(child[0])


def test_an_exited_child_is_not_running_and_is_collected_by_the_stop(tmp_path: Path) -> None:
    process = supervise.start_recorded(
        ["/bin/sh", "-c", "exit 3"], record=tmp_path / "quick.pid", log=tmp_path / "quick.log",
        cwd=tmp_path,
    )  # fmt: skip
    record = supervise.read_record(tmp_path / "quick.pid")
    assert record is not None and record.pid == process.pid
    eventually("exited", lambda: not is_alive(process.pid), timeout=10)
    assert supervise.running(tmp_path / "quick.pid") is None
    assert supervise.stop_group(record, grace=1.0) == []
    with pytest.raises(ChildProcessError):  # collected: no zombie of ours is left
        os.waitpid(process.pid, os.WNOHANG)


# A leader thread that exits on its own (pthread_exit) while another thread keeps a listening
# socket open: what a Go server looks like for a moment while it exits thread by thread.
LEADER_EXITS_SCRIPT = """
import ctypes, socket, threading, time
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen()
threading.Thread(target=lambda: time.sleep(120), daemon=False).start()
print("port", server.getsockname()[1], flush=True)
ctypes.CDLL(None).pthread_exit(None)
"""


def test_a_zombie_leader_whose_threads_still_run_is_alive_until_its_last_thread_exits(
    tmp_path: Path,
) -> None:
    log = tmp_path / "threads.log"
    supervise.start_recorded(
        [sys.executable, "-c", LEADER_EXITS_SCRIPT], record=tmp_path / "threads.pid", log=log,
        cwd=tmp_path,
    )  # fmt: skip
    record = supervise.read_record(tmp_path / "threads.pid")
    assert record is not None
    try:
        port = int(eventually("its port", lambda: re.findall(r"^port (\d+)$", log.read_text(),
                                                             re.M), timeout=20)[0])  # fmt: skip
        stat = eventually("the leader a zombie", lambda: _zombie(record.pid), timeout=10)
        assert stat.threads == 2
        # Still serving: its socket is open, so it is alive and a member of its group.
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        assert is_alive(record.pid) and record.runs()
        assert group_members(record.pgid) == [record.pid]
        assert supervise.stop_group(record, grace=5.0) == []
        # Gone means gone: the port refuses at once (a restart on it would not meet the old one).
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)
    finally:  # whatever the code under test says, no process of the test is left behind
        with contextlib.suppress(ProcessLookupError):
            os.killpg(record.pgid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(record.pid, 0)


def _zombie(pid: int) -> ProcStat | None:
    stat = read_stat(pid)
    return stat if stat is not None and stat.state == "Z" else None
