"""The index of known ledgers and the guardian's pass over it, without servers or watchdogs
(the guardian starting real watchdogs is tests/sandbox/test_safety_net.py)."""

from pathlib import Path

import pytest

from chaosregistry.faults.guardian import Guardian, watched_ledgers
from chaosregistry.faults.ledger import Ledger, RevertReason
from chaosregistry.faults.watchdog import (
    forget_ledger,
    known_ledgers,
    known_ledgers_dir,
    register_ledger,
)

UNDO = {"kind": "toxiproxy.toxic", "params": {}}


def test_a_ledger_is_indexed_once_and_forgotten(tmp_path: Path) -> None:
    index = tmp_path / "index"
    first, second = tmp_path / "a" / "ledger", tmp_path / "b" / "ledger"
    for ledger_dir in (first, second, first):
        register_ledger(ledger_dir, index)
    assert sorted(known_ledgers(index)) == sorted([first, second])
    assert len(list(index.iterdir())) == 2
    assert (index.stat().st_mode & 0o777) == 0o700
    forget_ledger(first, index)
    assert known_ledgers(index) == [second]
    assert known_ledgers(tmp_path / "no-index") == []


def test_the_index_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAOSREGISTRY_LEDGER_INDEX", str(tmp_path / "x"))
    assert known_ledgers_dir() == tmp_path / "x"
    monkeypatch.delenv("CHAOSREGISTRY_LEDGER_INDEX")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert known_ledgers_dir() == tmp_path / "state" / "chaostoolkit-registry" / "ledgers.d"


def test_unreadable_index_files_are_skipped(tmp_path: Path) -> None:
    index = tmp_path / "index"
    register_ledger(tmp_path / "ledger", index)
    (index / "junk.ledger").write_text("relative/path\n")
    (index / "other.txt").write_text("/not/a/ledger/file\n")
    assert known_ledgers(index) == [tmp_path / "ledger"]


def test_a_pass_drops_ledgers_whose_directory_is_gone_and_starts_nothing_for_quiet_ones(
    tmp_path: Path,
) -> None:
    index = tmp_path / "index"
    gone, quiet = tmp_path / "gone", tmp_path / "quiet"
    register_ledger(gone, index)
    register_ledger(quiet, index)
    ledger = Ledger(quiet)
    entry = ledger.record("network.latency", "hop:x", {}, UNDO, 10, owner_pid=None)
    ledger.mark_reverted(entry.id, RevertReason.MANUAL)
    guardian = Guardian(index)
    assert guardian.tick() == []
    assert known_ledgers(index) == [quiet]
    assert watched_ledgers(index) == []


def test_status_lists_active_faults_with_no_watchdog(tmp_path: Path) -> None:
    index = tmp_path / "index"
    ledger_dir = tmp_path / "ledger"
    register_ledger(ledger_dir, index)
    ledger = Ledger(ledger_dir)
    ledger.record("network.latency", "hop:x", {}, UNDO, 0.001, owner_pid=None)
    ledger.record("network.latency", "hop:y", {}, UNDO, 600, owner_pid=None)
    assert watched_ledgers(index) == [
        {"ledger": str(ledger_dir), "active": 2, "expired": 1, "watchdog": None}
    ]
