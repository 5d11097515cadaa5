"""The sandbox's second site against its real parts, on each registry implementation: the DR
registry (HTTPS), regsync through the sync-dr Toxiproxy hop, the event receiver fed by the
registries' own notifications, the probes, and ``experiments/replication-partition.yaml`` under
the real ``chaos run`` (passes with the heal; deviates with a budget below the measured lag; its
partition is reverted after SIGKILL of ``chaos run`` and on expiry)."""

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from support.faults import SETTLES_WITHIN, SHORT_FAULT, wait_until
from support.gameday import assert_held
from support.sandbox import SandboxInfo, running_sandbox

from chaosregistry.actions import network
from chaosregistry.errors import ConfigError
from chaosregistry.experiment.settings import resolve_target
from chaosregistry.faults.ledger import FaultState, Ledger, RevertReason
from chaosregistry.probes.replication import push_events, replication_lag
from chaosregistry.sandbox import status, up
from chaosregistry.sandbox.implementations import IMPLEMENTATION_NAMES
from chaosregistry.sandbox.layout import HOP_SYNC_DR, SECOND_SITE_PROCESS_NAMES
from chaosregistry.sandbox.toxiproxy import Toxiproxy

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENT = ROOT / "experiments/replication-partition.yaml"
LOCAL_VARS = ROOT / "experiments/vars/local.yaml"
CHAOS = str(Path(sys.executable).with_name("chaos"))
CHAOSREGISTRY = str(Path(sys.executable).with_name("chaosregistry"))


@pytest.fixture(scope="module", params=IMPLEMENTATION_NAMES)
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SandboxInfo]:
    """A sandbox with its second site, replicas running one implementation (not seeded: the
    probes push their own images); always torn down."""
    name = str(request.param)
    with running_sandbox(
        tmp_path_factory.mktemp(f"second-site-{name}"),
        label=f"sandbox[{name}]",
        implementation=name,
        second_site=True,
        seed_content=False,
    ) as running:
        yield running


def config(site: SandboxInfo, tmp_path: Path) -> dict[str, Any]:
    return {"sandbox_dir": str(site.run_dir), "ledger_dir": str(tmp_path / "ledger")}


def sync_toxics(site: SandboxInfo) -> list[str]:
    with Toxiproxy(site.endpoints["toxiproxy"]) as api:
        return [toxic["name"] for toxic in api.toxics(HOP_SYNC_DR)]


def dr_digest(site: SandboxInfo, image: str) -> str:
    """What the DR registry serves for ``repository:tag``, asked directly over HTTPS."""
    repository, tag = image.rsplit(":", 1)
    target = resolve_target({"sandbox_dir": str(site.run_dir)}, None, target="dr_registry")
    assert target.url.startswith("https://")
    with target.client() as client:
        return client.get_manifest(repository, tag).digest


def test_up_runs_the_dr_registry_over_https_and_regsync_behind_its_hop(
    site: SandboxInfo,
) -> None:
    processes = status(site.run_dir)["processes"]
    for name in SECOND_SITE_PROCESS_NAMES:
        assert processes[name]["running"], name
    endpoints = site.endpoints
    with httpx.Client(verify=site.tls, trust_env=False, timeout=5) as client:
        assert client.get(endpoints["dr_registry"] + "/v2/").status_code == 401
        answer = client.get(endpoints["dr_registry"] + "/v2/", auth=site.auth)
        assert answer.status_code == 200
    with Toxiproxy(endpoints["toxiproxy"]) as api:
        proxy = api.proxies()[HOP_SYNC_DR]
    port = endpoints["dr_registry"].rsplit(":", 1)[1]
    assert proxy["upstream"] == f"127.0.0.1:{port}"
    assert proxy["listen"] == endpoints["hops"][HOP_SYNC_DR]["listen"]
    # A sandbox with the second site is not turned into one without it while it runs.
    with pytest.raises(ConfigError, match="runs a sandbox with the second site"):
        up(site.run_dir, base_port=endpoints["base_port"], second_site=False)


def test_replication_lag_sees_the_replica_serve_the_pushed_digest(
    site: SandboxInfo, tmp_path: Path
) -> None:
    result = replication_lag(configuration=config(site, tmp_path))
    assert result["replicated"], result
    assert result["error"] is None
    assert result["source"] == site.endpoints["replication_source"]
    assert result["replica"] == site.endpoints["dr_registry"]
    assert dr_digest(site, result["image"]) == result["digest"]
    assert result["lag_seconds"] > 0
    if site.endpoints["implementation"] == "ggcr":
        assert (result["lag_from"], result["events_supported"]) == ("push", False)
        assert result["event"] is None and "go-containerregistry" in result["note"]
    else:
        assert (result["lag_from"], result["events_supported"]) == ("event", True)
        event = result["event"]
        repository, tag = result["image"].rsplit(":", 1)
        assert (event["action"], event["repository"], event["tag"], event["digest"]) == (
            "push",
            repository,
            tag,
            result["digest"],
        )
        assert event["registry"] in ("registry-1", "registry-2")
        # The lag counts from the registry's event timestamp, which is inside the push (one
        # clock: the registry's and ours are the machine's).
        assert result["event_delay_seconds"] >= 0
        event_in_push = result["push_to_event_seconds"] - result["event_delay_seconds"]
        assert 0 <= event_in_push <= result["push_seconds"] + 0.001


