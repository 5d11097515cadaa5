"""Image signatures on the real sandbox, cross-checked with real cosign both ways round.

The sandbox signs ``signed/app`` images at ``up`` (``sandbox.signing``), in cosign's legacy
``.sig`` format and in its bundle format (a referrer: by the referrers API on ggcr, by the
``sha256-<hex>`` referrers tag on Distribution); the probe's four verdicts are each produced for
real and agree with ``cosign verify --key ... --insecure-ignore-tlog``: verified (ours and
cosign's own signatures, in both formats), unsigned, invalid (a tampered signature or bundle),
wrong-key. The signature faults (the referrers API failing included) are applied and reverted
(verified), by the rollback action, the watchdog at expiry and after SIGKILL of ``chaos run``;
the experiment ``signature-tamper`` deviates; bad input is one line and changes nothing.

Run on each implementation (``--sandbox-implementation distribution-3`` / ``ggcr``).
"""

import base64
import json
import os
import secrets
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
from support.gameday import run_shipped_experiment
from support.polling import eventually
from support.sandbox import SandboxInfo
from support.signature import Cosign

from chaosregistry.actions import signature as actions
from chaosregistry.faults.ledger import FaultState, Ledger
from chaosregistry.oci import RegistryClient
from chaosregistry.probes.signature import image_signature
from chaosregistry.sandbox import load_credentials
from chaosregistry.sandbox.processes import start_process, stop_process
from chaosregistry.sandbox.seed import push_unique_image
from chaosregistry.sandbox.signing import attach_bundle
from chaosregistry.trust.signature_bundle import Descriptor, bundle_artifact, signed_bundle
from chaosregistry.trust.signatures import (
    ZERO_TIME,
    generate_private_key,
    load_private_key,
    public_pem,
)

SIGNED = "signed/app:signed-prod-1.0.0"
SIGNED_INDEX = "signed/app:signed-prod-2.0.0"
BUNDLE = "signed/app:bundle-prod-1.0.0"
BUNDLE_INDEX = "signed/app:bundle-prod-2.0.0"
UNSIGNED = "signed/app:unsigned-prod-1.0.0"


def signatures(sandbox: SandboxInfo) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(Path(sandbox.endpoints["signatures_file"]).read_text())
    return result


def entry(sandbox: SandboxInfo, image: str) -> dict[str, Any]:
    return next(e for e in signatures(sandbox)["images"] if e["image"] == image)


def sandbox_key(sandbox: SandboxInfo) -> str:
    return str(sandbox.endpoints["signing_public_key"])


def probe(sandbox: SandboxInfo, image: str, key: str = "") -> dict[str, Any]:
    return image_signature(
        image, public_key=key, configuration={"sandbox_dir": str(sandbox.run_dir)}
    )


@pytest.fixture(scope="module")
def cosign(sandbox: SandboxInfo, tmp_path_factory: pytest.TempPathFactory) -> Cosign:
    return Cosign.for_sandbox(sandbox, tmp_path_factory.mktemp("cosign"))


