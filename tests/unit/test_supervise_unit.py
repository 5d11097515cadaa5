"""``osutil.supervise``: record files, the one retry of a start, and what is left of processes
while a stop waits (with `sleep` processes of its own)."""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from chaosregistry.osutil import supervise
from chaosregistry.osutil.identity import boot_id, proc_stat
from chaosregistry.osutil.supervise import ProcessRecord


def test_a_record_is_written_as_json_and_read_back(tmp_path: Path) -> None:
    record = ProcessRecord(pid=1234, start_time=5678, pgid=1234, boot_id="boot")
    supervise.write_record(tmp_path / "x.pid", record)
    assert json.loads((tmp_path / "x.pid").read_text()) == {
        "pid": 1234, "start_time": 5678, "pgid": 1234, "boot_id": "boot",
    }  # fmt: skip
    assert supervise.read_record(tmp_path / "x.pid") == record


@pytest.mark.parametrize("content", ["", "{}", '{"pid": "x"}', "[1, 2]", "not json"])
def test_a_file_that_holds_no_record_names_no_process(tmp_path: Path, content: str) -> None:
    (tmp_path / "x.pid").write_text(content)
    assert supervise.read_record(tmp_path / "x.pid") is None
    assert supervise.read_record(tmp_path / "missing.pid") is None


def test_a_bare_pid_is_adopted_only_when_the_caller_says_it_is_ours(tmp_path: Path) -> None:
    (tmp_path / "x.pid").write_text(f"{os.getpid()}\n")
    assert supervise.read_record(tmp_path / "x.pid") is None
    assert supervise.read_record(tmp_path / "x.pid", adopt=lambda pid: False) is None
    adopted = supervise.read_record(tmp_path / "x.pid", adopt=lambda pid: pid == os.getpid())
    assert adopted == ProcessRecord.of(os.getpid())
    assert adopted is not None and adopted.runs() and adopted.boot_id == boot_id()


def test_recording_a_process_that_does_not_exist_raises() -> None:
    # The kernel's pid_max is at most 2**22: this pid cannot exist.
    with pytest.raises(supervise.ProcessGone, match="does not exist"):
        ProcessRecord.of(2**22 + 1)


class NotReady(Exception):
    pass


class Starter:
    """Stands in for a process start: each call "starts" the next pid, 1, 2, ..."""

    def __init__(self) -> None:
        self.pids: list[int] = []

    def __call__(self) -> int:
        self.pids.append(len(self.pids) + 1)
        return self.pids[-1]


def test_a_process_that_exits_while_starting_is_started_once_more() -> None:
    start = Starter()
    exits: list[Exception] = []

    def wait_ready(pid: int) -> None:
        if pid == 1:
            raise NotReady("exited")

    pid = supervise.start_until_ready(
        start, wait_ready, runs=lambda: False, starts=2, on_exit=exits.append
    )
    assert (pid, start.pids, [str(exc) for exc in exits]) == (2, [1, 2], ["exited"])


def test_a_process_that_runs_but_is_not_ready_is_not_started_again() -> None:
    start = Starter()

    def wait_ready(pid: int) -> None:
        raise NotReady("no answer")

    with pytest.raises(NotReady, match="no answer"):
        supervise.start_until_ready(start, wait_ready, runs=lambda: True, starts=2)
    assert start.pids == [1]


def test_the_last_start_s_error_is_raised_when_every_start_exits() -> None:
    start = Starter()

    def wait_ready(pid: int) -> None:
        raise NotReady(f"start {pid} exited")

    with pytest.raises(NotReady, match="start 2 exited"):
        supervise.start_until_ready(start, wait_ready, runs=lambda: False, starts=2)
    assert start.pids == [1, 2]


def test_a_process_s_cpu_time_is_read_from_proc_and_grows_with_its_work() -> None:
    before = proc_stat(os.getpid())
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass
    after = proc_stat(os.getpid())
    assert before is not None and after is not None
    # Clock ticks are 10 ms: 0.3 s of work shows as at least 0.2 s.
    assert after.cpu_seconds - before.cpu_seconds >= 0.2
    assert after.cpu_seconds <= time.process_time() + 0.05


def test_remaining_rescans_only_when_the_processes_it_saw_are_gone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = subprocess.Popen(["sleep", "30"])
    second = subprocess.Popen(["sleep", "30"])
    group = [first.pid]
    scans = []

    def scan() -> list[int]:
        scans.append(list(group))
        return [pid for pid in group if (stat := proc_stat(pid)) is not None and stat.alive]

    try:
        left = supervise.Remaining(scan)
        assert left() == [first.pid] and len(scans) == 1
        group.append(second.pid)  # joins while the first still runs: not looked for yet
        assert left() == [first.pid] and len(scans) == 1
        first.kill()
        first.wait()
        # The one it saw is gone: a full scan, which finds the newcomer.
        assert left() == [second.pid] and len(scans) == 2
        second.kill()
        second.wait()
        assert left() == [] and len(scans) == 3
        assert left() == [] and len(scans) == 4  # "none left" is always a fresh scan
        # And a scan at least every RESCAN_SECONDS while the ones it saw run on.
        third = subprocess.Popen(["sleep", "30"])
        group.append(third.pid)
        try:
            assert left() == [third.pid] and len(scans) == 5
            assert left() == [third.pid] and len(scans) == 5
            monkeypatch.setattr(supervise.Remaining, "RESCAN_SECONDS", 0.0)
            assert left() == [third.pid] and len(scans) == 6
        finally:
            third.kill()
            third.wait()
    finally:
        for process in (first, second):
            process.kill()
            process.wait()