def test_push_events_reports_the_primarys_pushes_and_the_dr_sites_copies(
    site: SandboxInfo, tmp_path: Path
) -> None:
    configuration = config(site, tmp_path)
    pushed = replication_lag(configuration=configuration)
    assert pushed["replicated"], pushed
    repository, tag = pushed["image"].rsplit(":", 1)

    def recorded() -> dict[str, str]:
        result = push_events(repository=repository, configuration=configuration)
        return {
            e["registry"]: e["digest"]
            for e in result["last"]
            if e["tag"] == tag and e["digest"] == pushed["digest"]
        }

    # regsync's copy to the DR registry is announced by the DR registry itself (Distribution
    # whatever the replicas run); its event may come a moment after the manifest is served.
    wait_until(lambda: "registry-dr" in recorded(), timeout=10, what="registry-dr's event")
    result = push_events(repository=repository, configuration=configuration)
    primary = set(recorded()) - {"registry-dr"}
    if site.endpoints["implementation"] == "ggcr":
        assert result["supported"] is False and "go-containerregistry" in result["note"]
        assert primary == set()
    else:
        assert result["supported"] is True
        assert len(primary) == 1
    assert result["delivery_seconds"]["min"] >= 0
    # Pulls are never recorded (Distribution 2.8 sends them despite ignore.actions).
    lines = Path(site.endpoints["events_file"]).read_text().splitlines()
    assert lines and all(json.loads(line)["action"] != "pull" for line in lines)


