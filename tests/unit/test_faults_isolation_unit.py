"""Runs kept apart on one ledger, and expiry that survives wall-clock steps: the ledger and
lifecycle rules without servers (the same with the real ``chaos run`` and Toxiproxy is
tests/sandbox/test_run_isolation.py; the real watchdog daemon across a step,
tests/sandbox/test_faults_watchdog.py).

The clocks are injected (``Ledger(clock=...)``): a step of the wall clock is a step of the fake
clock's wall reading, never of the machine's clock.
"""

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from chaosregistry.actions.network import remove_network_faults
from chaosregistry.faults import Clock, FaultConflict, FaultState, Ledger, RevertReason, revert_all
from chaosregistry.faults.cli import rollback_command
from chaosregistry.faults.conflicts import Scope, held_by, scope_of
from chaosregistry.faults.ledger import RUN_ID_ENV, Entry
from chaosregistry.faults.undo import undo_handler
from chaosregistry.faults.watchdog_daemon import Watchdog
from chaosregistry.gameday import runner as gameday

UNDO_KIND = "test.isolation-undo"
undone: list[str] = []


@undo_handler(UNDO_KIND)
def _record_undo(params: Mapping[str, Any]) -> None:
    undone.append(str(params["name"]))


def undo(name: str) -> dict[str, Any]:
    return {"kind": UNDO_KIND, "params": {"name": name}}


@pytest.fixture(autouse=True)
def _no_undone() -> None:
    undone.clear()


@dataclass
class FakeClock:
    """A wall clock that can be stepped apart from the boot clock, and a boot that can change."""

    wall_offset: float = 0.0
    elapsed: float = 0.0
    boot: str = "boot-one"
    clock: Clock = field(init=False)

    def __post_init__(self) -> None:
        self.clock = Clock(
            wall=lambda: 1_800_000_000.0 + self.elapsed + self.wall_offset,
            boot_clock=lambda: 500.0 + self.elapsed,
            boot=lambda: self.boot,
        )

    def advance(self, seconds: float) -> None:
        """Time passes: both clocks move."""
        self.elapsed += seconds

    def step_wall(self, seconds: float) -> None:
        """NTP (or an operator) steps the wall clock; the boot clock does not move."""
        self.wall_offset += seconds


def record(
    ledger: Ledger,
    run: str,
    kind: str = "network.latency",
    target: str = "hop:client-registry",
    *,
    duration: float = 60.0,
    place: str = "",
) -> Entry:
    return ledger.record(
        kind, target, {}, undo(f"{run}:{kind}"), duration, owner_pid=None, run=run, place=place
    )


# -- a run reverts only its own faults ----------------------------------------------------------
def test_the_end_of_a_game_day_reverts_only_its_own_faults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gameday, "WATCHDOG_GRACE_SECONDS", 0.05)
    ledger = Ledger(tmp_path)
    other = record(ledger, "run-a")
    mine = record(ledger, "run-b", "network.bandwidth")

    summary, notes, left_behind = gameday._settle_faults(ledger, "run-b")

    assert undone == ["run-b:network.bandwidth"]
    assert ledger.get(mine.id).state is FaultState.REVERTED
    assert ledger.get(other.id).state is FaultState.PENDING
    assert left_behind is True
    assert [fault["id"] for fault in summary] == [mine.id]
    assert notes[0] == "1 fault(s) still active after the run: reverting them now"


def test_the_left_behind_check_finds_a_fault_written_after_the_wall_clock_stepped_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gameday, "WATCHDOG_GRACE_SECONDS", 0.05)
    fake = FakeClock()
    fake.step_wall(-3600)  # the game day started, then the clock went back an hour
    entry = record(Ledger(tmp_path, clock=fake.clock), "run-b")

    summary, _, left_behind = gameday._settle_faults(Ledger(tmp_path), "run-b")

    assert left_behind is True
    assert [fault["id"] for fault in summary] == [entry.id]
    assert undone == ["run-b:network.latency"]


