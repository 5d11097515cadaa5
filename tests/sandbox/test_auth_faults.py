"""Auth faults on the real sandbox, on every registry implementation it runs: the token server
down or slow (its Toxiproxy hop), the token registry trusting another signing key, the
registry's htpasswd swapped. Each is applied for real (pulls fail the way the table says),
reverted and verified by authenticating, reverted by the watchdog at expiry and after SIGKILL
of its owner; bad input changes nothing; the token-server-outage experiment runs under
``chaosregistry gameday`` (the real ``chaos run``) and its journal is checked."""

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from chaoslib.exceptions import ActivityFailed
from support.faults import (
    WATCHDOG_IDLE_EXIT,
    assert_refused_before_recording,
    assert_reverted_at_expiry,
    assert_watchdog_exits,
    own_ledger,
)
from support.gameday import PACED_LOAD, assert_held, assert_passed, run_shipped_experiment
from support.polling import eventually
from support.sandbox import SandboxInfo, running_sandbox

from chaosregistry.actions import auth
from chaosregistry.faults.ledger import FaultState, Ledger
from chaosregistry.oci import RegistryClient
from chaosregistry.oci.auth import Credentials
from chaosregistry.oci.pull import pull
from chaosregistry.oci.reference import ImageReference
from chaosregistry.probes import pull as pull_probes
from chaosregistry.sandbox import (
    load_credentials,
    start_process,
    stop_process,
)
from chaosregistry.sandbox.credentials import htpasswd_accepts
from chaosregistry.sandbox.implementations import IMPLEMENTATION_NAMES
from chaosregistry.sandbox.layout import Layout
from chaosregistry.sandbox.processes import process_status
from chaosregistry.sandbox.toxiproxy import Toxiproxy

IMAGE = "tiny/hello:latest"
HOP = "token-server"
CHAOSREGISTRY = str(Path(sys.executable).with_name("chaosregistry"))


@pytest.fixture(scope="module", params=IMPLEMENTATION_NAMES)
def running(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SandboxInfo]:
    """A seeded sandbox whose replicas run one implementation; always torn down."""
    name = str(request.param)
    with running_sandbox(
        tmp_path_factory.mktemp(f"auth-{name}"), label=f"sandbox[{name}]", implementation=name
    ) as running:
        yield running


def token_path_clean(sandbox: SandboxInfo) -> bool:
    with Toxiproxy(sandbox.endpoints["toxiproxy"]) as api:
        proxy = api.proxy(HOP)
    return proxy["enabled"] is True and proxy["toxics"] == []


def trusted_bundle(sandbox: SandboxInfo) -> str:
    config = yaml.safe_load(Layout.at(sandbox.run_dir).config_file("registry-token").read_text())
    return str(config["auth"]["token"]["rootcertbundle"])


def credentials_in_place(sandbox: SandboxInfo) -> bool:
    layout = Layout.at(sandbox.run_dir)
    return htpasswd_accepts(layout.htpasswd_file, load_credentials(sandbox.run_dir))


def rotated_files(sandbox: SandboxInfo) -> list[str]:
    return sorted(p.name for p in Layout.at(sandbox.run_dir).secrets_dir.glob("token-rotated-*"))


def assert_auth_as_before(sandbox: SandboxInfo) -> None:
    assert token_path_clean(sandbox)
    assert trusted_bundle(sandbox) == str(Layout.at(sandbox.run_dir).token_cert_file)
    assert credentials_in_place(sandbox)
    assert rotated_files(sandbox) == []


