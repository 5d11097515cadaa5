"""A real Locust load under a real auth fault, through the real ``chaosregistry gameday``: with
back-off its failing nodes retry a few times a second, without it (a flood test) as fast as the
CPU allows; the report shows the attempts against the successful pulls.

The fault is ``swap_credentials`` (the registry refuses the load's password: every pull fails
at once with a 401, after its TLS handshake), the failure the issue measured at about 150
attempts a second against 24 healthy pulls a second.
"""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.gameday import run_shipped_experiment
from support.sandbox import SandboxInfo

from chaosregistry.loadgen.command import LOCUSTFILE

USERS = 3
FAULT_SECONDS = 12  # how long the credentials stay swapped before the restore
# Without back-off a failing node retries at once: the flood is bounded by the CPU of the one
# Locust process, not by the number of users; with back-off each node makes about 1 / 0.75 s
# attempts a second once capped, so a few users and a fault long enough for the cap to
# dominate make the difference plain. The test asserts a ratio, well under the one measured
# (see the report), so a loaded machine (a slower flood) does not make it flaky.
MIN_RATIO = 5.0


def experiment(backoff: bool) -> dict[str, Any]:
    def action(name: str, module: str, func: str, after: float = 0, **arguments: Any) -> Any:
        step: dict[str, Any] = {
            "type": "action",
            "name": name,
            "provider": {"type": "python", "module": module, "func": func},
        }
        if arguments:
            step["provider"]["arguments"] = arguments
        if after:
            step["pauses"] = {"after": after}
        return step

    load = "chaosregistry.actions.load"
    auth = "chaosregistry.actions.auth"
    return {
        "version": "1.0.0",
        "title": f"A pull load under an auth fault, back-off {'on' if backoff else 'off'}",
        "description": "Locust users pull while the registry refuses their password.",
        "tags": ["load", "auth", "backoff"],
        "configuration": {"backend": "local", "chaosregistry": {}},
        "steady-state-hypothesis": {
            "title": "Pulls succeed",
            "probes": [
                {
                    "type": "probe",
                    "name": "pulls-succeed",
                    "tolerance": {"type": "range", "range": [1, 1], "target": "success_ratio"},
                    "provider": {
                        "type": "python",
                        "module": "chaosregistry.probes.pull",
                        "func": "pull_latency",
                        "arguments": {"image": "tiny/hello:latest", "count": 3},
                    },
                }
            ],
        },
        "method": [
            # Locust took about 5 s to its first pull on a loaded 2-core machine: the rest of
            # the 12 s is healthy load before the fault.
            action(
                "start-pull-load",
                load,
                "start_pull_load",
                after=12,
                users=USERS,
                spawn_rate=USERS,
                duration=60,
                images=["tiny/hello:latest"],
                backoff=backoff,
            ),
            action("swap-credentials", auth, "swap_credentials", after=FAULT_SECONDS, duration=60),
            action("restore-credentials", auth, "restore_credentials", after=5),
            action("stop-pull-load", load, "stop_pull_load"),
        ],
        "rollbacks": [
            action("restore", auth, "restore_credentials"),
            action("stop-load", load, "stop_pull_load"),
        ],
    }


def run(sandbox: SandboxInfo, base: Path, backoff: bool) -> tuple[dict[str, Any], Path]:
    path = base / "experiment.yaml"
    base.mkdir(parents=True)
    path.write_text(yaml.safe_dump(experiment(backoff), sort_keys=False))
    process, run_dir = run_shipped_experiment(sandbox.run_dir, base, "backoff", experiment=path)
    assert (run_dir / "summary.json").exists(), process.stdout + process.stderr
    (summary,) = json.loads((run_dir / "summary.json").read_text())["runs"]
    (load,) = summary["load_series"]
    return load, run_dir


def test_failing_nodes_back_off_and_the_report_shows_attempts_against_pulls(
    sandbox: SandboxInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHAOSREGISTRY_WATCHDOG_IDLE_EXIT", "1")
    with_backoff, run_dir = run(sandbox, tmp_path / "backoff", backoff=True)
    flood, _ = run(sandbox, tmp_path / "flood", backoff=False)

    rates = {
        name: {
            phase: (load[phase]["attempts_per_second"], load[phase]["pulls_per_second"])
            for phase in ("before", "during", "after")
        }
        for name, load in (("backoff", with_backoff), ("flood", flood))
    }
    print(f"attempts/s, successful pulls/s by phase: {json.dumps(rates)}")
    for load in (with_backoff, flood):
        # Healthy before the fault, every pull of the fault failing, healthy again after.
        assert load["before"]["completed"] > 0 and load["before"]["failed"] == 0, load
        assert load["during"]["failed"] > 0, load
        assert load["after"]["completed"] > 0, load
    during_backoff = with_backoff["during"]["attempts_per_second"]
    during_flood = flood["during"]["attempts_per_second"]
    assert during_flood >= MIN_RATIO * during_backoff, rates

    html = (run_dir / "report.html").read_text()
    assert "Load attempts and successful pulls per second" in html
    assert 'id="svg-load-rate-' in html
    assert "attempts/s / successful pulls/s" in (run_dir / "summary.md").read_text()


@pytest.mark.parametrize(
    ("flags", "line"),
    [
        (["--backoff", "sometimes"], "--backoff must be true or false, got 'sometimes'"),
        (["--backoff-cap", "0"], "--backoff-cap must be a positive number of seconds, got 0.0"),
        (
            ["--backoff-base", "2", "--backoff-cap", "1"],
            "--backoff-base (2 s) must not exceed --backoff-cap (1 s)",
        ),
    ],
)
def test_locust_refuses_a_bad_backoff_in_one_line_before_pulling(
    tmp_path: Path, flags: list[str], line: str
) -> None:
    argv = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", "1",
        "-r", "1", "-t", "1s", "--host", "https://127.0.0.1:1", "--images", "tiny/hello:latest",
        "--records-dir", str(tmp_path / "records"), *flags,
    ]  # fmt: skip
    process = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert process.returncode != 0
    assert process.stderr.strip().splitlines()[-1] == f"chaosregistry locustfile: {line}"
    assert "Traceback" not in process.stderr
    assert not (tmp_path / "records").exists()
