"""``process.terminate``: ending a real process group safely (the undo of a pull load)."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaosregistry.faults.undo import run_undo
from chaosregistry.loadgen.processes import (
    GroupIdentity,
    terminate_group,
    terminate_undo,
)
from chaosregistry.osutil.identity import group_members

# A group leader that forks two children; "stubborn" makes all three ignore SIGTERM.
GROUP_SCRIPT = """
import os, signal, sys, time
stubborn = sys.argv[1] == "stubborn"
if stubborn:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
for _ in range(2):
    if os.fork() == 0:
        time.sleep(600)
        os._exit(0)
print("ready", flush=True)
time.sleep(600)
"""


@pytest.fixture
def spawned() -> Iterator[list[subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        # The whole group (each leader has its own session): a test that leaves a group
        # running would otherwise orphan its forked members for their 600 s sleep. Safe before
        # wait(): an unreaped leader's pid (= the group id) cannot have been reused.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def spawn_group(
    processes: list[subprocess.Popen[bytes]], mode: str = "polite", *extra: str
) -> GroupIdentity:
    process = subprocess.Popen(
        [sys.executable, "-c", GROUP_SCRIPT, mode, *extra],
        start_new_session=True,
        stdout=subprocess.PIPE,
    )
    processes.append(process)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == b"ready"
    identity = GroupIdentity.of(process.pid)
    assert identity.pgid == process.pid
    assert len(group_members(identity.pgid)) == 3
    return identity


def test_terminate_ends_every_process_of_the_group(
    spawned: list[subprocess.Popen[bytes]],
) -> None:
    identity = spawn_group(spawned)
    started = time.monotonic()
    terminate_group(identity, grace=30.0)
    # SIGTERM was enough: it did not wait out the grace (with room for a loaded machine).
    assert time.monotonic() - started < 15.0
    assert group_members(identity.pgid) == []
    assert identity.members() == []


def test_processes_ignoring_sigterm_are_killed_after_the_grace(
    spawned: list[subprocess.Popen[bytes]],
) -> None:
    identity = spawn_group(spawned, "stubborn")
    started = time.monotonic()
    terminate_group(identity, grace=0.5)
    assert time.monotonic() - started >= 0.5
    assert group_members(identity.pgid) == []


def test_terminating_a_group_that_is_gone_succeeds(
    spawned: list[subprocess.Popen[bytes]],
) -> None:
    identity = spawn_group(spawned)
    terminate_group(identity, grace=5.0)
    terminate_group(identity, grace=5.0)
    assert group_members(identity.pgid) == []


def test_a_leader_pid_with_another_start_time_is_not_ours_and_is_left_alone(
    spawned: list[subprocess.Popen[bytes]],
) -> None:
    identity = spawn_group(spawned)
    reused = GroupIdentity(identity.pid, identity.start_time + 1, identity.pgid, identity.boot_id)
    assert reused.members() == []
    terminate_group(reused, grace=0.5)
    assert len(group_members(identity.pgid)) == 3
    assert spawned[0].poll() is None


def test_marked_processes_that_left_the_group_are_stopped_too(
    spawned: list[subprocess.Popen[bytes]],
) -> None:
    marker = f"chaosregistry-load:test-{time.time_ns()}"
    identity = spawn_group(spawned, "polite", marker)
    escaped = spawn_group(spawned, "polite", marker)  # its own session: not in the group
    terminate_group(identity, grace=5.0, marker=marker)
    assert group_members(identity.pgid) == []
    assert group_members(escaped.pgid) == []


def test_the_undo_spec_from_the_ledger_ends_the_group_and_removes_private_files(
    spawned: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    identity = spawn_group(spawned)
    private = tmp_path / "credentials"
    private.mkdir()
    (private / "credentials.json").write_text("{}")
    run_undo(terminate_undo(identity, grace=5.0, remove=[str(private)]))
    assert group_members(identity.pgid) == []
    assert not private.exists()


def supervisor(stats_dir: Path, command: list[str]) -> tuple[subprocess.Popen[bytes], int]:
    """A load supervisor for ``command`` that waits for "go" on the returned pipe end."""
    stats_dir.mkdir()
    spec = {"load_id": "test", "duration": 30, "command": command, "tag": "t"}
    (stats_dir / "load.json").write_text(json.dumps(spec))
    go_read, go_write = os.pipe()
    ready_read, ready_write = os.pipe()
    process = subprocess.Popen(
        [sys.executable, "-m", "chaosregistry.loadgen.supervisor", "supervise", str(stats_dir),
         "--go-fd", str(go_read), "--ready-fd", str(ready_write), "t"],
        pass_fds=(go_read, ready_write),
        start_new_session=True,
    )  # fmt: skip
    os.close(go_read)
    os.close(ready_write)
    os.close(ready_read)
    return process, go_write


def test_a_supervisor_whose_starter_dies_before_go_starts_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    process, go = supervisor(
        tmp_path / "load", [sys.executable, "-c", f"open({str(marker)!r}, 'w')"]
    )
    os.close(go)  # what the kernel does when the chaos process dies before saying "go"
    assert process.wait(timeout=10) == 0
    status = json.loads((tmp_path / "load" / "status.json").read_text())
    assert status["state"] == "cancelled"
    assert not marker.exists()


def test_a_supervisor_runs_its_command_after_go_and_records_how_it_ended(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    process, go = supervisor(
        tmp_path / "load", [sys.executable, "-c", f"open({str(marker)!r}, 'w')"]
    )
    os.write(go, b"go\n")
    os.close(go)
    assert process.wait(timeout=20) == 0
    status = json.loads((tmp_path / "load" / "status.json").read_text())
    assert status["state"] == "finished" and status["exit_code"] == 0
    assert marker.exists()
    assert (tmp_path / "load" / "timeseries.json").is_file()
