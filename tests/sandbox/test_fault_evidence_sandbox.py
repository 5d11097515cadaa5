"""A game day's evidence about each fault, from real runs: the real ``chaosregistry gameday``
(and under it ``chaos run``) on the real sandbox, whose Toxiproxy counts the bytes each hop
carried (``-proxy-metrics``).

Asserted on gameday.json's ``fault_evidence`` (and the ledger it was read from), not on the
verdict: which evidence a verdict requires is the verdict's rule.
"""

import json
from pathlib import Path
from typing import Any

import yaml
from support.faults import SETTLES_WITHIN
from support.gameday import run_shipped_experiment
from support.sandbox import SandboxInfo

from chaosregistry.faults.ledger import Ledger
from chaosregistry.gameday.fault_evidence import hop_bytes

IMAGE = "tiny/hello:latest"


def python(module: str, func: str, **arguments: Any) -> dict[str, Any]:
    return {"type": "python", "module": module, "func": func, "arguments": arguments}


def experiment(path: Path, method: list[dict[str, Any]], hop: str) -> Path:
    """A small experiment: pulls succeed before and after; ``method``; the hop's faults
    removed in the rollbacks."""
    pulls = python("chaosregistry.probes.pull", "pull_latency", image=IMAGE, count=2)
    document = {
        "version": "1.0.0",
        "title": path.stem,
        "description": "a fault and the measurements around it",
        "configuration": {"backend": "local", "chaosregistry": {}},
        "steady-state-hypothesis": {
            "title": "pulls succeed",
            "probes": [
                {
                    "type": "probe",
                    "name": "every-pull-succeeds",
                    "tolerance": {"type": "range", "range": [1.0, 1.0], "target": "success_ratio"},
                    "provider": pulls,
                }
            ],
        },
        "method": method,
        "rollbacks": [
            {
                "type": "action",
                "name": "remove-faults",
                "provider": python(
                    "chaosregistry.actions.network", "remove_network_faults", hop=hop
                ),
            }
        ],
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def latency(hop: str, duration: float, **extra: Any) -> dict[str, Any]:
    return {
        "type": "action",
        "name": f"latency-on-{hop}",
        "provider": python(
            "chaosregistry.actions.network",
            "add_latency",
            hop=hop,
            latency_ms=200,
            duration=duration,
        ),
        **extra,
    }


def registry_pulls(name: str) -> dict[str, Any]:
    return {
        "type": "probe",
        "name": name,
        "provider": python("chaosregistry.probes.pull", "pull_latency", image=IMAGE, count=3),
    }


def end_of_fault(hop: str) -> dict[str, Any]:
    return {
        "type": "action",
        "name": "end-of-fault",
        "provider": python("chaosregistry.actions.network", "remove_network_faults", hop=hop),
    }


def evidence_of(run_dir: Path) -> list[dict[str, Any]]:
    evidence: list[dict[str, Any]] = json.loads((run_dir / "gameday.json").read_text())[
        "fault_evidence"
    ]
    return evidence


def test_latency_on_a_hop_no_probe_uses_met_no_measurement(
    sandbox: SandboxInfo, tmp_path: Path
) -> None:
    path = experiment(
        tmp_path / "unused-hop.yaml",
        [
            latency("client-mirror", 30),
            registry_pulls("pulls-from-the-registry"),
            end_of_fault("client-mirror"),
        ],
        "client-mirror",
    )
    process, run_dir = run_shipped_experiment(sandbox.run_dir, tmp_path, "", experiment=path)
    (fault,) = evidence_of(run_dir)
    assert (fault["kind"], fault["target"]) == ("network.latency", "hop:client-mirror")
    assert (fault["applied"], fault["confirmed"]) == (True, True), fault["detail"]
    assert fault["measured"] is False, fault["detail"]
    assert "met no measurement" in fault["detail"]
    assert "no bytes crossed the hop" in fault["detail"], process.stdout


def test_a_1s_fault_reverted_before_the_probes_met_no_measurement(
    sandbox: SandboxInfo, tmp_path: Path
) -> None:
    # The pause outlasts the fault and the watchdog's revert of it on a loaded machine: the
    # probes' pulls come after the fault ended (a late revert would rightly count as measured).
    path = experiment(
        tmp_path / "short-fault.yaml",
        [
            latency("client-registry", 1, pauses={"after": 1 + SETTLES_WITHIN}),
            registry_pulls("pulls-after-the-fault-ended"),
        ],
        "client-registry",
    )
    process, run_dir = run_shipped_experiment(sandbox.run_dir, tmp_path, "", experiment=path)
    (fault,) = evidence_of(run_dir)
    assert (fault["applied"], fault["confirmed"]) == (True, True), fault["detail"]
    assert fault["measured"] is False, fault["detail"] + process.stdout
    assert "met no measurement" in fault["detail"]


def test_registry_latency_is_applied_confirmed_and_measured_by_bytes_through_its_hop(
    sandbox: SandboxInfo, tmp_path: Path
) -> None:
    process, run_dir = run_shipped_experiment(
        sandbox.run_dir, tmp_path, "registry-latency", fault_duration=40, sample_pause=1
    )
    (fault,) = evidence_of(run_dir)
    assert (fault["kind"], fault["target"]) == ("network.latency", "hop:client-registry")
    assert (fault["applied"], fault["confirmed"], fault["measured"]) == (True, True, True), (
        fault["detail"] + process.stdout
    )
    assert fault["dry_run"] is False
    assert "bytes crossed the hop" in fault["detail"]
    # The ledger entry holds both readings of the hop's counters; the pulls of the method's
    # probes (each probe's client closes its connections when it ends) moved them.
    entry = Ledger(tmp_path / "ledger").get(fault["id"])
    assert entry.applied is not None
    assert entry.applied["hop_traffic"]["proxy"] == "client-registry"
    carried = hop_bytes(entry.applied)
    assert carried is not None and carried > 0
    assert f"{carried} bytes crossed the hop" in fault["detail"]
