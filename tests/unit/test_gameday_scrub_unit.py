"""The game day's scrub after ``chaos run``: what it reaches beyond the run directory.

The whole game day, with a real load, is in test_secrets_gameday.py; these cover what that run
does not: a load kept outside the run directory (configuration ``load_dir``), the password of
the sandbox named only by its endpoints (no experiment secret carries it), the result's notes.
"""

import json
from pathlib import Path

from chaosregistry.gameday.runner import GameDayResult, _scrub_run
from chaosregistry.gameday.verdict import Verdict
from chaosregistry.redaction import REDACTED, Redactor

SECRET = "canary-known-Lp0Ok9"
SANDBOX_PASSWORD = "canary-sandbox-Ij8Uh7"


def started_load(stats_dir: Path) -> dict[str, object]:
    return {
        "activity": {
            "name": "start-pull-load",
            "type": "action",
            "provider": {
                "type": "python",
                "module": "chaosregistry.actions.load",
                "func": "start_pull_load",
            },
        },
        "status": "succeeded",
        "output": {"load_id": stats_dir.name, "stats_dir": str(stats_dir)},
    }


def test_the_scrub_reaches_loads_elsewhere_the_sandbox_password_and_the_notes(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    elsewhere = tmp_path / "loads" / "20260101T000000Z-abcdef"
    (elsewhere / "pulls").mkdir(parents=True)
    (elsewhere / "locust.log").write_text(f"auth with {SECRET} and {SANDBOX_PASSWORD}\n")
    (elsewhere / "pulls" / "pulls-1.jsonl").write_text(json.dumps({"error": SECRET}) + "\n")
    journal = run_dir / "journal.json"
    journal.write_text(json.dumps({"run": [started_load(elsewhere)], "note": SANDBOX_PASSWORD}))
    (run_dir / "chaostoolkit.log").write_text(f"DEBUG succeeded with {SECRET}\n")
    sandbox = tmp_path / "sandbox"
    (sandbox / "secrets").mkdir(parents=True)
    credentials = sandbox / "secrets" / "credentials.json"
    credentials.write_text(json.dumps({"username": "chaos", "password": SANDBOX_PASSWORD}))
    (sandbox / "endpoints.json").write_text(json.dumps({"credentials_file": str(credentials)}))
    result = GameDayResult(
        Verdict.FAILED,
        run_dir,
        journal,
        faults=[{"target": f"hop:{SECRET}"}],
        notes=[f"action failed: denied for {SANDBOX_PASSWORD}"],
    )

    _scrub_run(Redactor([SECRET]), run_dir, journal, sandbox, result)

    for path in [*run_dir.rglob("*"), *elsewhere.rglob("*")]:
        if path.is_file():
            text = path.read_text()
            assert SECRET not in text and SANDBOX_PASSWORD not in text, path
    assert REDACTED in (elsewhere / "locust.log").read_text()
    assert json.loads(journal.read_text())["note"] == REDACTED
    assert result.notes == [f"action failed: denied for {REDACTED}"]
    assert result.faults == [{"target": f"hop:{REDACTED}"}]
    assert SANDBOX_PASSWORD in credentials.read_text()  # the sandbox's own file is not ours


def test_the_scrub_without_a_journal_or_a_sandbox_scrubs_the_run_directory(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "chaostoolkit.log").write_text(f"crashed holding {SECRET}\n")
    _scrub_run(Redactor([SECRET]), run_dir, run_dir / "journal.json", tmp_path / "none", None)
    assert (run_dir / "chaostoolkit.log").read_text() == f"crashed holding {REDACTED}\n"
