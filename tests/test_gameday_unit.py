"""The game day's reading of a journal: its pulls table (the verdict: test_verdict_unit.py).

Pure functions of the journal; the journals here have the shape Chaos Toolkit writes (the real
runs are in test_experiments.py and test_kubernetes_*.py).
"""

from typing import Any

import pytest

from chaosregistry.gameday import pull_table

pytestmark = pytest.mark.unit


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
