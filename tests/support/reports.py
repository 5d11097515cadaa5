"""Hand-made Chaos Toolkit journals for the report tests (shapes copied from real journals)."""

import copy
import datetime
import json
from pathlib import Path
from typing import Any

T0 = 1_800_000_000.0
RUN_ID = "run-latency-a1b2c3"
PASSWORD = "hunter2-Sup3rS3cret!"
TOKEN = "tok-8f1d2c3b4a5e"


def at(seconds: float) -> str:
    """The ISO time ``seconds`` after T0, as Chaos Toolkit writes it."""
    return datetime.datetime.fromtimestamp(T0 + seconds, datetime.UTC).isoformat()


def probe_declaration(
    name: str, target: str, low: float, high: float, func: str = "pull_latency"
) -> dict[str, Any]:
    return {
        "type": "probe",
        "name": name,
        "tolerance": {"type": "range", "range": [low, high], "target": target},
        "provider": {
            "type": "python",
            "module": "chaosregistry.probes.pull",
            "func": func,
            "arguments": {"image": "${probe_image}", "count": 5},
        },
    }


P95_PROBE = probe_declaration("pull-p95-within-budget", "p95", 0, 0.25)
RATIO_PROBE = probe_declaration("every-pull-succeeds", "success_ratio", 1, 1)


def pull_output(p95: float | None, ratio: float = 1.0, **extra: Any) -> dict[str, Any]:
    output = {
        "image": "shop/api:shop-prod-2.0.1",
        "registry": "http://127.0.0.1:23000",
        "count": 5,
        "succeeded": int(5 * ratio),
        "failed": 5 - int(5 * ratio),
        "success_ratio": ratio,
        "p50": None if p95 is None else p95 * 0.8,
        "p95": p95,
        "phases": {
            "auth": 0.001,
            "manifest": None if p95 is None else p95 * 0.3,
            "blobs": None if p95 is None else p95 * 0.6,
        },
        "errors": {} if ratio == 1 else {"timeout": 5 - int(5 * ratio)},
        "first_error": None,
    }
    output.update(extra)
    return output


def probe_run(
    declaration: dict[str, Any],
    output: Any,
    start: float,
    end: float,
    met: bool | None = None,
    status: str = "succeeded",
) -> dict[str, Any]:
    run = {
        "activity": declaration,
        "output": output,
        "start": at(start),
        "status": status,
        "end": at(end),
        "duration": end - start,
    }
    if met is not None:
        run["tolerance_met"] = met
    return run


def action_run(
    name: str,
    func: str,
    output: Any,
    start: float,
    end: float,
    module: str = "chaosregistry.actions.network",
    status: str = "succeeded",
) -> dict[str, Any]:
    return {
        "activity": {
            "type": "action",
            "name": name,
            "provider": {"type": "python", "module": module, "func": func, "arguments": {}},
        },
        "output": output,
        "start": at(start),
        "status": status,
        "end": at(end),
        "duration": end - start,
    }


FAULT = {
    "fault_id": "fa0100000001",
    "kind": "network.latency",
    "target": "hop:client-registry",
    "state": "injected",
    "parameters": {"latency_ms": 300, "duration": 17.5},
    "applied": {"toxic": {"type": "latency"}},
    "injected_at": T0 + 2.5,
    "expires_at": T0 + 20.0,
    "expires_in": 17.5,
}
METHOD_PROBE = {
    "type": "probe",
    "name": "pulls-during-latency",
    "provider": {
        "type": "python",
        "module": "chaosregistry.probes.pull",
        "func": "pull_latency",
        "arguments": {"image": "${probe_image}", "count": 5},
    },
}
# (start, end, p95) of the method's samples: three under the fault, one after it.
METHOD_SAMPLES = [(4.0, 5.0, 0.8), (8.0, 9.0, 0.9), (12.0, 13.0, 0.85), (16.0, 17.0, 0.06)]


