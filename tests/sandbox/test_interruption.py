"""SIGINT, SIGTERM and SIGKILL delivered to ``chaos run`` at random points never leave a fault.

Each trial runs a real ``chaos run`` of tests/data/interrupt-trial.yaml (three faults, a hold,
rollbacks; about 6 s) and signals its whole process group, as Ctrl-C or a CI timeout would, at
a random moment: before, during injection, during the hold or during the rollbacks. Afterwards
every toxic must be gone, every replica up and every ledger entry reverted (or never injected)
within the faults' duration plus 5 s.
"""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from support.sandbox import SandboxInfo

from chaosregistry.faults.ledger import Ledger
from chaosregistry.sandbox import status
from chaosregistry.sandbox.toxiproxy import Toxiproxy

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENT = ROOT / "tests/data/interrupt-trial.yaml"
FAULT_DURATION = 8.0
TRIALS = 24
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)


def leftovers(sandbox: SandboxInfo, ledger: Ledger) -> list[str]:
    found = []
    with Toxiproxy(sandbox.endpoints["toxiproxy"]) as api:
        for hop in ("client-registry", "client-mirror", "mirror-upstream"):
            if api.toxics(hop):
                found.append(f"toxic on {hop}")
            if not api.proxy(hop)["enabled"]:
                found.append(f"{hop} disabled")
    processes = status(sandbox.run_dir)["processes"]
    found += [f"{name} down" for name, p in processes.items() if not p["running"]]
    found += [f"ledger {e.id} {e.kind} {e.state}" for e in ledger.active()]
    return found


def test_random_interruptions_never_leave_a_fault(sandbox: SandboxInfo, tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("CHAOSREGISTRY_TRIAL_SEED", "20261128")))
    chaos = str(Path(sys.executable).with_name("chaos"))
    vars_file = tmp_path / "vars.yaml"
    vars_file.write_text("configuration:\n  backend: local\n")
    outcomes: list[dict[str, Any]] = []
    for trial in range(TRIALS):
        ledger_dir = tmp_path / f"ledger-{trial}"
        sig = SIGNALS[trial % len(SIGNALS)]
        delay = rng.uniform(0.2, 6.0)
        env = {
            **os.environ,
            "CHAOSREGISTRY_SANDBOX_DIR": str(sandbox.run_dir),
            "CHAOSREGISTRY_LEDGER_DIR": str(ledger_dir),
        }
        process = subprocess.Popen(
            [
                chaos,
                "--log-file",
                str(tmp_path / f"chaos-{trial}.log"),
                "run",
                "--rollback-strategy",
                "always",
                "--var-file",
                str(vars_file),
                "--journal-path",
                str(tmp_path / f"journal-{trial}.json"),
                str(EXPERIMENT),
            ],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        time.sleep(delay)  # the scenario: the signal lands at a random point of the run
        signalled = time.monotonic()
        finished_before = process.poll() is not None
        if not finished_before:
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        ledger = Ledger(ledger_dir)
        # Poll for no leftovers until the bound the safety net promises (expiry + 5 s).
        deadline = signalled + FAULT_DURATION + 5
        while (left := leftovers(sandbox, ledger)) and time.monotonic() < deadline:
            time.sleep(0.1)
        outcomes.append(
            {
                "trial": trial,
                "signal": sig.name,
                "delay": round(delay, 2),
                "finished_before": finished_before,
                "left": left,
                "clean_after": round(time.monotonic() - signalled, 2),
                "faults": [(e.kind, str(e.state), str(e.revert_reason)) for e in ledger.all()],
            }
        )
        assert left == [], outcomes[-1]
        assert all(e.state in ("reverted", "failed-to-inject") for e in ledger.all()), outcomes[-1]
    interrupted = [o for o in outcomes if not o["finished_before"]]
    # The trials must really interrupt runs, and at different stages.
    assert len(interrupted) >= 20
    # Signals landed before any fault and after the faults were in (often mid-injection too;
    # how often depends on the machine's speed, so it is printed rather than required).
    stages = {len(o["faults"]) for o in interrupted}
    assert len(stages) >= 2, stages
    print("\n".join(str(o) for o in outcomes))
