"""Certificate faults on the real sandbox: nginx serves an expired, wrong-host or untrusted
certificate (pulls fail with ``tls`` and the matching reason), and its own certificate again
after the undo, the watchdog (expiry, owner SIGKILLed) or ``chaosregistry rollback``; bad input
changes nothing; the shipped experiment gives the verdict it documents."""

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed
from support.faults import (
    SETTLES_WITHIN,
    SHORT_FAULT,
    WATCHDOG_IDLE_EXIT,
    assert_refused_before_recording,
    assert_reverted_at_expiry,
    assert_watchdog_exits,
    own_ledger,
)
from support.gameday import PACED_LOAD, assert_held, assert_passed, run_shipped_experiment
from support.polling import eventually
from support.sandbox import SandboxInfo

from chaosregistry.actions import certificate
from chaosregistry.faults.ledger import FaultState, Ledger
from chaosregistry.probes import pull as pull_probes
from chaosregistry.probes import registry as registry_probes
from chaosregistry.sandbox.layout import SERVER_CERT, Layout
from chaosregistry.trust.pki import load_cert
from chaosregistry.trust.tlsinspect import Endpoint, fingerprint, served_certificate

CHAOSREGISTRY = str(Path(sys.executable).with_name("chaosregistry"))
REASONS = {"expired": "expired", "wrong-host": "hostname-mismatch", "untrusted": "unknown-ca"}


def served(sandbox: SandboxInfo, key: str = "registry_direct") -> str:
    """Fingerprint of the certificate the nginx server behind endpoints[key] serves now."""
    host, port = sandbox.endpoints[key].removeprefix("https://").rsplit(":", 1)
    return fingerprint(served_certificate(Endpoint(host, int(port))))


def original(sandbox: SandboxInfo) -> str:
    return fingerprint(load_cert(Layout.at(sandbox.run_dir).pki.cert(SERVER_CERT)))


def overrides(sandbox: SandboxInfo) -> list[str]:
    return sorted(p.name for p in Layout.at(sandbox.run_dir).tls_overrides_dir.glob("*.conf"))


def fault_leaves(sandbox: SandboxInfo) -> list[str]:
    return sorted(p.name for p in Layout.at(sandbox.run_dir).pki.directory.rglob("fault-*"))


def assert_original_everywhere(sandbox: SandboxInfo) -> None:
    for key in ("registry_direct", "registry_ratelimited", "token_registry"):
        assert served(sandbox, key) == original(sandbox), key
    assert overrides(sandbox) == [] and fault_leaves(sandbox) == []


