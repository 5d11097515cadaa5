"""The verdict with the real ``chaos run``: a load that never pulls fails (on the real sandbox);
a run is passed only on evidence (its own journal, a steady state measured, tolerances judged)."""

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.gameday import ROOT, run_shipped_experiment
from support.sandbox import SandboxInfo

from chaosregistry.gameday.verdict import RunFacts, judge


def test_a_game_day_whose_load_never_pulled_fails_with_a_note(
    sandbox: SandboxInfo, tmp_path: Path
) -> None:
    process, run_dir = run_shipped_experiment(
        sandbox.run_dir, tmp_path, "load-never-pulls", ROOT / "tests/data/load-never-pulls.yaml"
    )
    output = process.stdout + process.stderr
    journal = json.loads((run_dir / "journal.json").read_text())
    # Chaos Toolkit's own account: completed, steady state met; without the load's records
    # nothing in the journal would name the load.
    assert (journal["status"], journal["deviated"]) == ("completed", False), output
    assert not any(n.startswith("load ") for n in judge(RunFacts(journal)).notes)

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


# -- passed needs evidence ---------------------------------------------------------------------
# Experiments of probes that need no registry (``json.loads`` as a probe: a known output in a
# few milliseconds), so these game days run the real `chaos run` without the sandbox.
def json_probe(name: str, text: str, tolerance: Any = None) -> dict[str, Any]:
    probe: dict[str, Any] = {
        "type": "probe",
        "name": name,
        "provider": {"type": "python", "module": "json", "func": "loads", "arguments": {"s": text}},
    }
    if tolerance is not None:
        probe["tolerance"] = tolerance
    return probe


ONE = {"type": "range", "range": [1, 1], "target": "n"}


def experiment(path: Path, hypothesis: list[dict[str, Any]], method: list[dict[str, Any]]) -> Path:
    data: dict[str, Any] = {
        "version": "1.0.0",
        "title": path.stem,
        "description": "a verdict test",
        "configuration": {"backend": "local", "chaosregistry": {}},
        "method": method,
    }
    if hypothesis:
        data["steady-state-hypothesis"] = {"title": "n is 1", "probes": hypothesis}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run(base: Path, name: str, path: Path, **options: Any) -> tuple[str, int, Path]:
    # No registry is reached: the sandbox directory is never used.
    process, run_dir = run_shipped_experiment(base / "unused-sandbox", base, name, path, **options)
    return process.stdout + process.stderr, process.returncode, run_dir


GOOD = [json_probe("n-is-one", '{"n": 1}', ONE)]


def test_a_reused_run_directory_after_chaos_run_died_is_failed_not_yesterdays_pass(
    tmp_path: Path,
) -> None:
    good = experiment(tmp_path / "nightly.yaml", GOOD, [json_probe("look", '{"n": 1}')])
    output, code, run_dir = run(tmp_path, "nightly", good)
    assert code == 0 and "verdict: passed (exit 0)" in output, output
    yesterday = json.loads((run_dir / "journal.json").read_text())

    # Today a mistyped tolerance target (the output's "n" is an object) makes chaoslib raise
    # a TypeError: chaos run dies before writing its journal, in the same run directory.
    mistyped = [json_probe("n-is-one", '{"n": {"value": 1}}', ONE)]
    crash = experiment(tmp_path / "nightly-crash.yaml", mistyped, [json_probe("look", "{}")])
    output, code, run_dir = run(tmp_path, "nightly", crash, expect_journal=False)
    assert "TypeError: conversion from dict to Decimal" in output, output  # chaos run's traceback
    assert code == 11 and "verdict: failed (exit 11)" in output, output
    assert (
        "note: not proven: this run's journal: no journal: chaos run exited 1 without writing "
        "one" in output
    )
    gameday = json.loads((run_dir / "gameday.json").read_text())
    assert gameday["verdict"] == "failed" and gameday["chaos_exit_code"] == 1
    # Yesterday's journal and report were moved aside, never judged nor left to be published.
    assert not (run_dir / "journal.json").exists() and not (run_dir / "report.html").exists()
    (earlier,) = (run_dir / "earlier").iterdir()
    assert json.loads((earlier / "journal.json").read_text()) == yesterday
    assert (earlier / "report.html").exists()
    # Yesterday's journal carries the id its game day gave it (its control wrote it), and that
    # game day found it there.
    passed = json.loads((earlier / "gameday.json").read_text())
    (signed,) = [e for e in yesterday["extensions"] if e["name"] == "chaosregistry-run"]
    assert signed["run_id"] == passed["run_id"] != gameday["run_id"]
    assert passed["chaos_exit_code"] == 0
    assert all(item["proven"] for item in passed["evidence"]), passed["evidence"]