@pytest.fixture
def configuration(
    sandbox: SandboxInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    """A ledger of its own; afterwards every signed image verifies again, the ledger has no
    active fault and its watchdog has exited by itself."""
    with own_ledger(sandbox.run_dir, tmp_path, monkeypatch) as config:
        yield config
        actions.restore_signatures(configuration=config)
        assert_as_seeded(sandbox)


def assert_as_seeded(sandbox: SandboxInfo) -> None:
    for item in signatures(sandbox)["images"]:
        result = probe(sandbox, item["image"])
        assert result["digest"] == item["digest"], item["image"]
        assert result["verdict"] == ("verified" if item["signed"] else "unsigned"), result
        assert result["signature_digest"] == item["signature_digest"]


def has_referrers_api(sandbox: SandboxInfo) -> bool:
    return bool(sandbox.endpoints["implementation"] == "ggcr")


def bundle_path(sandbox: SandboxInfo) -> str:
    """How bundles are found on this sandbox: ggcr lists them, Distribution has the tag."""
    return "referrers-api" if has_referrers_api(sandbox) else "referrers-tag"


def push_url(sandbox: SandboxInfo) -> str:
    """Where a test pushes: ggcr's replicas share nothing and nginx balances each request (an
    upload's POST and PUT may reach different nodes), so there, one replica directly."""
    if sandbox.endpoints["implementation"] == "ggcr":
        return str(sandbox.endpoints["replicas"][0]["url"])
    return str(sandbox.endpoints["registry_direct"])


# -- the signed content and the four verdicts --------------------------------------------------
def test_the_sandbox_signs_some_images_and_leaves_one_unsigned(sandbox: SandboxInfo) -> None:
    listed = signatures(sandbox)
    assert listed["public_key"] == sandbox_key(sandbox)
    assert [(e["image"], e["format"]) for e in listed["images"]] == [
        (SIGNED, "legacy"),
        (SIGNED_INDEX, "legacy"),
        (BUNDLE, "bundle"),
        (BUNDLE_INDEX, "bundle"),
        (UNSIGNED, None),
    ]
    for image in (SIGNED, SIGNED_INDEX):
        result = probe(sandbox, image)
        assert result["verdict"] == "verified" and result["verified"] is True, result
        assert result["digest"] == entry(sandbox, image)["digest"]
        assert result["bound_digests"] == [result["digest"]] and result["binds_to_pulled"]
        assert result["discovery"] == "legacy-tag" and result["format"] == "legacy"
        assert result["signatures"] == 1
        assert result["signature_tag"] == "sha256-" + result["digest"][7:] + ".sig"
        assert result["error"] is None
        assert all(result["seconds"][phase] > 0 for phase in ("manifest", "verify", "total"))
    # The multi-platform images' signatures vouch for their index, as cosign signs it.
    for image in (SIGNED_INDEX, BUNDLE_INDEX):
        assert probe(sandbox, image)["media_type"] == "application/vnd.oci.image.index.v1+json"
    unsigned = probe(sandbox, UNSIGNED)
    assert unsigned["verdict"] == "unsigned" and unsigned["discovery"] is None
    assert unsigned["verified"] is False and unsigned["signature_digest"] is None


def test_bundles_are_found_by_the_referrers_api_or_else_its_tag(sandbox: SandboxInfo) -> None:
    for image in (BUNDLE, BUNDLE_INDEX):
        result = probe(sandbox, image)
        item = entry(sandbox, image)
        assert result["verdict"] == "verified" and result["format"] == "bundle", result
        assert result["bound_digests"] == [item["digest"]] and result["binds_to_pulled"]
        assert result["signature_digest"] == item["signature_digest"]
        assert result["discovery"] == bundle_path(sandbox)
        referrers = result["referrers"]
        assert referrers["count"] == 1 and referrers["bundles"] == 1
        assert result["seconds"]["referrers"] > 0 and result["seconds"]["bundles"] > 0
        # A bundle verified: the legacy tag is not asked for.
        assert result["seconds"]["signature_tag"] is None
        if has_referrers_api(sandbox):
            assert referrers["supported"] and referrers["outcome"] == "listed"
            assert referrers["status"] == 200 and not referrers["fell_back"]
            assert result["signature_tag"] is None and item["signature_tag"] is None
        else:
            # Distribution 2.8 and 3.1 answer 404: the referrers tag schema is the fallback.
            assert not referrers["supported"] and referrers["outcome"] == "absent"
            assert referrers["status"] == 404 and referrers["fell_back"]
            assert (
                result["signature_tag"] == item["signature_tag"] == "sha256-" + item["digest"][7:]
            )
            assert result["seconds"]["referrers_tag"] > 0


def test_cosign_verifies_what_the_sandbox_signed_and_refuses_the_unsigned(
    sandbox: SandboxInfo, cosign: Cosign
) -> None:
    for image in (SIGNED, SIGNED_INDEX, BUNDLE, BUNDLE_INDEX):
        done = cosign.verify(image, sandbox_key(sandbox))
        assert done.returncode == 0, done.stderr
        claims = json.loads(done.stdout)
        assert (
            claims[0]["critical"]["image"]["docker-manifest-digest"]
            == entry(sandbox, image)["digest"]
        )
    done = cosign.verify(UNSIGNED, sandbox_key(sandbox))
    assert done.returncode != 0 and "no signatures found" in done.stderr
    assert probe(sandbox, UNSIGNED)["verdict"] == "unsigned"


def test_an_image_cosign_signed_verifies_with_the_probe_and_not_with_another_key(
    sandbox: SandboxInfo, tmp_path: Path
) -> None:
    url = push_url(sandbox)
    cosign = Cosign.for_sandbox(sandbox, tmp_path / "cosign", url)
    repository = f"signed/cosign-{secrets.token_hex(4)}"
    pushed = push_unique_image(
        url, load_credentials(sandbox.run_dir), repository, "release-1.0.0", verify=sandbox.ca_file
    )
    image = f"{repository}:release-1.0.0"
    key, public = cosign.generate_key_pair()
    signed = cosign.sign(image, key)
    assert signed.returncode == 0, signed.stderr
    assert cosign.verify(image, public).returncode == 0

    def ours(key: str) -> dict[str, Any]:
        config = {"sandbox_dir": str(sandbox.run_dir)}
        return image_signature(image, public_key=key, target=url, configuration=config)

    result = ours(str(public))
    assert result["verdict"] == "verified", result
    assert result["digest"] == pushed["digest"] and result["binds_to_pulled"]
    assert result["discovery"] == "legacy-tag"
    # The sandbox's key did not sign it: both refuse, we say why.
    assert ours(sandbox_key(sandbox))["verdict"] == "wrong-key"
    assert cosign.verify(image, sandbox_key(sandbox)).returncode != 0


def test_another_key_is_wrong_key_for_us_and_for_cosign(
    sandbox: SandboxInfo, cosign: Cosign, tmp_path: Path
) -> None:
    other = tmp_path / "other.pub"
    other.write_bytes(public_pem(generate_private_key()))
    result = probe(sandbox, SIGNED, str(other))
    assert result["verdict"] == "wrong-key" and result["verified"] is False
    assert result["binds_to_pulled"]  # the signature is of this image, just not this key's
    done = cosign.verify(SIGNED, other)
    assert done.returncode != 0 and "invalid signature" in done.stderr.lower()


def test_an_image_cosign_signed_in_the_bundle_format_verifies_with_the_probe(
    sandbox: SandboxInfo, tmp_path: Path
) -> None:
    url = push_url(sandbox)
    cosign = Cosign.for_sandbox(sandbox, tmp_path / "cosign", url)
    repository = f"signed/bundle-{secrets.token_hex(4)}"
    pushed = push_unique_image(
        url, load_credentials(sandbox.run_dir), repository, "release-1.0.0", verify=sandbox.ca_file
    )
    image = f"{repository}:release-1.0.0"
    key, public = cosign.generate_key_pair()
    signed = cosign.sign(image, key, bundle=True)
    assert signed.returncode == 0, signed.stderr
    assert cosign.verify(image, public).returncode == 0
    config = {"sandbox_dir": str(sandbox.run_dir)}
    result = image_signature(image, public_key=str(public), target=url, configuration=config)
    assert result["verdict"] == "verified" and result["format"] == "bundle", result
    assert result["digest"] == pushed["digest"] and result["binds_to_pulled"]
    assert result["discovery"] == bundle_path(sandbox)
    other = image_signature(
        image, public_key=sandbox_key(sandbox), target=url, configuration=config
    )
    assert other["verdict"] == "wrong-key"
    assert cosign.verify(image, sandbox_key(sandbox)).returncode != 0


def test_a_tampered_bundle_is_invalid_for_us_and_refused_by_cosign(
    sandbox: SandboxInfo, tmp_path: Path
) -> None:
    # A fresh image of its own, with a bundle signed by the sandbox's key whose statement was
    # then re-pointed at another digest, the signature kept: the forgery a verifier must refuse.
    url = push_url(sandbox)
    cosign = Cosign.for_sandbox(sandbox, tmp_path / "cosign", url)
    repository = f"signed/tampered-{secrets.token_hex(4)}"
    creds = load_credentials(sandbox.run_dir)
    pushed = push_unique_image(url, creds, repository, "release-1.0.0", verify=sandbox.ca_file)
    subject = Descriptor(pushed["media_type"], pushed["digest"], pushed["size"])
    key = load_private_key((sandbox.run_dir / "secrets/signing.key").read_bytes())
    genuine = json.loads(signed_bundle(key, subject, ZERO_TIME).blobs[1])
    statement = json.loads(base64.b64decode(genuine["dsseEnvelope"]["payload"]))
    statement["subject"][0]["digest"]["sha256"] = "0" * 64
    genuine["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    tampered = bundle_artifact(json.dumps(genuine).encode(), subject, ZERO_TIME)
    with RegistryClient(url, credentials=creds, verify=sandbox.ca_file) as client:
        attach_bundle(client, repository, tampered)
    image = f"{repository}:release-1.0.0"
    config = {"sandbox_dir": str(sandbox.run_dir)}
    result = image_signature(image, target=url, configuration=config)
    assert result["verdict"] == "invalid" and result["format"] == "bundle", result
    assert result["signature_digest"] == tampered.digest and not result["binds_to_pulled"]
    assert result["bound_digests"] == ["sha256:" + "0" * 64]
    done = cosign.verify(image, sandbox_key(sandbox))
    assert done.returncode != 0, done.stdout


# -- the faults ----------------------------------------------------------------------------------
def test_a_tampered_signature_is_invalid_for_us_and_refused_by_cosign(
    sandbox: SandboxInfo, cosign: Cosign, configuration: dict[str, Any]
) -> None:
    fault = actions.tamper_signature(SIGNED, duration=60, configuration=configuration)
    assert fault["state"] == "injected" and fault["kind"] == "signature.tamper"
    assert fault["target"] == f"image:{SIGNED}" and 0 < fault["expires_in"] <= 60
    applied = fault["applied"]
    assert applied["original_signature_digest"] == entry(sandbox, SIGNED)["signature_digest"]
    during = probe(sandbox, SIGNED)
    assert during["verdict"] == "invalid", during
    assert during["signature_digest"] == applied["tampered_signature_digest"]
    assert during["digest"] not in during["bound_digests"] and not during["binds_to_pulled"]
    assert cosign.verify(SIGNED, sandbox_key(sandbox)).returncode != 0
    # Only that image: the other signed one still verifies.
    assert probe(sandbox, SIGNED_INDEX)["verdict"] == "verified"

    undone = actions.restore_signatures(SIGNED, configuration=configuration)
    assert undone["count"] == 1 and undone["reverted"][0]["state"] == "reverted"
    assert probe(sandbox, SIGNED)["verdict"] == "verified"
    assert cosign.verify(SIGNED, sandbox_key(sandbox)).returncode == 0
    assert actions.restore_signatures(configuration=configuration)["count"] == 0


def test_a_deleted_signature_is_unsigned_until_restored(
    sandbox: SandboxInfo, cosign: Cosign, configuration: dict[str, Any]
) -> None:
    fault = actions.delete_signature(SIGNED_INDEX, duration=60, configuration=configuration)
    assert fault["kind"] == "signature.delete"
    during = probe(sandbox, SIGNED_INDEX)
    assert during["verdict"] == "unsigned" and during["signature_digest"] is None
    assert cosign.verify(SIGNED_INDEX, sandbox_key(sandbox)).returncode != 0
    actions.restore_signatures(SIGNED_INDEX, configuration=configuration)
    assert probe(sandbox, SIGNED_INDEX)["verdict"] == "verified"


def test_the_signed_tag_pointed_at_an_unsigned_image_is_unsigned(
    sandbox: SandboxInfo, cosign: Cosign, configuration: dict[str, Any]
) -> None:
    fault = actions.retag_unsigned(
        SIGNED, source=UNSIGNED, duration=60, configuration=configuration
    )
    assert fault["kind"] == "signature.unsigned-image"
    assert fault["applied"]["now_digest"] == entry(sandbox, UNSIGNED)["digest"]
    during = probe(sandbox, SIGNED)
    assert during["digest"] == entry(sandbox, UNSIGNED)["digest"]
    assert during["verdict"] == "unsigned"
    assert cosign.verify(SIGNED, sandbox_key(sandbox)).returncode != 0
    actions.restore_signatures(configuration=configuration)
    assert probe(sandbox, SIGNED)["digest"] == entry(sandbox, SIGNED)["digest"]


def test_the_watchdog_restores_the_signature_at_expiry(
    sandbox: SandboxInfo, configuration: dict[str, Any]
) -> None:
    fault = actions.delete_signature(SIGNED, duration=SHORT_FAULT, configuration=configuration)
    assert probe(sandbox, SIGNED)["verdict"] == "unsigned"
    eventually(
        "the signature verified",
        lambda: probe(sandbox, SIGNED)["verdict"] == "verified",
        timeout=SHORT_FAULT + SETTLES_WITHIN,
    )
    assert_reverted_at_expiry(configuration["ledger_dir"], fault["fault_id"])


def test_a_failing_referrers_api_is_classified_and_not_a_licence_to_fall_back(
    sandbox: SandboxInfo, cosign: Cosign, configuration: dict[str, Any]
) -> None:
    fault = actions.break_referrers(status=500, duration=60, configuration=configuration)
    assert fault["state"] == "injected" and fault["kind"] == "signature.referrers"
    assert fault["target"] == "referrers:registry" and fault["applied"]["status"] == 500
    during = probe(sandbox, BUNDLE)
    referrers = during["referrers"]
    assert referrers["outcome"] == "failed" and referrers["status"] == 500
    assert referrers["error"]["class"] == "server-error" and not referrers["fell_back"]
    # Maybe signed, unseen: no verdict, the classified failure instead (cosign: no signatures).
    assert during["verdict"] is None and during["error"] == referrers["error"], during
    assert cosign.verify(BUNDLE, sandbox_key(sandbox)).returncode != 0
    # The legacy format does not need the API.
    legacy = probe(sandbox, SIGNED)
    assert legacy["verdict"] == "verified" and legacy["discovery"] == "legacy-tag"
    assert cosign.verify(SIGNED, sandbox_key(sandbox)).returncode == 0

    undone = actions.restore_referrers(configuration=configuration)
    assert undone["count"] == 1 and undone["reverted"][0]["state"] == "reverted"
    after = probe(sandbox, BUNDLE)
    assert after["verdict"] == "verified" and after["discovery"] == bundle_path(sandbox)
    assert cosign.verify(BUNDLE, sandbox_key(sandbox)).returncode == 0
    assert actions.restore_referrers(configuration=configuration)["count"] == 0


def test_a_referrers_api_answering_404_sends_clients_to_the_tag(
    sandbox: SandboxInfo, cosign: Cosign, configuration: dict[str, Any]
) -> None:
    actions.break_referrers(status=404, duration=60, configuration=configuration)
    during = probe(sandbox, BUNDLE)
    assert during["referrers"]["outcome"] == "absent" and during["referrers"]["fell_back"]
    done = cosign.verify(BUNDLE, sandbox_key(sandbox))
    if has_referrers_api(sandbox):
        # ggcr keeps its referrers in the API only: the tag is empty, the image looks unsigned.
        assert during["verdict"] == "unsigned", during
        assert done.returncode != 0 and "no signatures found" in done.stderr
    else:
        assert during["verdict"] == "verified" and during["discovery"] == "referrers-tag"
        assert done.returncode == 0, done.stderr
    actions.restore_referrers(configuration=configuration)
    assert probe(sandbox, BUNDLE)["referrers"]["outcome"] == (
        "listed" if has_referrers_api(sandbox) else "absent"
    )


def test_the_watchdog_restores_the_referrers_api_at_expiry(
    sandbox: SandboxInfo, configuration: dict[str, Any]
) -> None:
    fault = actions.break_referrers(status=503, duration=SHORT_FAULT, configuration=configuration)
    assert probe(sandbox, BUNDLE)["referrers"]["status"] == 503
    eventually(
        "the bundle verified",
        lambda: probe(sandbox, BUNDLE)["verdict"] == "verified",
        timeout=SHORT_FAULT + SETTLES_WITHIN,
    )
    assert_reverted_at_expiry(configuration["ledger_dir"], fault["fault_id"])


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        ({"status": 418}, "status must be one of 404, 500, 502, 503"),
        ({"status": "500"}, "status must be one of"),
        ({"duration": 0}, "duration"),
    ],
)
def test_bad_referrers_fault_input_is_one_line_and_changes_nothing(
    sandbox: SandboxInfo, configuration: dict[str, Any], arguments: dict[str, Any], fragment: str
) -> None:
    assert_refused_before_recording(
        lambda: actions.break_referrers(
            **{"duration": 30, **arguments}, configuration=configuration
        ),
        fragment,
        configuration["ledger_dir"],
    )
    assert probe(sandbox, BUNDLE)["verdict"] == "verified"


