"""``faults`` and ``rollback`` through click's CliRunner, against a real Toxiproxy."""

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.faults import (
    SETTLES_WITHIN,
    Proxy,
    ToxiproxyServer,
    entry_files,
    make_proxy,
    wait_until,
)

from chaosregistry.faults import Entry, FaultState, Ledger, inject, revert
from chaosregistry.faults.cli import faults_command, rollback_command
from chaosregistry.faults.toxiproxy_undo import toxic_undo
from chaosregistry.faults.watchdog_daemon import MAX_BACKOFF
from chaosregistry.sandbox.toxiproxy import Toxiproxy

# The real Toxiproxy, echo server, proxy and ledger fixtures (faults_*).
pytest_plugins = ["support.faults"]


def inject_toxic(
    ledger: Ledger, faults_proxy: Proxy, toxic: str, owner_pid: int | None = None
) -> Entry:
    def apply() -> dict[str, object]:
        with Toxiproxy(faults_proxy.api_url) as client:
            return client.add_toxic(
                faults_proxy.name, name=toxic, type="latency", attributes={"latency": 100}
            )

    return inject(
        ledger,
        kind="network.latency",
        target=f"hop:{faults_proxy.name}",
        parameters={"latency_ms": 100},
        duration=60,
        apply=apply,
        undo=toxic_undo(faults_proxy.api_url, faults_proxy.name, toxic),
        owner_pid=owner_pid,
    )


def test_rollback_reverts_everything_active_and_is_idempotent(
    faults_ledger_dir: Path, faults_proxy: Proxy
) -> None:
    ledger = Ledger(faults_ledger_dir)
    first = inject_toxic(ledger, faults_proxy, "one")
    second = inject_toxic(ledger, faults_proxy, "two")
    assert sorted(faults_proxy.toxic_names()) == ["one", "two"]

    result = CliRunner().invoke(rollback_command, ["--ledger-dir", str(faults_ledger_dir)])

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"reverted {second.id} network.latency on hop:{faults_proxy.name}",
        f"reverted {first.id} network.latency on hop:{faults_proxy.name}",
    ]
    assert faults_proxy.toxic_names() == []
    assert {e["state"] for e in entry_files(faults_ledger_dir)} == {"reverted"}
    assert {e["revert_reason"] for e in entry_files(faults_ledger_dir)} == {"manual"}

    again = CliRunner().invoke(rollback_command, ["--ledger-dir", str(faults_ledger_dir)])

    assert again.exit_code == 0
    assert again.output == f"nothing to roll back in {faults_ledger_dir}\n"


def test_rollback_uses_the_ledger_dir_from_the_environment(
    faults_ledger_dir: Path, faults_proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    inject_toxic(Ledger(faults_ledger_dir), faults_proxy, "one")
    monkeypatch.setenv("CHAOSREGISTRY_LEDGER_DIR", str(faults_ledger_dir))

    result = CliRunner().invoke(rollback_command, [])

    assert result.exit_code == 0 and result.output.startswith("reverted ")
    assert faults_proxy.toxic_names() == []


def test_rollback_fails_in_one_line_when_a_revert_fails(faults_ledger_dir: Path) -> None:
    flaky = ToxiproxyServer()
    flaky.start()
    try:
        flaky_proxy = make_proxy(flaky.api_url, "127.0.0.1:9")
        entry = inject_toxic(Ledger(faults_ledger_dir), flaky_proxy, "one")
        flaky.stop()

        result = CliRunner().invoke(rollback_command, ["--ledger-dir", str(faults_ledger_dir)])

        assert result.exit_code == 1
        lines = result.output.splitlines()
        assert lines[0].startswith(f"FAILED {entry.id} network.latency")
        assert "unreachable" in lines[0]
        assert lines[1] == (
            "Error: 1 of 1 fault(s) could not be reverted; the watchdog keeps retrying them"
        )
        assert "Traceback" not in result.output
        assert Ledger(faults_ledger_dir).get(entry.id).state is FaultState.REVERT_FAILED
        flaky.start()  # a restarted Toxiproxy holds no toxics: the watchdog's retry verifies
        wait_until(
            lambda: Ledger(faults_ledger_dir).get(entry.id).state is FaultState.REVERTED,
            timeout=MAX_BACKOFF + SETTLES_WITHIN,  # its next retry, at most the longest back-off
        )
    finally:
        flaky.stop()


def test_faults_lists_active_faults_as_a_table(
    faults_ledger_dir: Path, faults_proxy: Proxy
) -> None:
    ledger = Ledger(faults_ledger_dir)
    done = inject_toxic(ledger, faults_proxy, "done", owner_pid=os.getpid())
    revert(ledger, done.id, "rollback")
    live = inject_toxic(ledger, faults_proxy, "live", owner_pid=os.getpid())
    args = ["--ledger-dir", str(faults_ledger_dir)]

    table = CliRunner().invoke(faults_command, args)
    everything = CliRunner().invoke(faults_command, [*args, "--all"])
    as_json = CliRunner().invoke(faults_command, [*args, "--json"])

    header, *rows = table.output.splitlines()
    assert header.split() == ["ID", "KIND", "TARGET", "STATE", "EXPIRES", "IN", "RUN"]
    assert len(rows) == 1
    cells = rows[0].split()
    assert cells[:4] == [live.id, "network.latency", f"hop:{faults_proxy.name}", "injected"]
    assert 55 < float(cells[4].rstrip("s")) <= 60
    assert cells[5] == live.run_id == f"pid-{os.getpid()}-{live.owner.start_time}"
    assert {line.split()[0] for line in everything.output.splitlines()[1:]} == {done.id, live.id}
    assert f"{done.id}  network.latency  hop:{faults_proxy.name}  reverted" in everything.output
    assert [e["id"] for e in json.loads(as_json.output)] == [live.id]
    revert(ledger, live.id, "rollback")


def test_faults_on_an_empty_or_missing_ledger(tmp_path: Path) -> None:
    result = CliRunner().invoke(faults_command, ["--ledger-dir", str(tmp_path / "none")])
    assert result.exit_code == 0
    assert result.output == f"no active faults in {tmp_path / 'none'}\n"
    assert not (tmp_path / "none").exists()


def test_faults_errors_are_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = CliRunner().invoke(rollback_command, ["--ledger-dir", str(blocker / "ledger")])
    # A path below a regular file cannot be a ledger: the listing finds nothing to revert.
    assert result.exit_code == 0 and "nothing to roll back" in result.output
