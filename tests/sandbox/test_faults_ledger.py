"""The fault ledger and the inject/revert lifecycle, against a real Toxiproxy server."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.faults import (
    SETTLES_WITHIN,
    Proxy,
    entry_files,
    wait_until,
)

from chaosregistry.errors import ConfigError
from chaosregistry.experiment.settings import parse_settings
from chaosregistry.faults import (
    FaultCancelled,
    FaultState,
    Ledger,
    LedgerError,
    RevertError,
    RevertReason,
    UndoError,
    inject,
    resolve_ledger_dir,
    revert,
    revert_all,
    undo,
)
from chaosregistry.faults.ledger import CorruptEntryError
from chaosregistry.faults.toxiproxy_undo import enable_undo, toxic_undo
from chaosregistry.faults.watchdog import watchdog_pid
from chaosregistry.faults.watchdog_daemon import MAX_BACKOFF
from chaosregistry.sandbox.toxiproxy import Toxiproxy

LATENCY_MS = 300

# The real Toxiproxy, echo server, proxy and ledger fixtures (faults_*).
pytest_plugins = ["support.faults"]


def add_latency(faults_proxy: Proxy, toxic: str) -> dict[str, Any]:
    with Toxiproxy(faults_proxy.api_url) as client:
        return client.add_toxic(
            faults_proxy.name, name=toxic, type="latency", attributes={"latency": LATENCY_MS}
        )


def inject_latency(
    ledger: Ledger,
    faults_proxy: Proxy,
    *,
    toxic: str = "latency",
    duration: float = 60.0,
    **kw: Any,
) -> Any:
    return inject(
        ledger,
        kind="network.latency",
        target=f"hop:{faults_proxy.name}",
        parameters={"latency_ms": LATENCY_MS},
        duration=duration,
        apply=kw.pop("apply", lambda: add_latency(faults_proxy, toxic)),
        undo=toxic_undo(faults_proxy.api_url, faults_proxy.name, toxic),
        owner_pid=kw.pop("owner_pid", os.getpid()),
    )


def test_entry_is_durable_and_watched_before_apply_runs(
    faults_ledger_dir: Path, faults_proxy: Proxy
) -> None:
    seen: dict[str, Any] = {}

    def apply() -> dict[str, Any]:
        # Read the directory directly, as a fresh process would after a crash at this point.
        seen["files"] = entry_files(faults_ledger_dir)
        seen["watchdog"] = watchdog_pid(faults_ledger_dir)
        return add_latency(faults_proxy, "latency")

    entry = inject_latency(Ledger(faults_ledger_dir), faults_proxy, apply=apply)

    [stored] = seen["files"]
    assert stored["id"] == entry.id
    assert stored["state"] == "pending"
    assert stored["undo"] == toxic_undo(faults_proxy.api_url, faults_proxy.name, "latency")
    assert stored["expires_at"] == pytest.approx(stored["created_at"] + 60.0)
    assert stored["owner"]["pid"] == os.getpid()
    assert seen["watchdog"] is not None
    assert faults_proxy.toxic_names() == ["latency"]
    assert entry.state is FaultState.INJECTED
    assert entry.applied is not None and entry.applied["name"] == "latency"
    revert(Ledger(faults_ledger_dir), entry.id, RevertReason.ROLLBACK)


@pytest.mark.parametrize("duration", [None, 0, -5, math.nan, math.inf, True, "60"])
def test_fault_without_a_positive_duration_is_refused_before_anything_happens(
    tmp_path: Path, faults_proxy: Proxy, duration: Any
) -> None:
    applied: list[bool] = []
    faults_ledger_dir = tmp_path / "ledger"

    with pytest.raises(ConfigError, match="positive duration"):
        inject_latency(
            Ledger(faults_ledger_dir),
            faults_proxy,
            duration=duration,
            apply=lambda: applied.append(True),
        )

    assert applied == []
    assert not faults_ledger_dir.exists()
    assert watchdog_pid(faults_ledger_dir) is None
    assert faults_proxy.toxic_names() == []


def test_record_refuses_missing_duration_directly(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="positive duration"):
        Ledger(tmp_path).record(
            "network.latency", "hop:x", {}, toxic_undo("u", "p", "t"), 0, owner_pid=None
        )
    assert list(tmp_path.iterdir()) == []


def test_fault_expired_before_it_could_be_applied_is_not_applied(
    faults_ledger_dir: Path, faults_proxy: Proxy
) -> None:
    applied: list[bool] = []

    with pytest.raises(FaultCancelled, match="before it could be injected"):
        inject_latency(
            Ledger(faults_ledger_dir),
            faults_proxy,
            duration=1e-9,
            apply=lambda: applied.append(True) or {},
        )

    assert applied == []
    [stored] = entry_files(faults_ledger_dir)
    # Whoever saw the expiry first, inject or the watchdog, ended it without applying it.
    assert stored["state"] in ("failed-to-inject", "reverted")
    assert stored["applied"] is None
    assert faults_proxy.toxic_names() == []


def test_unknown_undo_handler_is_refused_before_anything_happens(
    tmp_path: Path, faults_proxy: Proxy
) -> None:
    applied: list[bool] = []
    with pytest.raises(UndoError, match="no undo handler named 'nope'"):
        inject(
            Ledger(tmp_path / "ledger"),
            kind="network.latency",
            target="hop:x",
            parameters={},
            duration=10,
            apply=lambda: applied.append(True) or {},
            undo={"kind": "nope", "params": {}},
            owner_pid=None,
        )
    assert applied == []
    assert not (tmp_path / "ledger").exists()


def test_undo_handler_the_watchdog_could_not_import_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(undo, "_handlers", dict(undo._handlers))
    # Registered here, in a test module: a fresh process would never find it.
    undo.undo_handler("test.unreachable")(lambda params: None)
    applied: list[bool] = []

    with pytest.raises(UndoError, match="watchdog cannot import: add the module to"):
        inject(
            Ledger(tmp_path / "ledger"),
            kind="k",
            target="t",
            parameters={},
            duration=10,
            apply=lambda: applied.append(True) or {},
            undo={"kind": "test.unreachable", "params": {}},
            owner_pid=None,
        )
    assert applied == []
    assert not (tmp_path / "ledger").exists()


def test_handler_module_recorded_with_the_fault_is_imported_when_not_listed(
    faults_ledger_dir: Path, faults_proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = inject_latency(Ledger(faults_ledger_dir), faults_proxy)
    assert entry.undo_module == "chaosregistry.faults.toxiproxy_undo"
    # A process that has imported no handler module and whose UNDO_MODULES does not list it.
    monkeypatch.setattr(undo, "UNDO_MODULES", ())
    monkeypatch.setattr(undo, "_loaded", False)
    monkeypatch.setattr(undo, "_handlers", {})
    monkeypatch.delitem(sys.modules, "chaosregistry.faults.toxiproxy_undo")
    with pytest.raises(UndoError, match=r"no undo handler named 'toxiproxy\.toxic'"):
        undo.get_handler("toxiproxy.toxic")

    assert revert(Ledger(faults_ledger_dir), entry.id, "rollback").state is FaultState.REVERTED
    assert faults_proxy.toxic_names() == []


def test_revert_removes_the_fault_verifies_and_marks_reverted(
    faults_ledger_dir: Path, faults_proxy: Proxy
) -> None:
    ledger = Ledger(faults_ledger_dir)
    entry = inject_latency(ledger, faults_proxy)
    assert faults_proxy.round_trip() >= LATENCY_MS / 1000

    reverted = revert(ledger, entry.id, RevertReason.ROLLBACK)

    assert faults_proxy.toxic_names() == []
    # The best of three (one alone could be slowed by a loaded machine).
    assert min(faults_proxy.round_trip() for _ in range(3)) < LATENCY_MS / 1000
    assert reverted.state is FaultState.REVERTED
    assert reverted.revert_reason is RevertReason.ROLLBACK
    assert reverted.reverted_at is not None and reverted.reverted_at >= entry.created_at
    [stored] = entry_files(faults_ledger_dir)
    assert stored["state"] == "reverted" and stored["revert_reason"] == "rollback"
    assert ledger.active() == []


def test_revert_twice_is_a_noop(faults_ledger_dir: Path, faults_proxy: Proxy) -> None:
    ledger = Ledger(faults_ledger_dir)
    entry = inject_latency(ledger, faults_proxy)
    first = revert(ledger, entry.id, RevertReason.ROLLBACK)
    stored = (faults_ledger_dir / f"{entry.id}.json").read_bytes()

    second = revert(ledger, entry.id, RevertReason.MANUAL)

    assert second == first
    assert (faults_ledger_dir / f"{entry.id}.json").read_bytes() == stored
    assert second.revert_attempts == 1


def test_revert_succeeds_when_the_toxic_is_already_gone(
    faults_ledger_dir: Path, faults_proxy: Proxy
) -> None:
    ledger = Ledger(faults_ledger_dir)
    entry = inject_latency(ledger, faults_proxy)
    with Toxiproxy(faults_proxy.api_url) as client:
        client.remove_toxic(faults_proxy.name, "latency")

    assert revert(ledger, entry.id, "manual").state is FaultState.REVERTED


def test_failed_apply_is_undone_and_marked_failed_to_inject(
    faults_ledger_dir: Path, faults_proxy: Proxy
) -> None:
    def apply() -> dict[str, Any]:
        add_latency(faults_proxy, "latency")
        raise RuntimeError("backend lost the answer")

    with pytest.raises(RuntimeError, match="backend lost the answer"):
        inject_latency(Ledger(faults_ledger_dir), faults_proxy, apply=apply)

    assert faults_proxy.toxic_names() == []
    [stored] = entry_files(faults_ledger_dir)
    assert stored["state"] == "failed-to-inject"
    assert stored["applied"] is None
    assert "backend lost the answer" in stored["last_error"]


def test_apply_returning_something_unstorable_is_undone(
    faults_ledger_dir: Path, faults_proxy: Proxy
) -> None:
    def apply() -> Any:
        add_latency(faults_proxy, "latency")
        return {"when": object()}

    with pytest.raises(ConfigError, match="applied cannot be stored as JSON"):
        inject_latency(Ledger(faults_ledger_dir), faults_proxy, apply=apply)
    assert faults_proxy.toxic_names() == []
    assert entry_files(faults_ledger_dir)[0]["state"] == "failed-to-inject"


def test_undo_of_a_disabled_proxy_enables_it(faults_ledger_dir: Path, faults_proxy: Proxy) -> None:
    ledger = Ledger(faults_ledger_dir)

    def apply() -> dict[str, Any]:
        with Toxiproxy(faults_proxy.api_url) as client:
            client.set_enabled(faults_proxy.name, False)
            return {"enabled": client.proxy(faults_proxy.name)["enabled"]}

    entry = inject(
        ledger,
        kind="network.partition",
        target=f"hop:{faults_proxy.name}",
        parameters={},
        duration=60,
        apply=apply,
        undo=enable_undo(faults_proxy.api_url, faults_proxy.name),
        owner_pid=os.getpid(),
    )
    assert entry.applied == {"enabled": False}

    revert(ledger, entry.id, RevertReason.ROLLBACK)

    with Toxiproxy(faults_proxy.api_url) as client:
        assert client.proxy(faults_proxy.name)["enabled"] is True
    assert faults_proxy.round_trip() < 1


def test_revert_all_reverts_newest_first_and_only_the_owners_when_asked(
    faults_ledger_dir: Path, faults_proxy: Proxy
) -> None:
    ledger = Ledger(faults_ledger_dir)
    mine = [inject_latency(ledger, faults_proxy, toxic=f"mine-{i}") for i in range(2)]
    unowned = inject_latency(ledger, faults_proxy, toxic="unowned", owner_pid=None)

    results = revert_all(ledger, RevertReason.SIGNAL, owner_pid=os.getpid())

    assert [result.entry.id for result in results] == [mine[1].id, mine[0].id]
    assert all(result.ok and result.entry.revert_reason == "signal" for result in results)
    assert faults_proxy.toxic_names() == ["unowned"]
    assert [entry.id for entry in ledger.active()] == [unowned.id]
    assert [result.entry.id for result in revert_all(ledger, "manual")] == [unowned.id]
    assert faults_proxy.toxic_names() == []


REVERT_SCRIPT = r"""
import sys
from chaosregistry.faults import Ledger, revert
print(revert(Ledger(sys.argv[1]), sys.argv[2], "manual").revert_attempts)
"""


def test_concurrent_reverts_from_several_processes_revert_once(
    faults_ledger_dir: Path, faults_proxy: Proxy
) -> None:
    entry = inject_latency(Ledger(faults_ledger_dir), faults_proxy)
    reverters = [
        subprocess.Popen(
            [sys.executable, "-c", REVERT_SCRIPT, str(faults_ledger_dir), entry.id],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [process.communicate(timeout=30)[0].strip() for process in reverters]

    assert [process.returncode for process in reverters] == [0, 0, 0, 0]
    # Each process saw the same single revert: the undo ran and the entry was marked once.
    assert outputs == ["1", "1", "1", "1"]
    assert faults_proxy.toxic_names() == []


def test_failing_undo_marks_revert_failed_and_the_watchdog_retries_it(
    faults_ledger_dir: Path,
) -> None:
    from support.faults import ToxiproxyServer, make_proxy

    # A second Toxiproxy we can stop: while it is down the undo cannot verify anything.
    flaky = ToxiproxyServer()
    flaky.start()
    try:
        flaky_proxy = make_proxy(flaky.api_url, "127.0.0.1:9")
        ledger = Ledger(faults_ledger_dir)
        entry = inject_latency(ledger, flaky_proxy, owner_pid=None)
        flaky.stop()

        with pytest.raises(RevertError, match="unreachable"):
            revert(ledger, entry.id, RevertReason.ROLLBACK)

        [stored] = entry_files(faults_ledger_dir)
        assert stored["state"] == "revert-failed"
        assert "unreachable" in stored["last_error"]
        assert [active.id for active in ledger.active()] == [entry.id]

        # Back up (empty, as a restarted Toxiproxy is): the watchdog's retry now verifies.
        flaky.start()
        wait_until(
            lambda: ledger.get(entry.id).state is FaultState.REVERTED,
            timeout=MAX_BACKOFF + SETTLES_WITHIN,  # its next retry, at most the longest back-off
            what="the watchdog to retry the failed revert",
        )
        assert ledger.get(entry.id).revert_reason is RevertReason.ROLLBACK
    finally:
        flaky.stop()


# -- the ledger on its own ----------------------------------------------------------------
def test_transitions_are_checked(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    entry = ledger.record("k", "t", {}, toxic_undo("u", "p", "x"), 10, owner_pid=None)
    ledger.mark_reverted(entry.id, "manual")

    with pytest.raises(LedgerError, match="is reverted; cannot become injected"):
        ledger.mark_injected(entry.id, {})
    with pytest.raises(LedgerError, match="cannot become revert-failed"):
        ledger.mark_revert_failed(entry.id, "manual", "boom")
    with pytest.raises(LedgerError, match="no fault 'abc' in"):
        ledger.get("abc")


def test_record_refuses_a_dead_owner_and_unstorable_parameters(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    with pytest.raises(LedgerError, match="does not exist"):
        ledger.record("k", "t", {}, toxic_undo("u", "p", "x"), 10, owner_pid=int(child.stdout))
    with pytest.raises(ConfigError, match="parameters cannot be stored as JSON"):
        ledger.record("k", "t", {"x": {1, 2}}, toxic_undo("u", "p", "x"), 10, owner_pid=None)
    with pytest.raises(ConfigError, match="undo must be"):
        ledger.record("k", "t", {}, {"kind": "x"}, 10, owner_pid=None)
    assert list(tmp_path.glob("*.json")) == []


def test_corrupt_files_are_reported_not_fatal(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    good = ledger.record("k", "t", {}, toxic_undo("u", "p", "x"), 10, owner_pid=None)
    (tmp_path / "aaaaaaaaaaaa.json").write_text('{"id": "aaaaaaaaaaaa", "kind"')
    (tmp_path / "bbbbbbbbbbbb.json").write_text("[]")
    (tmp_path / "cccccccccccc.json").write_text(json.dumps({**good.to_dict(), "state": "odd"}))

    entries, corrupt = ledger.scan()

    assert [entry.id for entry in entries] == [good.id]
    assert sorted(bad.path.name for bad in corrupt) == [
        "aaaaaaaaaaaa.json",
        "bbbbbbbbbbbb.json",
        "cccccccccccc.json",
    ]
    with pytest.raises(CorruptEntryError, match="not JSON"):
        ledger.get("aaaaaaaaaaaa")


def test_entry_round_trips_through_json(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    entry = ledger.record(
        "network.latency", "hop:a", {"ms": 5}, toxic_undo("u", "p", "x"), 10, owner_pid=os.getpid()
    )
    entry = ledger.mark_injected(entry.id, {"toxic": {"name": "x"}})
    assert ledger.get(entry.id) == entry
    assert json.loads((tmp_path / f"{entry.id}.json").read_text()) == entry.to_dict()
    assert list(tmp_path.glob(".*.tmp")) == []


def test_ledger_dir_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CHAOSREGISTRY_LEDGER_DIR", raising=False)
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    default = tmp_path / "home/.local/state/chaostoolkit-registry/ledger"
    assert resolve_ledger_dir() == default
    monkeypatch.setenv("XDG_STATE_HOME", "relative/ignored")
    assert resolve_ledger_dir() == default
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert resolve_ledger_dir() == tmp_path / "state/chaostoolkit-registry/ledger"
    monkeypatch.setenv("CHAOSREGISTRY_LEDGER_DIR", str(tmp_path / "env"))
    assert resolve_ledger_dir() == tmp_path / "env"
    assert parse_settings({"ledger_dir": str(tmp_path / "cfg")}).ledger_dir == tmp_path / "cfg"
    assert resolve_ledger_dir(tmp_path / "arg") == (tmp_path / "arg")