def test_a_second_referrers_fault_is_refused(
    sandbox: SandboxInfo, configuration: dict[str, Any]
) -> None:
    first = actions.break_referrers(status=500, duration=30, configuration=configuration)
    with pytest.raises(ActivityFailed, match="already active"):
        actions.break_referrers(status=404, duration=30, configuration=configuration)
    assert [e.id for e in Ledger(configuration["ledger_dir"]).all()] == [first["fault_id"]]
    assert probe(sandbox, BUNDLE)["referrers"]["status"] == 500


CHAOS = str(Path(sys.executable).with_name("chaos"))
TRIAL = Path(__file__).resolve().parents[1] / "data/signature-trial.yaml"
REFERRERS_TRIAL = Path(__file__).resolve().parents[1] / "data/referrers-trial.yaml"


@pytest.mark.parametrize(
    ("trial", "kind", "image", "during"),
    [
        (TRIAL, "signature.tamper", SIGNED, lambda result: result["verdict"] == "invalid"),
        (
            REFERRERS_TRIAL,
            "signature.referrers",
            BUNDLE,
            lambda result: result["referrers"]["status"] == 500,
        ),
    ],
    ids=["tamper", "referrers"],
)
def test_the_watchdog_restores_the_signature_when_chaos_run_is_sigkilled(
    sandbox: SandboxInfo,
    configuration: dict[str, Any],
    tmp_path: Path,
    trial: Path,
    kind: str,
    image: str,
    during: Any,
) -> None:
    ledger = Ledger(configuration["ledger_dir"])
    chaos = subprocess.Popen(
        [
            CHAOS,
            "--log-file",
            str(tmp_path / "chaos.log"),
            "run",
            "--journal-path",
            str(tmp_path / "journal.json"),
            str(trial),
        ],
        env={
            **os.environ,
            "CHAOSREGISTRY_SANDBOX_DIR": str(sandbox.run_dir),
            "CHAOSREGISTRY_LEDGER_DIR": configuration["ledger_dir"],
        },
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        eventually(
            "the fault injected",
            lambda: any(e.state == FaultState.INJECTED for e in ledger.all()),
            timeout=60,
        )
        (entry,) = ledger.all()
        assert entry.kind == kind
        assert during(probe(sandbox, image))
        os.killpg(chaos.pid, signal.SIGKILL)
        chaos.wait(timeout=30)
        # Well inside the 120 s duration: the owner's death, not the expiry, ends it.
        eventually(
            "the image verified", lambda: probe(sandbox, image)["verdict"] == "verified", timeout=20
        )
        eventually(
            "the fault reverted",
            lambda: ledger.get(entry.id).state is FaultState.REVERTED,
            timeout=SETTLES_WITHIN,
        )
        assert ledger.get(entry.id).revert_reason == "owner-gone"
    finally:
        if chaos.poll() is None:
            os.killpg(chaos.pid, signal.SIGKILL)
            chaos.wait(timeout=30)


# -- bad input ------------------------------------------------------------------------------------
def test_a_public_key_file_that_is_not_a_key_is_one_line(
    sandbox: SandboxInfo, tmp_path: Path
) -> None:
    not_a_key = tmp_path / "cosign.pub"
    not_a_key.write_text("this is not a key\n")
    for path, fragment in ((not_a_key, "not a PEM public key"), (tmp_path / "none", "cannot read")):
        with pytest.raises(ActivityFailed) as caught:
            probe(sandbox, SIGNED, str(path))
        message = str(caught.value)
        assert fragment in message and str(path) in message and "\n" not in message
    assert_as_seeded(sandbox)


def test_a_digest_that_does_not_exist_is_one_line(sandbox: SandboxInfo) -> None:
    image = "signed/app@sha256:" + "0" * 64
    with pytest.raises(ActivityFailed) as caught:
        probe(sandbox, image)
    message = str(caught.value)
    assert "does not exist" in message and image in message and "\n" not in message


@pytest.mark.parametrize(
    ("action", "arguments", "fragment"),
    [
        (actions.tamper_signature, {"image": UNSIGNED}, "is not signed"),
        (actions.delete_signature, {"image": "signed/app:nope"}, "does not exist"),
        (actions.tamper_signature, {"image": "signed/app@sha256:" + "0" * 64}, "name a tag"),
        (actions.retag_unsigned, {"image": SIGNED, "source": SIGNED_INDEX}, "is signed"),
        (actions.retag_unsigned, {"image": SIGNED, "source": "tiny/hello:latest"}, "must be in"),
        (actions.delete_signature, {"image": SIGNED, "duration": 0}, "duration"),
        (actions.delete_signature, {"image": SIGNED, "duration": 7200}, "limit"),
    ],
)
def test_bad_fault_input_is_one_line_and_changes_nothing(
    sandbox: SandboxInfo,
    configuration: dict[str, Any],
    action: Any,
    arguments: dict[str, Any],
    fragment: str,
) -> None:
    assert_refused_before_recording(
        lambda: action(**{"duration": 30, **arguments}, configuration=configuration),
        fragment,
        configuration["ledger_dir"],
    )
    assert_as_seeded(sandbox)


def test_a_second_signature_fault_on_the_same_image_is_refused(
    sandbox: SandboxInfo, configuration: dict[str, Any]
) -> None:
    first = actions.tamper_signature(SIGNED, duration=30, configuration=configuration)
    with pytest.raises(ActivityFailed, match="already active"):
        actions.delete_signature(SIGNED, duration=30, configuration=configuration)
    assert [e.id for e in Ledger(configuration["ledger_dir"]).all()] == [first["fault_id"]]
    assert probe(sandbox, SIGNED)["verdict"] == "invalid"


def test_the_signature_tamper_experiment_deviates_and_is_rolled_back(
    sandbox: SandboxInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHAOSREGISTRY_WATCHDOG_IDLE_EXIT", str(WATCHDOG_IDLE_EXIT))
    process, run_dir = run_shipped_experiment(sandbox.run_dir, tmp_path, "signature-tamper")
    journal = json.loads((run_dir / "journal.json").read_text())
    assert journal["deviated"] is True, journal["status"]
    outputs = {r["activity"]["name"]: r["output"] for r in journal["run"]}
    assert outputs["signature-during-tamper"]["verdict"] == "invalid"
    after = journal["steady_states"]["after"]
    assert after["steady_state_met"] is False
    assert json.loads((run_dir / "gameday.json").read_text())["verdict"] == "deviated"
    assert process.returncode == 10
    entries = Ledger(tmp_path / "ledger").all()
    assert [e.kind for e in entries] == ["signature.tamper"]
    assert all(e.state == "reverted" for e in entries)
    assert_as_seeded(sandbox)
    assert_watchdog_exits(tmp_path / "ledger")


def test_a_restarted_replica_serves_the_signatures_again(sandbox: SandboxInfo) -> None:
    # ggcr keeps manifests in memory: its node re-seeds them (signatures included) on start.
    replica = sandbox.endpoints["replicas"][0]
    stop_process(sandbox.run_dir, replica["name"], signal.SIGKILL)
    start_process(sandbox.run_dir, replica["name"])
    config = {"sandbox_dir": str(sandbox.run_dir)}
    for item in signatures(sandbox)["images"]:
        result = image_signature(item["image"], target=replica["url"], configuration=config)
        assert result["verdict"] == ("verified" if item["signed"] else "unsigned"), result