@pytest.fixture
def configuration(
    running: SandboxInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    """A ledger of its own; afterwards every auth fault is gone and the watchdog has exited."""
    with own_ledger(running.run_dir, tmp_path, monkeypatch) as config:
        yield config
        auth.restore_token_server(configuration=config)
        auth.restore_token_key(configuration=config)
        auth.restore_credentials(configuration=config)
        assert_auth_as_before(running)


def pull_error(configuration: dict[str, Any], target: str) -> dict[str, Any] | None:
    result = pull_probes.pull_image(IMAGE, target=target, configuration=configuration)
    error: dict[str, Any] | None = result["error"]
    assert result["ok"] is (error is None)
    return error


def cached_client(sandbox: SandboxInfo) -> RegistryClient:
    """A client of the token registry that has pulled once: it holds a token."""
    client = RegistryClient(
        sandbox.endpoints["token_registry"],
        credentials=Credentials(sandbox.username, sandbox.password),
        verify=sandbox.ca_file,
    )
    first = pull(client, ImageReference.parse(IMAGE))
    assert first.ok and client.tokens.fetched == 1
    return client


# -- each fault, applied and reverted ----------------------------------------------------------
def test_token_server_down_fails_new_tokens_while_cached_ones_keep_working(
    running: SandboxInfo, configuration: dict[str, Any]
) -> None:
    assert pull_error(configuration, "token_registry") is None
    with cached_client(running) as holder:
        fault = auth.token_server_outage(mode="down", duration=30, configuration=configuration)
        assert fault["kind"] == "auth.token-server-down" and fault["target"] == "auth:token-server"
        assert fault["applied"]["enabled"] is False and not token_path_clean(running)
        fresh = pull_error(configuration, "token_registry")
        assert fresh is not None and fresh["class"] == "auth-unavailable"
        assert "token request" in fresh["message"]
        # The registry checks a token itself: the holder never needs the token server.
        during = pull(holder, ImageReference.parse(IMAGE))
        assert during.ok and holder.tokens.fetched == 1
        # Basic auth (the registry behind nginx) does not use the token server.
        assert pull_error(configuration, "registry") is None

        undone = auth.restore_token_server(configuration=configuration)
    assert undone["count"] == 1 and undone["reverted"][0]["state"] == "reverted"
    assert token_path_clean(running)
    assert pull_error(configuration, "token_registry") is None
    assert auth.restore_token_server(configuration=configuration)["count"] == 0


def test_token_server_slow_delays_each_new_token_and_pulls_still_succeed(
    running: SandboxInfo, configuration: dict[str, Any]
) -> None:
    fault = auth.token_server_outage(
        mode="slow", latency_ms=1500, duration=30, configuration=configuration
    )
    assert fault["kind"] == "auth.token-server-slow"
    assert fault["parameters"]["latency_ms"] == 1500
    with Toxiproxy(running.endpoints["toxiproxy"]) as api:
        toxics = api.toxics(HOP)
    assert [t["name"] for t in toxics] == [fault["applied"]["toxic"]]
    assert toxics[0]["type"] == "latency" and toxics[0]["attributes"]["latency"] == 1500
    result = pull_probes.pull_image(IMAGE, target="token_registry", configuration=configuration)
    # The token's round trip crosses the delayed hop: the auth phase holds at least the delay.
    assert result["ok"] and result["timings"]["auth"] >= 1.5
    auth.restore_token_server(configuration=configuration)
    assert token_path_clean(running)


def test_a_rotated_token_key_refuses_cached_and_fresh_tokens_until_restored(
    running: SandboxInfo, configuration: dict[str, Any]
) -> None:
    original = trusted_bundle(running)
    with cached_client(running) as holder:
        fault = auth.rotate_token_key(duration=30, configuration=configuration)
        assert fault["kind"] == "auth.token-key-rotated"
        assert fault["target"] == "auth:registry-token"
        assert trusted_bundle(running) != original
        assert rotated_files(running) == [fault["applied"]["trusted"]]
        fresh = pull_error(configuration, "token_registry")
        assert fresh is not None and fresh["class"] == "auth" and fresh["status"] == 401
        held = pull(holder, ImageReference.parse(IMAGE))
        assert held.error is not None and str(held.error.error_class) == "auth"
        # Dropped and fetched again once (the protocol's retry), refused all the same.
        assert holder.tokens.fetched == 2
        assert pull_error(configuration, "registry") is None

        undone = auth.restore_token_key(configuration=configuration)
        assert undone["count"] == 1 and undone["reverted"][0]["state"] == "reverted"
        assert trusted_bundle(running) == original and rotated_files(running) == []
        assert pull(holder, ImageReference.parse(IMAGE)).ok
    assert pull_error(configuration, "token_registry") is None


def test_swapped_credentials_refuse_basic_auth_until_restored(
    running: SandboxInfo, configuration: dict[str, Any]
) -> None:
    assert pull_error(configuration, "registry") is None
    fault = auth.swap_credentials(duration=30, configuration=configuration)
    assert fault["kind"] == "auth.credentials-swapped" and fault["target"] == "auth:registry"
    assert not credentials_in_place(running)
    for target in ("registry", "registry_direct"):
        error = pull_error(configuration, target)
        assert error is not None and error["class"] == "auth" and error["status"] == 401
    # The token server keeps its own credentials: bearer pulls are untouched.
    assert pull_error(configuration, "token_registry") is None
    # Nothing the fault did puts a password in what it returns (and so in a journal).
    assert running.password not in json.dumps(fault)

    undone = auth.restore_credentials(configuration=configuration)
    assert undone["count"] == 1 and undone["reverted"][0]["state"] == "reverted"
    assert credentials_in_place(running)
    assert pull_error(configuration, "registry") is None


# -- the watchdog ------------------------------------------------------------------------------
def test_the_watchdog_restores_the_token_key_at_expiry(
    running: SandboxInfo, configuration: dict[str, Any]
) -> None:
    fault = auth.rotate_token_key(duration=2, configuration=configuration)
    assert_reverted_at_expiry(configuration["ledger_dir"], fault["fault_id"], timeout=2 + 20)
    assert pull_error(configuration, "token_registry") is None


OWNER = r"""
import json, sys
from chaosregistry.actions import auth
config = json.loads(sys.argv[1])
ids = [auth.swap_credentials(duration=120, configuration=config)["fault_id"],
       auth.token_server_outage(mode="down", duration=120, configuration=config)["fault_id"]]
print(" ".join(ids), flush=True)
sys.stdin.read()
"""


def test_the_watchdog_restores_credentials_and_token_server_when_the_owner_is_sigkilled(
    running: SandboxInfo, configuration: dict[str, Any]
) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, json.dumps(configuration)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert owner.stdout is not None
        fault_ids = owner.stdout.readline().split()
        assert len(fault_ids) == 2
        assert not credentials_in_place(running) and not token_path_clean(running)
        error = pull_error(configuration, "registry")
        assert error is not None and error["class"] == "auth"
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait(timeout=10)
        ledger = Ledger(configuration["ledger_dir"])
        # Well inside the 120 s duration: the owner's death, not the expiry, ends them.
        eventually(
            "both faults reverted",
            lambda: all(ledger.get(i).state is FaultState.REVERTED for i in fault_ids),
            timeout=30,
        )
        assert [ledger.get(i).revert_reason for i in fault_ids] == ["owner-gone"] * 2
        assert credentials_in_place(running) and token_path_clean(running)
        assert pull_error(configuration, "registry") is None
        assert pull_error(configuration, "token_registry") is None
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
        for stream in (owner.stdin, owner.stdout):
            if stream is not None:
                stream.close()


def test_an_undo_restores_the_files_of_a_stopped_piece_and_never_starts_it(
    running: SandboxInfo, configuration: dict[str, Any]
) -> None:
    auth.rotate_token_key(duration=60, configuration=configuration)
    stop_process(running.run_dir, "registry-token")
    try:
        assert auth.restore_token_key(configuration=configuration)["count"] == 1
        assert trusted_bundle(running) == str(Layout.at(running.run_dir).token_cert_file)
        assert rotated_files(running) == []
        assert process_status(Layout.at(running.run_dir))["registry-token"]["running"] is False
    finally:
        start_process(running.run_dir, "registry-token")
    # Started again, it reads the restored configuration: tokens are accepted.
    assert pull_error(configuration, "token_registry") is None


def test_chaosregistry_rollback_restores_the_token_key(
    running: SandboxInfo, configuration: dict[str, Any]
) -> None:
    fault = auth.rotate_token_key(duration=60, configuration=configuration)
    done = subprocess.run(
        [CHAOSREGISTRY, "rollback", "--ledger-dir", configuration["ledger_dir"]],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert fault["fault_id"] in done.stdout
    assert trusted_bundle(running) == str(Layout.at(running.run_dir).token_cert_file)
    entry = Ledger(configuration["ledger_dir"]).get(fault["fault_id"])
    assert entry.state is FaultState.REVERTED and entry.revert_reason == "manual"
    assert pull_error(configuration, "token_registry") is None


# -- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("action", "arguments", "fragment"),
    [
        ("token_server_outage", {"mode": "off"}, "mode must be one of"),
        ("token_server_outage", {"mode": "slow", "latency_ms": 0}, "latency_ms"),
        ("token_server_outage", {"duration": 0}, "duration"),
        ("token_server_outage", {"duration": -5}, "duration"),
        ("token_server_outage", {"duration": 7200}, "limit"),
        (
            "token_server_outage",
            {"configuration": {"allowed_hops": ["client-registry"]}},
            "blast radius",
        ),
        ("token_server_outage", {"configuration": {"backend": "kubernetes"}}, "kubernetes"),
        ("rotate_token_key", {"target": "registry-9"}, "target must be one of token-registry"),
        ("rotate_token_key", {"duration": 0}, "duration"),
        ("swap_credentials", {"target": "mirror"}, "unknown credentials target"),
        ("swap_credentials", {"target": ""}, "target must name"),
        ("swap_credentials", {"duration": None}, "duration"),
        ("swap_credentials", {"configuration": {"backend": "kubernetes"}}, "kubernetes"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(
    running: SandboxInfo,
    configuration: dict[str, Any],
    action: str,
    arguments: dict[str, Any],
    fragment: str,
) -> None:
    arguments = dict(arguments)  # the parameter's dict is shared by every implementation's run
    extra = arguments.pop("configuration", {})
    assert_refused_before_recording(
        lambda: getattr(auth, action)(
            **{"duration": 30, **arguments}, configuration={**configuration, **extra}
        ),
        fragment,
        configuration["ledger_dir"],
    )
    assert_auth_as_before(running)


def test_a_second_fault_of_a_kind_and_a_second_on_the_token_path_are_refused(
    running: SandboxInfo, configuration: dict[str, Any]
) -> None:
    first = auth.swap_credentials(duration=30, configuration=configuration)
    with pytest.raises(ActivityFailed, match="already active"):
        auth.swap_credentials(duration=30, configuration=configuration)
    # Credentials (basic) and the token path are apart: an outage goes on beside the swap.
    outage = auth.token_server_outage(mode="down", duration=30, configuration=configuration)
    for mode in ("down", "slow"):
        with pytest.raises(ActivityFailed, match="already active on the token-server hop"):
            auth.token_server_outage(mode=mode, duration=30, configuration=configuration)
    with pytest.raises(ActivityFailed, match="already active on the token-server hop"):
        auth.rotate_token_key(duration=30, configuration=configuration)
    assert auth.restore_token_server(configuration=configuration)["count"] == 1
    key = auth.rotate_token_key(duration=30, configuration=configuration)
    with pytest.raises(ActivityFailed, match="token-key fault is already active"):
        auth.rotate_token_key(duration=30, configuration=configuration)
    with pytest.raises(ActivityFailed, match="token-key fault is already active"):
        auth.token_server_outage(mode="slow", duration=30, configuration=configuration)
    active = {e.id for e in Ledger(configuration["ledger_dir"]).active()}
    assert active == {first["fault_id"], key["fault_id"]}
    assert outage["fault_id"] not in active


# -- the experiment ----------------------------------------------------------------------------
def test_token_server_outage_experiment(
    running: SandboxInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHAOSREGISTRY_WATCHDOG_IDLE_EXIT", str(WATCHDOG_IDLE_EXIT))
    process, run_dir = run_shipped_experiment(
        running.run_dir,
        tmp_path,
        "token-server-outage",
        load_seconds=40,
        load_pull_interval=PACED_LOAD,
    )
    journal = json.loads((run_dir / "journal.json").read_text())
    outputs = {r["activity"]["name"]: r["output"] for r in journal["run"]}
    assert_held(journal)
    before = outputs["load-before-outage"]
    assert before["pulls"] > 0 and before["failed"] == 0, before
    # The fresh client needed the token server and got nothing from it.
    fresh = outputs["fresh-token-pull-during-outage"]["error"]
    assert fresh["class"] == "auth-unavailable"
    # The load's users held tokens from before the outage and kept pulling with them.
    during = outputs["cached-token-load-during-outage"]
    assert during["pulls"] > 0 and during["failed"] == 0, during
    recovery = outputs["fresh-token-pull-recovery"]
    assert recovery["recovered"] is True and recovery["attempts"] == 1
    after = outputs["load-after-outage"]
    assert after["pulls"] > 0 and after["failed"] == 0
    assert_passed(process.returncode, run_dir)
    entries = Ledger(tmp_path / "ledger").all()
    assert "auth.token-server-down" in {e.kind for e in entries}
    assert all(e.state == "reverted" for e in entries)
    assert token_path_clean(running)
    assert_watchdog_exits(tmp_path / "ledger")
