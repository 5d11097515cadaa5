"""Two real ``chaos run``s on one ledger and one sandbox: neither ends the other's fault, and
the second cannot take what the first holds.

Run A (a plain ``chaos run``: its run is its process) puts latency on the client-registry hop
and holds until the test releases it. Run B (run id from ``CHAOSREGISTRY_RUN_ID``, as a game
day sets it) runs to its end meanwhile. The ledger rules behind this are unit-tested in
tests/unit/test_faults_isolation_unit.py.
"""

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.polling import eventually
from support.sandbox import SandboxInfo

from chaosregistry.faults.ledger import Entry, FaultState, Ledger
from chaosregistry.sandbox.toxiproxy import Toxiproxy

CHAOS = str(Path(sys.executable).with_name("chaos"))
RUN_ID_ENV = "CHAOSREGISTRY_RUN_ID"  # what chaosregistry gameday sets for its chaos run
HOP = "client-registry"


def network_action(name: str, func: str, **arguments: Any) -> dict[str, Any]:
    return {
        "type": "action",
        "name": name,
        "provider": {
            "type": "python",
            "module": "chaosregistry.actions.network",
            "func": func,
            "arguments": arguments,
        },
    }


def experiment(path: Path, method: list[dict[str, Any]], rollbacks: list[dict[str, Any]]) -> Path:
    path.write_text(
        json.dumps(
            {
                "version": "1.0.0",
                "title": path.stem,
                "description": "tests/sandbox/test_run_isolation.py",
                "configuration": {"backend": "local"},
                "method": method,
                "rollbacks": rollbacks,
            }
        )
    )
    return path


@dataclass
class Runs:
    sandbox: SandboxInfo
    base: Path
    ledger: Ledger

    def command(self, name: str, experiment_file: Path) -> list[str]:
        vars_file = self.base / "vars.yaml"
        vars_file.write_text("configuration:\n  backend: local\n")
        return [
            CHAOS,
            "--log-file",
            str(self.base / f"{name}.log"),
            "run",
            "--rollback-strategy",
            "always",
            "--var-file",
            str(vars_file),
            "--journal-path",
            str(self.base / f"{name}.json"),
            str(experiment_file),
        ]

    def env(self, **extra: str) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if key != RUN_ID_ENV}
        return {
            **env,
            "CHAOSREGISTRY_SANDBOX_DIR": str(self.sandbox.run_dir),
            "CHAOSREGISTRY_LEDGER_DIR": str(self.ledger.path),
            **extra,
        }

    def run_to_end(self, name: str, experiment_file: Path, run_id: str) -> dict[str, Any]:
        """Run B to its end; returns its journal."""
        subprocess.run(
            self.command(name, experiment_file),
            env=self.env(**{RUN_ID_ENV: run_id}),
            cwd=self.base,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=120,
        )
        journal: dict[str, Any] = json.loads((self.base / f"{name}.json").read_text())
        return journal

    def toxics(self) -> list[dict[str, Any]]:
        proxy = self.sandbox.endpoints["hops"][HOP]["proxy"]
        with Toxiproxy(self.sandbox.endpoints["toxiproxy"]) as api:
            return list(api.toxics(proxy))


@pytest.fixture
def runs(sandbox: SandboxInfo, tmp_path: Path) -> Runs:
    return Runs(sandbox, tmp_path, Ledger(tmp_path / "ledger"))


@pytest.fixture
def run_a(runs: Runs) -> Iterator[Entry]:
    """Run A, a plain ``chaos run``, holding 300 ms on the hop until the test ends; yields its
    injected fault. At the end it is released, and its own rollback must leave nothing."""
    release = runs.base / "release-a"
    holder = experiment(
        runs.base / "run-a-experiment.json",
        [
            network_action("latency", "add_latency", hop=HOP, latency_ms=300, duration=120),
            {
                "type": "action",
                "name": "hold",
                "provider": {
                    "type": "process",
                    "path": "sh",
                    "arguments": ["-c", f"while [ ! -e '{release}' ]; do sleep 0.1; done"],
                    "timeout": 120,
                },
            },
        ],
        [network_action("remove", "remove_network_faults", hop=HOP)],
    )
    process = subprocess.Popen(
        runs.command("run-a", holder),
        env=runs.env(),
        cwd=runs.base,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        entry: Entry = eventually(
            "run A's latency injected",
            lambda: next((e for e in runs.ledger.all() if e.state is FaultState.INJECTED), None),
            timeout=60,
            interval=0.1,
        )
        yield entry
        release.touch()
        assert process.wait(timeout=60) == 0
        assert runs.toxics() == []
        assert [e.revert_reason for e in runs.ledger.all() if e.id == entry.id] == ["rollback"]
        assert runs.ledger.active() == []
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_a_run_ending_with_its_fault_active_reverts_only_its_own(runs: Runs, run_a: Entry) -> None:
    assert run_a.applied is not None and run_a.owner is not None
    a_toxic = run_a.applied["toxic"]["name"]
    # Run B puts its own fault on the same hop and ends with it active: its rollback, which
    # says "every network fault on this hop", reverts it.
    b_experiment = experiment(
        runs.base / "run-b-experiment.json",
        [network_action("bandwidth", "limit_bandwidth", hop=HOP, rate_kbps=64, duration=120)],
        [network_action("remove", "remove_network_faults", hop=HOP)],
    )

    journal = runs.run_to_end("run-b", b_experiment, "run-b-of-the-test")

    assert journal["status"] == "completed"
    # Run A's latency is still applied, in Toxiproxy and in the ledger.
    assert [(t["name"], t["type"], t["attributes"]["latency"]) for t in runs.toxics()] == [
        (a_toxic, "latency", 300)
    ]
    assert runs.ledger.get(run_a.id).state is FaultState.INJECTED
    # Run B's own fault is reverted, by its rollback.
    (rollback,) = journal["rollbacks"]
    assert rollback["output"]["count"] == 1
    (b_entry,) = [e for e in runs.ledger.all() if e.id != run_a.id]
    assert (b_entry.kind, b_entry.state, b_entry.revert_reason) == (
        "network.bandwidth",
        FaultState.REVERTED,
        "rollback",
    )
    assert b_entry.run == "run-b-of-the-test"
    assert run_a.run == f"pid-{run_a.owner.pid}-{run_a.owner.start_time}"


def test_a_fault_another_run_holds_is_refused_naming_the_holder_and_changes_nothing(
    runs: Runs, run_a: Entry
) -> None:
    assert run_a.owner is not None
    toxics_before = runs.toxics()
    b_experiment = experiment(
        runs.base / "run-b-experiment.json",
        [network_action("latency", "add_latency", hop=HOP, latency_ms=100, duration=30)],
        [],
    )

    journal = runs.run_to_end("run-b", b_experiment, "run-b-of-the-test")

    (action,) = journal["run"]
    assert action["status"] == "failed"
    error = action["exception"][-1].strip()
    assert (
        f"ActivityFailed: add_latency: network.latency on hop:{HOP} refused: run {run_a.run} "
        f"(pid {run_a.owner.pid}) holds it with fault {run_a.id} (network.latency on "
        f"hop:{HOP}, injected, expires in "
    ) in error, error
    assert error.endswith("s)")
    assert [e.id for e in runs.ledger.all()] == [run_a.id]
    assert runs.toxics() == toxics_before