def test_a_game_day_without_a_steady_state_is_not_passed(tmp_path: Path) -> None:
    # A well-formed run, status completed, deviated false: but nothing was measured.
    path = experiment(tmp_path / "no-hypothesis.yaml", [], [json_probe("look", '{"n": 1}')])
    output, code, run_dir = run(tmp_path, "no-hypothesis", path)
    journal = json.loads((run_dir / "journal.json").read_text())
    assert (journal["status"], journal["deviated"]) == ("completed", False)
    assert code == 11, output
    assert (
        "note: not proven: steady state before and after: the experiment declares no "
        "steady-state probe" in output
    )
    (summary_run,) = json.loads((run_dir / "summary.json").read_text())["runs"]
    steady = summary_run["evidence"][1]
    assert (steady["name"], steady["proven"]) == ("steady state before and after", False)
    assert "❌ **not proven**" in (run_dir / "summary.md").read_text()


def test_a_method_probe_whose_tolerance_could_not_be_judged_fails_with_why(
    tmp_path: Path,
) -> None:
    # The probe under the fault raises (an API error, say): Chaos Toolkit logs it, carries on
    # and never looks at its tolerance.
    raising = json_probe("n-under-the-fault", "not json", ONE)
    path = experiment(tmp_path / "raises.yaml", GOOD, [raising])
    output, code, run_dir = run(tmp_path, "raises", path)
    journal = json.loads((run_dir / "journal.json").read_text())
    assert (journal["status"], journal["deviated"]) == ("completed", False)
    assert code == 11, output
    note = re.search(
        r"^note: method check 'n-under-the-fault' could not be judged: the probe raised: "
        r"(.*JSONDecodeError.*)$",
        output,
        re.M,
    )
    assert note is not None, output
    assert note[0].removeprefix("note: ") in (run_dir / "summary.md").read_text()
    assert "NOT proven: tolerances judged with the run's values" in output


def test_a_game_day_with_the_wrong_ca_says_tls_unknown_ca_where_the_reader_looks(
    sandbox: SandboxInfo, tmp_path: Path
) -> None:
    # The sandbox serves HTTPS with its private CA; this configuration trusts only the system's.
    reachable = {
        "type": "probe",
        "name": "reachable",
        # A boolean is 1 or 0 to a range tolerance.
        "tolerance": {"type": "range", "range": [1, 1], "target": "reachable"},
        "provider": {
            "type": "python",
            "module": "chaosregistry.probes.registry",
            "func": "registry_reachable",
        },
    }
    path = experiment(tmp_path / "wrong-ca.yaml", [reachable], [json_probe("look", "{}")])
    data = yaml.safe_load(path.read_text())
    data["configuration"]["registry_ca_bundle"] = "/etc/ssl/certs/ca-certificates.crt"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    process, run_dir = run_shipped_experiment(sandbox.run_dir, tmp_path, "wrong-ca", path)
    output = process.stdout + process.stderr
    assert process.returncode == 11, output
    note = re.search(
        r"^note: (the steady state was not met before the method \(reachable: output "
        r"reachable=false; tls/unknown-ca: .+\): the method never ran)$",
        output,
        re.M,
    )
    assert note is not None, output
    assert note[1] in (run_dir / "summary.md").read_text()
    assert "tls/unknown-ca" in (run_dir / "report.html").read_text()
