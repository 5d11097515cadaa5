"""The verdict on the real sandbox with the real ``chaos run``: a load that never pulls fails."""

import json
import re
from pathlib import Path

import pytest
from conftest import SandboxInfo
from gameday_support import ROOT, run_shipped_experiment

from chaosregistry.verdict import RunFacts, Verdict, judge

pytestmark = pytest.mark.sandbox


def test_a_game_day_whose_load_never_pulled_fails_with_a_note(
    sandbox: SandboxInfo, tmp_path: Path
) -> None:
    process, run_dir = run_shipped_experiment(
        sandbox.run_dir, tmp_path, "load-never-pulls", ROOT / "tests/data/load-never-pulls.yaml"
    )
    output = process.stdout + process.stderr
    journal = json.loads((run_dir / "journal.json").read_text())
    # Chaos Toolkit's own account: completed, steady state met; without the load's records the
    # rule would pass it too.
    assert (journal["status"], journal["deviated"]) == ("completed", False), output
    assert judge(RunFacts(journal)).verdict == Verdict.PASSED

    assert process.returncode == 11, output
    note = re.search(
        # A pull in flight when the load stopped is counted apart ("N cut short").
        r"^note: load (\S+): 0 of (\d+) pulls succeeded \(refused (\d+)(?:, \d+ cut short)?\)$",
        output,
        re.M,
    )
    assert note is not None and note[2] == note[3] and int(note[2]) > 0, output
    assert "verdict: failed (exit 11)" in output

    gameday = json.loads((run_dir / "gameday.json").read_text())
    assert gameday["verdict"] == "failed" and note[0].removeprefix("note: ") in gameday["notes"]
    (run,) = json.loads((run_dir / "summary.json").read_text())["runs"]
    assert run["verdict"] == "failed" and run["exit_code"] == 11
    # Its probes held, but a load that never pulled proves nothing: no score.
    assert run["score"]["value"] is None and "(not scored)" in output, output
    (load,) = run["load_pulls"]
    assert (load["load_id"], load["pulls"], load["failures_by_class"]) == (
        note[1],
        0,
        {"refused": int(note[2])},
    )
    assert run["notes"].count(note[0].removeprefix("note: ")) == 1
    assert note[0].removeprefix("note: ") in (run_dir / "summary.md").read_text()
    html = (run_dir / "report.html").read_text()
    assert f"refused {note[2]}" in html and "0 of " in html


def test_a_game_day_whose_load_has_a_wrong_password_fails_with_a_note(
    sandbox: SandboxInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHAOSREGISTRY_TEST_LOAD_PASSWORD", "not-the-sandbox-password")
    process, run_dir = run_shipped_experiment(
        sandbox.run_dir, tmp_path, "load-bad-password", ROOT / "tests/data/load-bad-password.yaml"
    )
    output = process.stdout + process.stderr
    journal = json.loads((run_dir / "journal.json").read_text())
    assert (journal["status"], journal["deviated"]) == ("completed", False), output
    assert process.returncode == 11, output
    note = re.search(r"^note: action 'start-pull-load' failed: .*\bauth\b.*$", output, re.M)
    assert note is not None, output
    assert "not-the-sandbox-password" not in output  # a credential never reaches the output
    for name in ("journal.json", "gameday.json", "summary.json", "report.html", "junit.xml"):
        assert "not-the-sandbox-password" not in (run_dir / name).read_text(), name
    assert "verdict: failed (exit 11)" in output
