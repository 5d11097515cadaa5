"""The safety net on the local backend: a running sandbox's guardian keeps a watchdog alive for
every ledger with active faults, so SIGKILL of ``chaos run`` *and* its watchdog together (an OOM
kill, a container stop) still leaves no fault past its expiry (issue 12, item 9: <= 5 s, in 10
random trials); ``sandbox status`` shows a ledger whose faults have no watchdog.
"""

import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from support.faults import (
    OUTLIVES_AT_MOST,
    SETTLES_WITHIN,
    assert_watchdog_exits,
    reverted_by,
    wait_until,
)
from support.sandbox import SandboxInfo

from chaosregistry.actions import network
from chaosregistry.faults.ledger import FaultState, Ledger
from chaosregistry.faults.watchdog import watchdog_pid
from chaosregistry.sandbox.layout import Layout
from chaosregistry.sandbox.processes import running_pid, start_process, stop_process
from chaosregistry.sandbox.toxiproxy import Toxiproxy

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENT = ROOT / "tests/data/safety-net-trial.yaml"
CHAOS = str(Path(sys.executable).with_name("chaos"))
CHAOSREGISTRY = str(Path(sys.executable).with_name("chaosregistry"))
TRIALS = 10
HOP = "client-registry"


def toxics(sandbox: SandboxInfo) -> list[str]:
    with Toxiproxy(sandbox.endpoints["toxiproxy"]) as api:
        return [toxic["name"] for toxic in api.toxics(HOP)]


def settled(ledger: Ledger) -> bool:
    return all(
        entry.state in (FaultState.REVERTED, FaultState.FAILED_TO_INJECT) for entry in ledger.all()
    )