def test_revert_all_of_one_run_leaves_the_other_runs_faults(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    first, second = record(ledger, "run-a"), record(ledger, "run-b", "node.kill", "node:r1")
    third = record(ledger, "run-b", "network.bandwidth")

    results = revert_all(ledger, RevertReason.MANUAL, run="run-b")

    assert [result.entry.id for result in results] == [third.id, second.id]
    assert [entry.id for entry in ledger.active()] == [first.id]
    # Without a run, the operator's meaning: everything.
    assert [result.entry.id for result in revert_all(ledger, "manual")] == [first.id]


def test_remove_network_faults_reverts_the_calling_runs_faults_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = Ledger(tmp_path)
    others = record(ledger, "run-a")
    mine = record(ledger, "run-b", "network.bandwidth")
    monkeypatch.setenv(RUN_ID_ENV, "run-b")

    result = remove_network_faults(
        hop="client-registry", configuration={"ledger_dir": str(tmp_path)}
    )

    assert [fault["fault_id"] for fault in result["reverted"]] == [mine.id]
    assert ledger.get(others.id).active and not ledger.get(mine.id).active
    assert undone == ["run-b:network.bandwidth"]


def test_the_operators_rollback_reverts_the_ids_given_or_every_runs_faults(
    tmp_path: Path,
) -> None:
    ledger = Ledger(tmp_path)
    a, b = record(ledger, "run-a"), record(ledger, "run-b", "node.kill", "node:r1")
    c = record(ledger, "run-c", "certificate.expired", "tls:registry")
    args = ["--ledger-dir", str(tmp_path)]

    unknown = CliRunner().invoke(rollback_command, [*args, b.id, "feedfacecafe"])
    assert unknown.exit_code != 0
    assert unknown.output.strip().splitlines() == [f"Error: no fault 'feedfacecafe' in {tmp_path}"]
    assert len(ledger.active()) == 3  # nothing reverted for a bad id

    by_id = CliRunner().invoke(rollback_command, [*args, b.id])
    assert by_id.exit_code == 0, by_id.output
    assert by_id.output == f"reverted {b.id} node.kill on node:r1\n"
    assert [entry.id for entry in ledger.active()] == [a.id, c.id]

    everything = CliRunner().invoke(rollback_command, args)
    assert everything.exit_code == 0, everything.output
    assert ledger.active() == []
    assert undone == ["run-b:node.kill", "run-c:certificate.expired", "run-a:network.latency"]


def test_a_plain_chaos_run_is_its_owner_process(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    entry = ledger.record("network.latency", "hop:x", {}, undo("x"), 10, owner_pid=os.getpid())
    assert entry.owner is not None
    assert entry.run == entry.run_id == f"pid-{os.getpid()}-{entry.owner.start_time}"


# -- a conflicting fault of another run is refused ----------------------------------------------
def test_a_fault_another_run_holds_is_refused_in_one_line_naming_the_holder(
    tmp_path: Path,
) -> None:
    fake = FakeClock()
    ledger = Ledger(tmp_path, clock=fake.clock)
    holder = record(ledger, "run-a", duration=60)
    fake.advance(20)
    before = sorted(path.name for path in tmp_path.glob("*.json"))

    with pytest.raises(FaultConflict) as refused:
        record(ledger, "run-b")

    message = str(refused.value)
    assert message.splitlines() == [message]
    assert message == (
        "network.latency on hop:client-registry refused: run run-a (no owner process) holds it "
        f"with fault {holder.id} (network.latency on hop:client-registry, pending, "
        "expires in 40.0s)"
    )
    assert sorted(path.name for path in tmp_path.glob("*.json")) == before


def test_an_expired_holder_not_yet_reverted_still_holds_its_target(tmp_path: Path) -> None:
    fake = FakeClock()
    ledger = Ledger(tmp_path, clock=fake.clock)
    record(ledger, "run-a", "node.kill", "node:registry-1", duration=5)
    fake.advance(6)
    with pytest.raises(FaultConflict, match=r"expired, being reverted\)$"):
        record(ledger, "run-b", "node.kill", "node:registry-1")


@pytest.mark.parametrize(
    ("held", "asked", "conflict"),
    [
        (("network.latency", "hop:h"), ("network.latency", "hop:h"), True),
        (("network.partition", "hop:h"), ("network.partition", "hop:h"), True),
        (("network.latency", "hop:h"), ("network.bandwidth", "hop:h"), False),
        (("network.latency", "hop:h"), ("network.latency", "hop:other"), False),
        (("node.kill", "node:r1"), ("node.kill", "node:r1"), True),
        (("node.kill", "node:r1"), ("node.kill", "node:r2"), False),
        (("certificate.expired", "tls:registry"), ("certificate.untrusted", "tls:registry"), True),
        (("signature.tamper", "image:a/b:1"), ("signature.delete", "image:a/b:1"), True),
        (("deploy.bad-tag", "deployment:ns/app"), ("deploy.bad-tag", "deployment:ns/app"), True),
        (("load.locust", "load:registry"), ("load.locust", "load:registry"), False),
    ],
)
def test_what_conflicts_between_runs(
    tmp_path: Path, held: tuple[str, str], asked: tuple[str, str], conflict: bool
) -> None:
    ledger = Ledger(tmp_path)
    record(ledger, "run-a", *held)
    if conflict:
        with pytest.raises(FaultConflict):
            record(ledger, "run-b", *asked)
        # The same run may stack what it likes.
        record(ledger, "run-a", *asked)
    else:
        record(ledger, "run-b", *asked)


def test_the_same_hop_of_another_system_or_a_reverted_fault_holds_nothing(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    first = record(ledger, "run-a", place="local:/sandbox-one")
    record(ledger, "run-b", place="local:/sandbox-two")
    with pytest.raises(FaultConflict):
        record(ledger, "run-b", place="local:/sandbox-one")
    ledger.mark_reverted(first.id, RevertReason.ROLLBACK)
    record(ledger, "run-b", place="local:/sandbox-one")


def test_each_family_declares_what_it_holds_once() -> None:
    assert scope_of("network.latency") is Scope.KIND
    assert scope_of("load.locust") is Scope.NOTHING
    assert scope_of("node.kill") is scope_of("a.family.nobody.declared") is Scope.TARGET
    assert held_by("load.locust", "load:x") is None
    assert held_by("network.reset", "hop:h", "p") == "p network.reset on hop:h"
    assert held_by("node.kill", "node:r1") == "node:r1"


# -- expiry across clock steps ---------------------------------------------------------------
def test_a_wall_clock_step_forward_does_not_expire_a_fault(tmp_path: Path) -> None:
    fake = FakeClock()
    ledger = Ledger(tmp_path, clock=fake.clock)
    entry = record(ledger, "run-a", duration=60)
    fake.advance(10)
    fake.step_wall(+3600)
    assert not entry.expired(ledger.now())
    assert entry.remaining(ledger.now()) == pytest.approx(50)
    fake.advance(50)
    assert entry.expired(ledger.now())


def test_a_wall_clock_step_back_does_not_keep_a_fault_past_its_time(tmp_path: Path) -> None:
    fake = FakeClock()
    ledger = Ledger(tmp_path, clock=fake.clock)
    entry = record(ledger, "run-a", duration=60)
    fake.step_wall(-3600)
    fake.advance(59.5)
    assert not entry.expired(ledger.now())
    fake.advance(0.5)
    assert entry.expired(ledger.now())


def test_after_a_reboot_the_wall_clock_decides(tmp_path: Path) -> None:
    fake = FakeClock()
    ledger = Ledger(tmp_path, clock=fake.clock)
    entry = record(ledger, "run-a", duration=60)
    fake.boot = "boot-two"
    fake.elapsed = -400  # the new boot's clock restarted near zero; the wall clock went on
    fake.wall_offset = 400 + 30
    assert entry.remaining(ledger.now()) == pytest.approx(30)
    fake.wall_offset += 31
    assert entry.expired(ledger.now())


def test_an_entry_written_before_deadlines_existed_loads_and_expires_by_the_wall_clock(
    tmp_path: Path,
) -> None:
    fake = FakeClock()
    ledger = Ledger(tmp_path, clock=fake.clock)
    data = record(ledger, "run-a", duration=60).to_dict()
    for new in ("run", "holds", "boot_id", "deadline"):
        del data[new]
    data["owner"] = {"pid": 4242, "start_time": 77, "boot_id": "boot-one"}
    (tmp_path / f"{data['id']}.json").write_text(json.dumps(data))

    old = ledger.get(data["id"])

    assert (old.run, old.holds, old.deadline) == (None, None, None)
    assert old.run_id == "pid-4242-77"
    fake.step_wall(+61)
    assert old.expired(ledger.now())


def test_the_watchdog_expires_by_the_boot_clock_whatever_the_wall_clock_does(
    tmp_path: Path,
) -> None:
    fake = FakeClock()
    ledger = Ledger(tmp_path, clock=fake.clock)
    ahead = record(ledger, "run-a", "network.latency", duration=60)
    behind = record(ledger, "run-b", "network.bandwidth", duration=60)
    watchdog = Watchdog(ledger, lock_fd=-1)

    fake.step_wall(+7200)  # a step forward: the old rule expired both at once
    watchdog.tick()
    assert {entry.id for entry in ledger.active()} == {ahead.id, behind.id}

    fake.step_wall(-2 * 7200)  # then back, far behind both expires_at
    fake.advance(60)
    watchdog.tick()
    assert ledger.active() == []
    assert {ledger.get(e.id).revert_reason for e in (ahead, behind)} == {RevertReason.EXPIRED}


# -- ended entries are kept for RETENTION_SECONDS, then removed by the next record ---------------
def test_record_removes_entries_ended_past_the_retention_and_keeps_the_rest(
    tmp_path: Path,
) -> None:
    from chaosregistry.faults.ledger import RETENTION_SECONDS

    fake = FakeClock()
    ledger = Ledger(tmp_path, clock=fake.clock)
    old_reverted = record(ledger, "run-a")
    ledger.mark_reverted(old_reverted.id, RevertReason.ROLLBACK)
    old_failed = record(ledger, "run-a", "node.kill", "node:r1")
    ledger.mark_failed(old_failed.id, "could not apply")
    # Still active however old it is: the watchdog keeps trying to undo it.
    stuck = record(ledger, "run-a", "network.bandwidth", "hop:client-mirror")
    ledger.mark_revert_failed(stuck.id, RevertReason.EXPIRED, "nginx down")
    fake.advance(RETENTION_SECONDS - 3600)
    recent = record(ledger, "run-b", "network.partition", "hop:mirror-upstream")
    ledger.mark_reverted(recent.id, RevertReason.ROLLBACK)
    (tmp_path / "corrupt.json").write_text("{not json")
    fake.advance(2 * 3600)
    assert ledger.lock_path(old_reverted.id).exists() and ledger.lock_path(old_failed.id).exists()

    newest = record(ledger, "run-c", "network.reset", "hop:sync-dr")

    kept = {entry.id for entry in ledger.all()}
    assert kept == {stuck.id, recent.id, newest.id}
    for gone in (old_reverted, old_failed):
        assert not ledger.entry_path(gone.id).exists()
        assert not ledger.lock_path(gone.id).exists()
    assert (tmp_path / "corrupt.json").exists()  # unreadable: for an operator to look at
    assert ledger.prune() == []  # nothing else is due


def test_an_entry_ends_when_reverted_or_when_its_injection_failed(tmp_path: Path) -> None:
    fake = FakeClock()
    ledger = Ledger(tmp_path, clock=fake.clock)
    entry = record(ledger, "run-a")
    assert ledger.get(entry.id).ended_at is None
    fake.advance(30)
    reverted = ledger.mark_reverted(entry.id, RevertReason.ROLLBACK)
    assert reverted.ended_at == reverted.reverted_at == entry.created_at + 30
    failed = ledger.mark_failed(record(ledger, "run-a", "node.kill", "node:r1").id, "refused")
    assert failed.ended_at == failed.created_at