def journal(**changes: Any) -> dict[str, Any]:
    """A completed latency game day: baseline, three slow samples under the fault, recovery."""
    data: dict[str, Any] = {
        "chaoslib-version": "1.44.0",
        "platform": "Linux-test",
        "node": "test-node",
        "experiment": {
            "version": "1.0.0",
            "title": "Pulls ride out latency",
            "description": "hand-made",
            "tags": ["registry", "latency"],
            "configuration": {"backend": "local", "probe_image": "shop/api:shop-prod-2.0.1"},
            "steady-state-hypothesis": {"title": "fast", "probes": [P95_PROBE, RATIO_PROBE]},
            "method": [],
            "rollbacks": [],
            "dry": None,
        },
        "start": at(0),
        "status": "completed",
        "deviated": False,
        "steady_states": {
            "before": {
                "steady_state_met": True,
                "probes": [
                    probe_run(P95_PROBE, pull_output(0.05), 0.1, 0.6, True),
                    probe_run(RATIO_PROBE, pull_output(0.04), 0.6, 1.0, True),
                ],
            },
            "after": {
                "steady_state_met": True,
                "probes": [
                    probe_run(P95_PROBE, pull_output(0.06), 25.0, 25.5, True),
                    probe_run(RATIO_PROBE, pull_output(0.05), 25.5, 26.0, True),
                ],
            },
            "during": [],
        },
        "run": [
            action_run("add-latency", "add_latency", FAULT, 2.0, 2.6),
            *(
                probe_run(METHOD_PROBE, pull_output(p95), start, end)
                for start, end, p95 in METHOD_SAMPLES[:3]
            ),
            action_run(
                "remove-latency",
                "remove_network_faults",
                {"reverted": [dict(FAULT, state="reverted")], "count": 1},
                15.0,
                15.2,
            ),
            probe_run(METHOD_PROBE, pull_output(METHOD_SAMPLES[3][2]), *METHOD_SAMPLES[3][:2]),
        ],
        "rollbacks": [
            action_run(
                "remove-latency-rollback",
                "remove_network_faults",
                {"reverted": [], "count": 0},
                28.0,
                28.1,
            )
        ],
        "end": at(30),
        "duration": 30.0,
        # Signed by the game day's control (chaosregistry.gameday.control).
        "extensions": [{"name": "chaosregistry-run", "run_id": RUN_ID}],
    }
    data["experiment"]["method"] = [copy.deepcopy(r["activity"]) for r in data["run"]]
    data.update(copy.deepcopy(changes))
    return data


def gameday(**changes: Any) -> dict[str, Any]:
    """The gameday.json of :func:`journal`: the fault reverted by the method's undo."""
    data = {
        "experiment": "experiments/registry-latency.yaml",
        "vars": "experiments/vars/local.yaml",
        "backend": "local",
        "run_id": RUN_ID,
        "verdict": "passed",
        "exit_code": 0,
        "chaos_exit_code": 0,
        "tolerance_values": {},
        "fault_evidence": [
            {
                "id": FAULT["fault_id"],
                "kind": FAULT["kind"],
                "target": FAULT["target"],
                "applied": True,
                "confirmed": True,
                "measured": True,
                "dry_run": False,
                "detail": "toxic listed; 3 probe runs crossed the hop in its window",
            }
        ],
        "faults": [
            {
                "id": FAULT["fault_id"],
                "kind": FAULT["kind"],
                "target": FAULT["target"],
                "state": "reverted",
                "revert_reason": "rollback",
                "injected_at": T0 + 2.4,
                "reverted_at": T0 + 15.1,
            }
        ],
        "notes": [],
    }
    data.update(copy.deepcopy(changes))
    return data


def write_run(directory: Path, data: dict[str, Any], game: dict[str, Any] | None = None) -> Path:
    """Write journal.json (and gameday.json) into ``directory``; returns the journal's path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "journal.json"
    path.write_text(json.dumps(data, indent=2))
    if game is not None:
        (directory / "gameday.json").write_text(json.dumps(game, indent=2))
    return path