def test_sigkill_of_chaos_run_and_its_watchdog_leaves_no_fault_past_expiry(
    sandbox: SandboxInfo, tmp_path: Path
) -> None:
    rng = random.Random(int(os.environ.get("CHAOSREGISTRY_TRIAL_SEED", time.time_ns())))
    outcomes: list[dict[str, Any]] = []
    for trial in range(TRIALS):
        ledger_dir = tmp_path / f"ledger-{trial}"
        ledger = Ledger(ledger_dir)
        env = {
            **os.environ,
            "CHAOSREGISTRY_SANDBOX_DIR": str(sandbox.run_dir),
            "CHAOSREGISTRY_LEDGER_DIR": str(ledger_dir),
        }
        started = time.monotonic()
        chaos = subprocess.Popen(
            [
                CHAOS,
                "--log-file",
                str(tmp_path / f"chaos-{trial}.log"),
                "run",
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
        try:
            # Every fifth kill lands anywhere in the run's first seconds (often before the fault
            # exists, or while it is being recorded); the others while the fault is in.
            if trial % 5 == 0:
                time.sleep(rng.uniform(0.3, 3.0))
            else:
                wait_until(
                    lambda ledger=ledger: any(e.state == FaultState.INJECTED for e in ledger.all()),
                    timeout=30,
                    what=f"trial {trial}: the fault injected",
                )
                time.sleep(rng.uniform(0.0, 3.5))
            watchdog = watchdog_pid(ledger_dir)
            os.killpg(chaos.pid, signal.SIGKILL)
            if watchdog is not None:
                os.kill(watchdog, signal.SIGKILL)
            killed_at = time.time()
            active_at_kill = [e.id for e in ledger.active()]
        finally:
            if chaos.poll() is None:
                os.killpg(chaos.pid, signal.SIGKILL)
            chaos.wait(timeout=30)
        expires = max((e.expires_at for e in ledger.all()), default=killed_at)
        deadline = max(expires, killed_at) + OUTLIVES_AT_MOST + 5
        while (toxics(sandbox) or not settled(ledger)) and time.time() < deadline:
            time.sleep(0.05)
        cleared_at = time.time()
        entries = ledger.all()
        outcome = {
            "trial": trial,
            "kill_after": round(time.monotonic() - started, 2),
            "watchdog_killed": watchdog is not None,
            "active_at_kill": len(active_at_kill),
            "toxics_left": toxics(sandbox),
            "states": [f"{e.state}/{e.revert_reason}" for e in entries],
            # Negative: reverted before its expiry (the owner was dead, so at once).
            "outlived_expiry": round(cleared_at - expires, 2) if entries else None,
            "cleared_after_kill": round(cleared_at - killed_at, 2),
        }
        outcomes.append(outcome)
        assert outcome["toxics_left"] == [], outcome
        assert settled(ledger), outcome
        if entries:
            assert cleared_at - expires <= OUTLIVES_AT_MOST, outcome
        if watchdog is not None and active_at_kill:
            # Reverted by a watchdog started after the kill: only a guardian was left to start
            # one (the session sandbox's, or another sandbox's watching the same index).
            for entry_id in active_at_kill:
                assert reverted_by(ledger_dir, entry_id) not in (None, watchdog), outcome
    print("\n" + "\n".join(json.dumps(o) for o in outcomes))
    # The trials must really take the watchdog down with chaos run while a fault is active.
    both = [o for o in outcomes if o["watchdog_killed"] and o["active_at_kill"]]
    assert len(both) >= TRIALS // 2, outcomes
    worst = max(o["cleared_after_kill"] for o in both)
    print(f"{len(both)} trials killed both with a fault active; cleared at most {worst}s after")


def test_the_guardian_starts_a_killed_watchdog_again_and_status_shows_unwatched_faults(
    sandbox: SandboxInfo, tmp_path: Path
) -> None:
    ledger_dir = tmp_path / "ledger"
    configuration = {"sandbox_dir": str(sandbox.run_dir), "ledger_dir": str(ledger_dir)}
    fault = network.add_latency(hop=HOP, latency_ms=50, duration=120, configuration=configuration)
    restarts = []
    try:
        for _ in range(5):
            old = watchdog_pid(ledger_dir)
            assert old is not None
            os.kill(old, signal.SIGKILL)
            restarts.append(
                wait_until(
                    lambda old=old: watchdog_pid(ledger_dir) not in (None, old),
                    timeout=SETTLES_WITHIN,
                    what="the guardian to start a watchdog again",
                )
            )
        print(f"\nwatchdog running again after (s): {[round(t, 3) for t in restarts]}")
        # The bound is a second; under a loaded CI machine allow twice that for the
        # typical restart (the median of five). One restart can meet a moment when the suite
        # keeps both cores busy (a new Python process imports the watchdog): it is bounded by
        # the poll above, the suite's SETTLES_WITHIN.
        assert statistics.median(restarts) <= 2.0, restarts

        status = json.loads(
            subprocess.run(
                [CHAOSREGISTRY, "sandbox", "status", "--json", "--run-dir", str(sandbox.run_dir)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        mine = [item for item in status["faults"] if item["ledger"] == str(ledger_dir)]
        assert mine == [
            {
                "ledger": str(ledger_dir),
                "active": 1,
                "expired": 0,
                "watchdog": watchdog_pid(ledger_dir),
            }
        ]

        # Without a guardian, a killed watchdog stays dead, and status says so.
        stop_process(sandbox.run_dir, "guardian")
        pid = watchdog_pid(ledger_dir)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        wait_until(
            lambda: watchdog_pid(ledger_dir) is None,
            timeout=SETTLES_WITHIN,
            what="the watchdog gone",
        )
        # The claim is an absence, which no poll can wait for: nothing starts a watchdog again.
        # A running guardian (this sandbox's, or another's on the same index) would have done
        # it within the restart times measured above; the test watches that long, and longer.
        time.sleep(max(1.0, 2 * max(restarts)))
        assert watchdog_pid(ledger_dir) is None
        text = subprocess.run(
            [CHAOSREGISTRY, "sandbox", "status", "--run-dir", str(sandbox.run_dir)],
            capture_output=True,
            text=True,
        ).stdout
        assert f"faults: 1 active in {ledger_dir} (NO WATCHDOG)" in text, text
        assert toxics(sandbox) == [fault["applied"]["toxic"]["name"]]
    finally:
        if running_pid(Layout.at(sandbox.run_dir), "guardian") is None:
            start_process(sandbox.run_dir, "guardian")
    wait_until(
        lambda: watchdog_pid(ledger_dir) is not None,
        timeout=SETTLES_WITHIN,
        what="a watchdog again",
    )
    network.remove_network_faults(configuration=configuration)
    assert toxics(sandbox) == []
    assert [e.state for e in Ledger(ledger_dir).all()] == [FaultState.REVERTED]
    assert_watchdog_exits(ledger_dir)
