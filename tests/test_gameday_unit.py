"""The game day's reading of a journal: its pulls table and the verdict's failed actions.

Pure functions of the journal; the journals here have the shape Chaos Toolkit writes (the real
runs are in test_experiments.py and test_kubernetes_*.py).
"""

from typing import Any

from chaosregistry.gameday import failed_actions, pull_table, verdict_from_journal


def run_entry(name: str, kind: str, status: str, output: Any = None, **extra: Any) -> dict:
    return {"activity": {"type": kind, "name": name}, "status": status, "output": output, **extra}


def test_load_row_counts_successes_over_attempts() -> None:
    load = {"pulls": 617, "failed": 6707, "attempts": 7324, "pulls_per_second": 40.0}
    load |= {"p50": 0.077, "p95": 0.177, "max": 0.294, "failures_by_class": {"protocol": 6707}}
    journal = {"run": [run_entry("load-through-the-kill", "probe", "succeeded", load)]}
    header, row = pull_table(journal)
    assert "phase" in header
    assert row.split()[:3] == ["method", "load-through-the-kill", "617/7324"]
    assert row.endswith("protocol 6707")


def test_a_failed_fault_action_is_named_and_fails_a_completed_run() -> None:
    exception = ["Traceback (most recent call last):\n", "ActivityFailed: kubeconfig missing\n"]
    journal = {
        "status": "completed",
        "deviated": False,
        "run": [
            run_entry("start-load", "action", "succeeded", {}),
            run_entry("kill-registry-node", "action", "failed", exception=exception),
            run_entry("pulls", "probe", "failed", exception=["ActivityFailed: probe\n"]),
        ],
    }
    # Chaos Toolkit calls this run completed and its steady state met...
    assert verdict_from_journal(journal, interrupted=False) == "passed"
    # ...the game day names the action that never hurt anything (run_gameday then says failed).
    assert failed_actions(journal) == [
        "action 'kill-registry-node' failed: ActivityFailed: kubeconfig missing"
    ]
    assert failed_actions({"run": [run_entry("a", "action", "succeeded", {})]}) == []
    assert failed_actions(None) == []
