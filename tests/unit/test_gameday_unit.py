"""The game day's reading of a journal (its pulls table) and what it records for the verdict
(the verdict itself: test_verdict_unit.py).

Pure functions of the journal; the journals here have the shape Chaos Toolkit writes (the real
runs are in test_experiments.py and test_kubernetes_*.py).
"""

from pathlib import Path
from typing import Any

from chaosregistry.gameday.runner import _set_aside_earlier_run, pull_table, tolerance_values


def run_entry(name: str, kind: str, status: str, output: Any = None, **extra: Any) -> dict:
    return {"activity": {"type": kind, "name": name}, "status": status, "output": output, **extra}


def test_load_row_counts_successes_over_attempts() -> None:
    load = {"pulls": 617, "failed": 6707, "attempts": 7324, "pulls_per_second": 40.0}
    load |= {"p50": 0.077, "p95": 0.177, "max": 0.294, "failures_by_class": {"protocol": 6707}}
    entry = run_entry("load-through-the-kill", "probe", "succeeded", load)
    # The row's kind comes from the probe that wrote it (its declared Returns), not its keys.
    probe = {"module": "chaosregistry.probes.load", "func": "pull_load_stats"}
    entry["activity"]["provider"] = probe
    journal = {"run": [entry]}
    header, row = pull_table(journal)
    assert "phase" in header
    assert row.split()[:3] == ["method", "load-through-the-kill", "617/7324"]
    assert row.endswith("protocol 6707")


def test_the_game_day_records_only_the_configuration_its_tolerances_refer_to() -> None:
    probe = {"type": "probe", "name": "p", "tolerance": {"type": "range", "range": [0, "${hi}"]}}
    pattern = {"type": "probe", "name": "q", "tolerance": {"type": "regex", "pattern": "${rx}"}}
    data = {"steady-state-hypothesis": {"probes": [probe]}, "method": [pattern]}
    configuration = {"hi": 3, "rx": "ok", "password": "s3cret", "registry_url": "https://r"}
    assert tolerance_values(data, configuration) == {"hi": 3, "rx": "ok"}


def test_an_earlier_runs_artifacts_are_moved_aside(tmp_path: Path) -> None:
    for name in ("journal.json", "gameday.json", "report.html", "chaostoolkit.log"):
        (tmp_path / name).write_text(name)
    moved = _set_aside_earlier_run(tmp_path, "20261205T000000Z")
    assert moved == tmp_path / "earlier" / "20261205T000000Z"
    assert sorted(p.name for p in moved.iterdir()) == [
        "gameday.json",
        "journal.json",
        "report.html",
    ]
    assert not (tmp_path / "journal.json").exists() and (tmp_path / "chaostoolkit.log").exists()
    (tmp_path / "journal.json").write_text("again")
    assert _set_aside_earlier_run(tmp_path, "20261205T000000Z") == moved.with_name(
        "20261205T000000Z-2"
    )
    assert _set_aside_earlier_run(tmp_path, "x") is None