@pytest.fixture
def configuration(
    sandbox: SandboxInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    """A ledger of its own; afterwards every server serves the sandbox's own certificate and
    the ledger's watchdog has exited by itself."""
    with own_ledger(sandbox.run_dir, tmp_path, monkeypatch) as config:
        yield config
        certificate.restore_certificate(configuration=config)
        assert_original_everywhere(sandbox)


def pull_error(configuration: dict[str, Any]) -> dict[str, Any] | None:
    result = pull_probes.pull_image("tiny/hello:latest", configuration=configuration)
    error: dict[str, Any] | None = result["error"]
    assert result["ok"] is (error is None)
    return error


@pytest.mark.parametrize("kind", ["expired", "wrong-host", "untrusted"])
def test_each_kind_fails_pulls_with_its_reason_until_restored(
    sandbox: SandboxInfo, configuration: dict[str, Any], kind: str
) -> None:
    assert pull_error(configuration) is None
    fault = certificate.serve_bad_certificate(kind=kind, duration=30, configuration=configuration)
    assert fault["state"] == "injected" and fault["kind"] == f"certificate.{kind}"
    assert fault["target"] == "tls:registry" and 0 < fault["expires_in"] <= 30
    cert = fault["applied"]["certificate"]
    assert cert["fingerprint"] == served(sandbox) != original(sandbox)
    assert fault["applied"]["original_fingerprint"] == original(sandbox)
    if kind == "expired":
        assert cert["days_left"] < 0
    if kind == "wrong-host":
        assert "127.0.0.1" not in cert["sans"] and "wrong-host.invalid" in cert["sans"]
    if kind == "untrusted":
        assert "untrusted" in cert["issuer"]
    error = pull_error(configuration)
    assert error is not None and error["class"] == "tls"
    assert error["detail"]["reason"] == REASONS[kind]
    # Only the registry's server: its rate-limited twin and the mirror's upstream are untouched.
    assert served(sandbox, "registry_ratelimited") == original(sandbox)
    assert served(sandbox, "token_registry") == original(sandbox)

    undone = certificate.restore_certificate(target="registry", configuration=configuration)
    assert undone["count"] == 1 and undone["reverted"][0]["state"] == "reverted"
    assert served(sandbox) == original(sandbox)
    assert pull_error(configuration) is None
    assert certificate.restore_certificate(configuration=configuration)["count"] == 0


def test_registry_tls_reports_the_expired_certificate(
    sandbox: SandboxInfo, configuration: dict[str, Any]
) -> None:
    before = registry_probes.registry_tls(configuration=configuration)
    assert before["verified"] and before["leaf"]["days_left"] > 300
    certificate.serve_bad_certificate(duration=30, configuration=configuration)
    during = registry_probes.registry_tls(configuration=configuration)
    assert during["leaf"]["days_left"] < 0 and not during["verified"]
    assert during["error"]["detail"]["reason"] == "expired"


def test_the_mirror_upstream_target_breaks_the_mirror_pull_through_only(
    sandbox: SandboxInfo, configuration: dict[str, Any]
) -> None:
    certificate.serve_bad_certificate(
        kind="untrusted", target="mirror-upstream", duration=30, configuration=configuration
    )
    assert served(sandbox, "token_registry") != original(sandbox)
    assert served(sandbox) == original(sandbox)
    assert pull_error(configuration) is None  # the registry's own server is untouched


def test_the_ratelimited_twin_target_leaves_the_registry_server_alone(
    sandbox: SandboxInfo, configuration: dict[str, Any]
) -> None:
    # Their override files share a prefix (registry.conf, registry-ratelimited.conf): each
    # server includes its own file only.
    certificate.serve_bad_certificate(
        kind="expired", target="registry-ratelimited", duration=30, configuration=configuration
    )
    assert served(sandbox, "registry_ratelimited") != original(sandbox)
    assert served(sandbox) == original(sandbox)
    assert pull_error(configuration) is None


def test_the_watchdog_restores_the_certificate_at_expiry(
    sandbox: SandboxInfo, configuration: dict[str, Any]
) -> None:
    fault = certificate.serve_bad_certificate(duration=SHORT_FAULT, configuration=configuration)
    assert served(sandbox) != original(sandbox)
    eventually(
        "the original certificate served",
        lambda: served(sandbox) == original(sandbox),
        timeout=SHORT_FAULT + SETTLES_WITHIN,
    )
    assert_reverted_at_expiry(configuration["ledger_dir"], fault["fault_id"])
    assert pull_error(configuration) is None


OWNER = r"""
import json, sys, time
from chaosregistry.actions import certificate
fault = certificate.serve_bad_certificate(kind="untrusted", duration=120,
                                          configuration=json.loads(sys.argv[1]))
print(fault["fault_id"], flush=True)
time.sleep(600)
"""


def test_the_watchdog_restores_the_certificate_when_its_owner_is_sigkilled(
    sandbox: SandboxInfo, configuration: dict[str, Any]
) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, json.dumps(configuration)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert owner.stdout is not None
        fault_id = owner.stdout.readline().strip()
        assert fault_id and served(sandbox) != original(sandbox)
        error = pull_error(configuration)
        assert error is not None and error["detail"]["reason"] == "unknown-ca"
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait(timeout=10)
        # Well inside the 120 s duration: the owner's death, not the expiry, ends it.
        eventually(
            "the original certificate served",
            lambda: served(sandbox) == original(sandbox),
            timeout=10,
        )
        ledger = Ledger(configuration["ledger_dir"])
        eventually(
            "the fault reverted",
            lambda: ledger.get(fault_id).state is FaultState.REVERTED,
            timeout=SETTLES_WITHIN,
        )
        assert ledger.get(fault_id).revert_reason == "owner-gone"
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
        if owner.stdout is not None:
            owner.stdout.close()


def test_chaosregistry_rollback_restores_the_certificate(
    sandbox: SandboxInfo, configuration: dict[str, Any]
) -> None:
    fault = certificate.serve_bad_certificate(
        kind="wrong-host", duration=60, configuration=configuration
    )
    done = subprocess.run(
        [CHAOSREGISTRY, "rollback", "--ledger-dir", configuration["ledger_dir"]],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert fault["fault_id"] in done.stdout
    assert served(sandbox) == original(sandbox)
    entry = Ledger(configuration["ledger_dir"]).get(fault["fault_id"])
    assert entry.state is FaultState.REVERTED and entry.revert_reason == "manual"


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        ({"kind": "revoked"}, "kind must be one of"),
        ({"target": "registry-9"}, "unknown certificate target"),
        ({"target": ""}, "target must name"),
        ({"duration": None}, "duration"),
        ({"duration": 0}, "duration"),
        ({"duration": 7200}, "limit"),
        ({"configuration": {"allowed_certificate_targets": ["mirror-upstream"]}}, "blast radius"),
        ({"configuration": {"backend": "kubernetes"}}, "kubernetes backend cannot"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(
    sandbox: SandboxInfo,
    configuration: dict[str, Any],
    arguments: dict[str, Any],
    fragment: str,
) -> None:
    extra = arguments.pop("configuration", {})
    assert_refused_before_recording(
        lambda: certificate.serve_bad_certificate(
            **{"duration": 30, **arguments}, configuration={**configuration, **extra}
        ),
        fragment,
        configuration["ledger_dir"],
    )
    assert_original_everywhere(sandbox)


def test_a_second_fault_on_the_same_server_is_refused(
    sandbox: SandboxInfo, configuration: dict[str, Any]
) -> None:
    first = certificate.serve_bad_certificate(duration=30, configuration=configuration)
    with pytest.raises(ActivityFailed, match="already active"):
        certificate.serve_bad_certificate(
            kind="untrusted", duration=30, configuration=configuration
        )
    assert served(sandbox) == first["applied"]["certificate"]["fingerprint"]
    assert [e.id for e in Ledger(configuration["ledger_dir"]).all()] == [first["fault_id"]]


def test_registry_cert_expiry_experiment(
    sandbox: SandboxInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHAOSREGISTRY_WATCHDOG_IDLE_EXIT", str(WATCHDOG_IDLE_EXIT))
    process, run_dir = run_shipped_experiment(
        sandbox.run_dir,
        tmp_path,
        "registry-cert-expiry",
        load_seconds=40,
        load_pull_interval=PACED_LOAD,
    )
    journal = json.loads((run_dir / "journal.json").read_text())
    outputs = {r["activity"]["name"]: r["output"] for r in journal["run"]}
    assert_held(journal)
    during = outputs["pull-during-expired-certificate"]["error"]
    assert during["class"] == "tls" and during["detail"]["reason"] == "expired"
    assert outputs["tls-during-expired-certificate"]["leaf"]["days_left"] < 0
    assert outputs["load-before-fault"]["failed"] == 0
    load_during = outputs["load-during-expired-certificate"]
    assert load_during["failures_by_class"].get("tls", 0) > 0 and load_during["pulls"] == 0
    after = outputs["load-after-renewal"]
    assert after["failed"] == 0 and after["pulls"] > 0
    assert_passed(process.returncode, run_dir)
    entries = Ledger(tmp_path / "ledger").all()
    assert {e.kind for e in entries} >= {"certificate.expired"}
    assert all(e.state == "reverted" for e in entries)
    assert served(sandbox) == original(sandbox)
    assert_watchdog_exits(tmp_path / "ledger")
