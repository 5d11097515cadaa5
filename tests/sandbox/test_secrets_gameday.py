"""Secrets by value, end to end: a real game day (``chaosregistry gameday`` -> ``chaos run``)
with a real Locust load on the sandbox, a distinct canary per channel, and not one of them in
any file of the run directory (journal, chaostoolkit.log, gameday.json, reports, the load's
load.json, Locust's logs and records), the ledger, the game day's output, or the command line
of any process while the load runs.

Channels (tests/data/secrets-canary.yaml): the experiment's secrets carry the sandbox's real
password (the pulls authenticate with it, so it is the canary of that channel); an
environment variable; a vars-file value under a credential key; Basic and Bearer Authorization
values; the tokens the sandbox's token server issues during the run. URL userinfo is refused
before anything runs (tests/unit/test_url_credentials_unit.py).
"""

import base64
import json
import os
import re
import secrets
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from support.gameday import ROOT, run_shipped_experiment
from support.sandbox import SandboxInfo

EXPERIMENT = ROOT / "tests/data/secrets-canary.yaml"
ENV_NAME = "CHAOSREGISTRY_TEST_CANARY_TOKEN"
JWT = re.compile(rb"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.")


class CommandLines:
    """Every process's command line, read from /proc (world-readable) until stopped."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> "CommandLines":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._stop.wait(0.05):
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit():
                    try:
                        raw = (entry / "cmdline").read_bytes()
                    except OSError:
                        continue  # gone meanwhile
                    self.seen.add(raw.replace(b"\0", b" ").decode("utf-8", "replace"))


def token_stats(sandbox: SandboxInfo) -> dict[str, int]:
    answer = httpx.get(sandbox.endpoints["token_stats_url"], verify=sandbox.tls, timeout=10)
    answer.raise_for_status()
    stats: dict[str, int] = answer.json()
    return stats


def activity_output(journal: dict[str, Any], name: str) -> Any:
    (output,) = [run["output"] for run in journal["run"] if run["activity"]["name"] == name]
    return output


def test_no_canary_reaches_any_artifact_log_or_command_line_of_a_game_day_with_a_load(
    sandbox: SandboxInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tag = secrets.token_hex(4)
    env_canary = f"canary-env-{tag}"
    vars_canary = f"canary-vars-{tag}"
    basic_password = f"canary-basic-{tag}"
    basic = base64.b64encode(f"webhook-bot:{basic_password}".encode()).decode()
    bearer = f"canary-bearer-{tag}"
    canaries = {
        "experiment secret (the sandbox's real password)": sandbox.password,
        "environment": env_canary,
        "vars file": vars_canary,
        "Basic credential": basic,
        "Basic password, decoded": basic_password,
        "Bearer token": bearer,
    }
    experiment = yaml.safe_load(EXPERIMENT.read_text())
    experiment["secrets"]["registry"]["registry_password"] = sandbox.password
    experiment["configuration"]["webhook_header"] = f"Basic {basic}"
    experiment["configuration"]["status_header"] = f"Bearer {bearer}"
    experiment_file = tmp_path / "secrets-canary.yaml"
    experiment_file.write_text(yaml.safe_dump(experiment, sort_keys=False))
    monkeypatch.setenv(ENV_NAME, env_canary)
    tokens_before = token_stats(sandbox)["tokens_issued"]

    with CommandLines() as command_lines:
        process, run_dir = run_shipped_experiment(
            sandbox.run_dir,
            tmp_path / "base",
            "secrets-canary",
            experiment_file,
            notify_passwd=vars_canary,
        )
    output = process.stdout + process.stderr

    # Every channel was live: the pulls authenticated with the real password (basic auth and
    # issued tokens), the load pulled, and the careless probe returned every canary...
    journal = json.loads((run_dir / "journal.json").read_text())
    assert journal["status"] == "completed", output
    for phase in ("before", "after"):
        for probe in journal["steady_states"][phase]["probes"]:
            assert probe["output"]["success_ratio"] == 1, (phase, probe["output"])
    (stopped,) = activity_output(journal, "stop-pull-load")["stopped"]
    assert stopped["pulls"] > 0, output
    assert token_stats(sandbox)["tokens_issued"] > tokens_before
    # ... which reached the journal and were scrubbed there, one by one.
    returned = activity_output(journal, "careless-probe")
    assert returned == " ".join(["[redacted]"] * 5), "the careless probe's output kept a secret"

    # The load ran while the command lines were read, and took its credentials from a file.
    # (This game day's Locust names its run directory: another xdist worker's is not ours.)
    locust = [cmd for cmd in command_lines.seen if " -m locust " in cmd and str(run_dir) in cmd]
    assert locust and all("--credentials-file" in line for line in locust), output
    files = [p for d in (run_dir, tmp_path / "base" / "ledger") for p in d.rglob("*")]
    files = [p for p in files if p.is_file()]
    names = {p.name for p in files}
    assert {"journal.json", "chaostoolkit.log", "gameday.json", "report.html"} <= names
    assert {"load.json", "locust.log", "supervisor.log"} <= names
    assert any(p.suffix == ".jsonl" for p in files)  # the load's records
    assert any(p.is_relative_to(tmp_path / "base" / "ledger") for p in files)

    contents = {str(p.relative_to(tmp_path)): p.read_bytes() for p in files}
    contents["the game day's output"] = output.encode()
    contents |= {f"command line {line!r}": line.encode() for line in command_lines.seen}
    hits = [
        f"{channel} in {where}"
        for channel, canary in canaries.items()
        for where, content in contents.items()
        if canary.encode() in content
    ]
    hits += [
        f"an issued token in {where}" for where, content in contents.items() if JWT.search(content)
    ]
    assert hits == [], hits
    assert os.environ[ENV_NAME] == env_canary  # the run's environment held it all along