def run_experiment(
    site: SandboxInfo,
    base: Path,
    experiment: Path = EXPERIMENT,
    *extra: str,
    wait: bool = True,
) -> subprocess.Popen[str] | dict[str, Any]:
    """``chaos run`` of ``experiment`` on the site with its own ledger; the journal when
    ``wait``, else the running process (its own session, so the test can kill its group)."""
    base.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "CHAOSREGISTRY_SANDBOX_DIR": str(site.run_dir),
        "CHAOSREGISTRY_LEDGER_DIR": str(base / "ledger"),
    }
    argv = [
        CHAOS,
        "--log-file",
        str(base / "chaos.log"),
        "run",
        "--journal-path",
        str(base / "journal.json"),
        "--var-file",
        str(LOCAL_VARS),
        *extra,
        str(experiment),
    ]
    process = subprocess.Popen(
        argv,
        env=env,
        cwd=base,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    if not wait:
        return process
    process.wait(timeout=240)
    journal: dict[str, Any] = json.loads((base / "journal.json").read_text())
    return journal


def step(journal: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(r for r in journal["run"] if r["activity"]["name"] == name)
    return found


def lag_after(journal: dict[str, Any]) -> dict[str, Any]:
    output: dict[str, Any] = journal["steady_states"]["after"]["probes"][0]["output"]
    return output


def test_replication_partition_passes_with_the_heal(site: SandboxInfo, tmp_path: Path) -> None:
    journal = run_experiment(site, tmp_path)
    assert isinstance(journal, dict)
    assert_held(journal)
    before = journal["steady_states"]["before"]
    assert before["probes"][0]["output"]["replicated"]
    # During the cut, a push did not reach the DR site.
    during = step(journal, "push-during-partition")["output"]
    assert during["replicated"] is False and during["lag_seconds"] is None
    assert during["waited_seconds"] >= 4
    # After the heal, a new push replicates within the budget (the tolerance, 10 s).
    after = lag_after(journal)
    assert journal["steady_states"]["after"]["steady_state_met"]
    assert after["replicated"] and 0 < after["lag_seconds"] <= 10
    expected_from = "push" if site.endpoints["implementation"] == "ggcr" else "event"
    assert after["lag_from"] == expected_from
    print(
        f"\n{site.endpoints['implementation']}: lag before "
        f"{before['probes'][0]['output']['lag_seconds']:.2f} s, after the heal "
        f"{after['lag_seconds']:.2f} s (from {after['lag_from']}; event delay "
        f"{after['event_delay_seconds']}), during: not replicated after "
        f"{during['waited_seconds']:.2f} s"
    )
    # The partition went through the ledger and is gone, verified.
    (entry,) = Ledger(tmp_path / "ledger").all()
    assert (entry.kind, entry.target, entry.state) == (
        "network.partition",
        f"hop:{HOP_SYNC_DR}",
        FaultState.REVERTED,
    )
    assert sync_toxics(site) == []
    # The push made during the cut reached the DR site once it healed.
    wait_until(
        lambda: dr_digest_or_none(site, during["image"]) == during["digest"],
        timeout=30,
        what="the push made during the partition on the DR site",
    )


def dr_digest_or_none(site: SandboxInfo, image: str) -> str | None:
    try:
        return dr_digest(site, image)
    except Exception:
        return None


def test_a_budget_below_the_measured_lag_deviates(site: SandboxInfo, tmp_path: Path) -> None:
    budget = 0.01
    variant = yaml.safe_load(EXPERIMENT.read_text())
    (probe,) = variant["steady-state-hypothesis"]["probes"]
    probe["tolerance"]["range"] = [0, budget]
    path = tmp_path / "replication-partition-tight.yaml"
    path.write_text(yaml.safe_dump(variant, sort_keys=False))
    # The hypothesis after the method only: before it, a budget this tight would stop the run
    # as "failed" (steady state not met), never reaching the heal whose lag it should judge.
    journal = run_experiment(site, tmp_path, path, "--hypothesis-strategy", "after-method-only")
    assert isinstance(journal, dict)
    after = lag_after(journal)
    assert after["replicated"] and after["lag_seconds"] > budget
    print(f"\nbudget {budget} s, measured lag {after['lag_seconds']:.2f} s: deviated")
    assert journal["deviated"] is True
    assert journal["steady_states"]["after"]["steady_state_met"] is False
    assert sync_toxics(site) == []


def test_sigkill_of_chaos_run_reverts_the_sync_partition(site: SandboxInfo, tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger")
    long_fault = ("--var", "fault_duration:int=300")
    process = run_experiment(site, tmp_path, EXPERIMENT, *long_fault, wait=False)
    assert isinstance(process, subprocess.Popen)
    try:
        wait_until(
            lambda: any(e.state == FaultState.INJECTED for e in ledger.all()),
            timeout=60,
            what="the partition injected",
        )
        assert len(sync_toxics(site)) == 1
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    # Long before its 300 s expiry: the watchdog sees its owner gone.
    wait_until(
        lambda: (
            sync_toxics(site) == [] and all(e.state == FaultState.REVERTED for e in ledger.all())
        ),
        timeout=30,
        what="the partition reverted after SIGKILL",
    )
    (entry,) = ledger.all()
    assert entry.target == f"hop:{HOP_SYNC_DR}"
    assert entry.revert_reason == RevertReason.OWNER_GONE
    assert replication_lag(within=30, configuration=config(site, tmp_path))["replicated"]


def test_the_watchdog_heals_the_sync_partition_on_expiry(site: SandboxInfo, tmp_path: Path) -> None:
    configuration = config(site, tmp_path)
    fault = network.partition(hop=HOP_SYNC_DR, duration=SHORT_FAULT, configuration=configuration)
    assert sync_toxics(site) == [fault["applied"]["toxic"]["name"]]
    cut = replication_lag(within=1, configuration=configuration)
    assert cut["replicated"] is False
    ledger = Ledger(tmp_path / "ledger")
    wait_until(lambda: sync_toxics(site) == [], timeout=30, what="the partition expired")
    wait_until(
        lambda: [e.state for e in ledger.all()] == [FaultState.REVERTED],
        timeout=SETTLES_WITHIN,
        what="the entry marked reverted",
    )
    (entry,) = ledger.all()
    assert entry.revert_reason == RevertReason.EXPIRED
    wait_until(
        lambda: dr_digest_or_none(site, cut["image"]) == cut["digest"],
        timeout=30,
        what="the push made during the partition on the DR site",
    )


def test_sandbox_up_second_site_from_the_command_line_says_where_the_dr_site_is(
    site: SandboxInfo,
) -> None:
    answer = subprocess.run(
        [
            CHAOSREGISTRY,
            "sandbox",
            "up",
            "--run-dir",
            str(site.run_dir),
            "--second-site",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CHAOSREGISTRY_SANDBOX_DIR": ""},
    )
    assert answer.returncode == 0, answer.stderr
    assert f"dr        {site.endpoints['dr_registry']}" in answer.stdout
    assert "sync-dr" in answer.stdout
    refused = subprocess.run(
        [CHAOSREGISTRY, "sandbox", "up", "--run-dir", str(site.run_dir), "--no-second-site"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0
    assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
    assert "runs a sandbox with the second site" in refused.stderr
