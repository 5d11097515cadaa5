"""cosign's bundle format (sigstore bundle v0.3 as an OCI 1.1 referrer) without a registry: our
reader on cosign's own bytes (tests/data/cosign-bundle, made by cosign v3.1.3), our writer's
shape against them, the four verdicts; and the probe at the HTTP boundary for the referrers
answers the sandbox cannot be made to give (an index that is not one, a listed referrer that is
gone)."""

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa, utils
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from support.mock_registry import Routes, serve, sha

from chaosregistry.errors import ConfigError
from chaosregistry.probes import signature as probe_module
from chaosregistry.trust import signature_bundle as sb
from chaosregistry.trust import signatures

COSIGN = Path(__file__).resolve().parents[1] / "data/cosign-bundle"
COSIGN_SUBJECT = "sha256:f4c94fb56b5740b3d0c0e205508fcc0bcbfb9378ba652f01575f18c9748094ac"
IMAGE_MANIFEST = json.dumps({"schemaVersion": 2, "layers": [], "config": {}}).encode()
DIGEST = "sha256:" + hashlib.sha256(IMAGE_MANIFEST).hexdigest()
OTHER = "sha256:" + "b" * 64
SUBJECT = sb.Descriptor("application/vnd.oci.image.manifest.v1+json", DIGEST, len(IMAGE_MANIFEST))


@pytest.fixture(scope="module")
def key() -> signatures.PrivateKey:
    return signatures.generate_private_key()


def public(key: signatures.PrivateKey) -> signatures.PublicKey:
    return signatures.load_public_key(signatures.public_pem(key), "test")


def cosign_key() -> signatures.PublicKey:
    return signatures.load_public_key((COSIGN / "cosign.pub").read_bytes(), "cosign.pub")


def bundle_of(artifact: sb.BundleArtifact) -> bytes:
    return artifact.blobs[1]


def redo(bundle: bytes, change: Any) -> bytes:
    document = json.loads(bundle)
    change(document)
    return json.dumps(document).encode()


# -- cosign's own bytes ---------------------------------------------------------------------------
def test_a_bundle_cosign_made_verifies_with_its_key_and_binds_to_its_image() -> None:
    check = sb.check_bundles(cosign_key(), COSIGN_SUBJECT, [(COSIGN / "bundle.json").read_bytes()])
    assert check.verdict == "verified" and check.bound_digests == [COSIGN_SUBJECT]
    other = signatures.load_public_key(
        signatures.public_pem(signatures.generate_private_key()), "other"
    )
    assert sb.check_bundles(
        other, COSIGN_SUBJECT, [(COSIGN / "bundle.json").read_bytes()]
    ).verdict == ("wrong-key")
    # Not this image's: another digest is never vouched for.
    assert sb.check_bundles(
        cosign_key(), OTHER, [(COSIGN / "bundle.json").read_bytes()]
    ).verdict == ("invalid")


def test_cosigns_referrer_and_index_are_read_as_a_bundle_of_the_subject() -> None:
    listed = sb.listed_referrers(json.loads((COSIGN / "index.json").read_bytes()))
    assert isinstance(listed, list) and len(listed) == 1 and sb.may_be_bundle(listed[0])
    referrer = (COSIGN / "referrer.json").read_bytes()
    assert listed[0]["digest"] == sha(referrer)
    layer = sb.bundle_layer(json.loads(referrer), COSIGN_SUBJECT)
    assert isinstance(layer, sb.BundleLayer)
    assert layer.digest == sha((COSIGN / "bundle.json").read_bytes())
    assert sb.bundle_layer(json.loads(referrer), OTHER) == (
        f"a bundle referrer's subject is {COSIGN_SUBJECT}, not {OTHER}"
    )


def test_our_referrer_has_cosigns_shape(key: signatures.PrivateKey) -> None:
    theirs = json.loads((COSIGN / "referrer.json").read_bytes())
    artifact = sb.signed_bundle(key, SUBJECT, signatures.ZERO_TIME)
    ours = json.loads(artifact.manifest)
    assert ours.keys() == theirs.keys()
    assert ours["config"] == theirs["config"]  # the empty config, typed as the bundle
    assert ours["artifactType"] == theirs["artifactType"] == sb.BUNDLE_MEDIA_TYPE
    assert ours["annotations"].keys() == theirs["annotations"].keys()
    assert [layer["mediaType"] for layer in ours["layers"]] == [sb.BUNDLE_MEDIA_TYPE]
    assert ours["subject"] == {
        "mediaType": SUBJECT.media_type,
        "size": SUBJECT.size,
        "digest": DIGEST,
    }
    bundle, their_bundle = (
        json.loads(bundle_of(artifact)),
        json.loads((COSIGN / "bundle.json").read_bytes()),
    )
    assert bundle.keys() == their_bundle.keys()
    assert bundle["dsseEnvelope"].keys() == their_bundle["dsseEnvelope"].keys()
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    their_statement = json.loads(base64.b64decode(their_bundle["dsseEnvelope"]["payload"]))
    assert statement["subject"] == [{"digest": {"sha256": DIGEST[7:]}, "annotations": {}}]
    assert {k: v for k, v in statement.items() if k != "subject"} == {
        k: v for k, v in their_statement.items() if k != "subject"
    }
    # The hint is the key's: cosign's is of cosign.pub.
    assert their_bundle["verificationMaterial"]["publicKey"]["hint"] == sb.key_hint(cosign_key())


def test_signing_is_deterministic(key: signatures.PrivateKey) -> None:
    first = sb.signed_bundle(key, SUBJECT, signatures.ZERO_TIME)
    assert first == sb.signed_bundle(key, SUBJECT, signatures.ZERO_TIME)
    assert first.blobs[0] == b"{}" and first.subject == DIGEST


# -- the verdicts ------------------------------------------------------------------------------
def test_the_four_verdicts_of_bundles(key: signatures.PrivateKey) -> None:
    bundle = bundle_of(sb.signed_bundle(key, SUBJECT, signatures.ZERO_TIME))
    assert sb.check_bundles(public(key), DIGEST, [bundle]).verdict == "verified"
    other_key = public(signatures.generate_private_key())
    wrong = sb.check_bundles(other_key, DIGEST, [bundle])
    assert wrong.verdict == "wrong-key" and wrong.bound_digests == [DIGEST]
    # Another image's bundle, moved here: it names its own digest.
    moved = bundle_of(
        sb.signed_bundle(key, sb.Descriptor(SUBJECT.media_type, OTHER, 1), signatures.ZERO_TIME)
    )
    invalid = sb.check_bundles(public(key), DIGEST, [moved])
    assert invalid.verdict == "invalid" and "vouches for " + OTHER in invalid.detail
    assert sb.check_bundles(public(key), DIGEST, []).verdict == "invalid"


def tampered_payload(document: dict[str, Any]) -> None:
    statement = json.loads(base64.b64decode(document["dsseEnvelope"]["payload"]))
    statement["predicate"] = {"forged": True}  # still this digest, no longer what was signed
    document["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()


def flipped_signature(document: dict[str, Any]) -> None:
    raw = bytearray(base64.b64decode(document["dsseEnvelope"]["signatures"][0]["sig"]))
    raw[-1] ^= 1
    document["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(raw)).decode()


def other_predicate(document: dict[str, Any]) -> None:
    statement = json.loads(base64.b64decode(document["dsseEnvelope"]["payload"]))
    statement["predicateType"] = "https://slsa.dev/provenance/v1"
    document["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()


@pytest.mark.parametrize(
    ("change", "verdict", "fragment"),
    [
        (tampered_payload, "wrong-key", "do not verify"),
        (flipped_signature, "wrong-key", "do not verify"),
        (other_predicate, "invalid", "an attestation of 'https://slsa.dev/provenance/v1'"),
        (lambda d: d.update(mediaType="application/json"), "invalid", "not a sigstore bundle"),
        (lambda d: d.pop("dsseEnvelope"), "invalid", "neither a dsseEnvelope"),
        (
            lambda d: d["dsseEnvelope"].update(payloadType="text/plain"),
            "invalid",
            "not an in-toto statement",
        ),
        (lambda d: d["dsseEnvelope"].update(payload="***"), "invalid", "not base64"),
        (
            lambda d: d["dsseEnvelope"]["signatures"].append({"sig": "AA=="}),
            "invalid",
            "exactly one signature",
        ),
    ],
)
def test_altered_bundles(
    key: signatures.PrivateKey, change: Any, verdict: str, fragment: str
) -> None:
    bundle = redo(bundle_of(sb.signed_bundle(key, SUBJECT, signatures.ZERO_TIME)), change)
    check = sb.check_bundles(public(key), DIGEST, [bundle])
    assert check.verdict == verdict and fragment in check.detail, check


def test_a_bundle_that_is_not_json_is_invalid(key: signatures.PrivateKey) -> None:
    assert sb.check_bundles(public(key), DIGEST, [b"\x00not json"]).detail == "a bundle is not JSON"


def message_bundle(key: signatures.PrivateKey, digest: str) -> bytes:
    raw = bytes.fromhex(digest[7:])
    signature = key.sign(raw, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    return json.dumps(
        {
            "mediaType": sb.BUNDLE_MEDIA_TYPE,
            "verificationMaterial": {"publicKey": {"hint": ""}},
            "messageSignature": {
                "messageDigest": {
                    "algorithm": "SHA2_256",
                    "digest": base64.b64encode(raw).decode(),
                },
                "signature": base64.b64encode(signature).decode(),
            },
        }
    ).encode()


def test_a_message_signature_bundle_binds_to_the_manifest_digest(
    key: signatures.PrivateKey,
) -> None:
    assert sb.check_bundles(public(key), DIGEST, [message_bundle(key, DIGEST)]).verdict == (
        "verified"
    )
    assert sb.check_bundles(public(key), DIGEST, [message_bundle(key, OTHER)]).verdict == "invalid"
    other = public(signatures.generate_private_key())
    assert sb.check_bundles(other, DIGEST, [message_bundle(key, DIGEST)]).verdict == "wrong-key"


# -- the referrers tag schema ------------------------------------------------------------------
def test_the_referrers_tag_and_its_index() -> None:
    assert sb.referrers_tag(DIGEST) == "sha256-" + DIGEST[7:]
    with pytest.raises(ValueError, match="not a sha256 digest"):
        sb.referrers_tag("sha512:abc")
    a = {"mediaType": "m", "size": 1, "digest": "sha256:" + "2" * 64}
    b = {"mediaType": "m", "size": 1, "digest": "sha256:" + "1" * 64}
    index = json.loads(sb.referrers_index([a, b, a]))
    assert index["mediaType"] == sb.OCI_INDEX and index["manifests"] == [b, a]
    assert sb.listed_referrers({"manifests": "x"}) == "the referrers answer is not an image index"


@pytest.mark.parametrize(
    ("manifest", "fragment"),
    [
        ("x", "not a manifest"),
        ({"layers": []}, "exactly one layer"),
        ({"layers": [{"mediaType": "application/json"}]}, "not a sigstore bundle"),
        ({"layers": [{"mediaType": sb.BUNDLE_MEDIA_TYPE}]}, "no digest or size"),
    ],
)
def test_referrers_that_are_not_bundles(manifest: Any, fragment: str) -> None:
    reason = sb.bundle_layer(manifest, DIGEST)
    assert isinstance(reason, str) and fragment in reason


def test_which_listed_referrers_are_read() -> None:
    assert sb.may_be_bundle({"artifactType": sb.BUNDLE_MEDIA_TYPE})
    assert sb.may_be_bundle({"artifactType": sb.EMPTY_MEDIA_TYPE})  # ggcr lists the config's
    assert sb.may_be_bundle({})
    assert not sb.may_be_bundle({"artifactType": "application/spdx+json"})


# -- bad key input -----------------------------------------------------------------------------
def test_an_rsa_public_key_is_one_line() -> None:
    pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(ConfigError, match=r"^rsa\.pub: a \w+, not an ECDSA or Ed25519 key$"):
        signatures.load_public_key(pem, "rsa.pub")


def test_a_probe_given_a_file_that_is_not_a_key_fails_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "cosign.pub"
    path.write_text("-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n")
    with pytest.raises(ActivityFailed) as caught:
        probe_module.image_signature(
            "app:v1", public_key=str(path), configuration={"registry_url": "http://reg.test"}
        )
    assert str(caught.value) == (
        f"image_signature: public_key {path}: not a PEM public key (expected cosign.pub)"
    )


# -- the probe at the HTTP boundary -------------------------------------------------------------


def routes_for(artifact: sb.BundleArtifact, listing: tuple[str, int, bytes] | None) -> Routes:
    """The image and its bundle referrer; ``listing``: where it is listed (a path, a status, a
    body), None for nowhere."""
    routes: Routes = {
        "/v2/app/manifests/v1": (200, IMAGE_MANIFEST, "application/vnd.oci.image.manifest.v1+json"),
        f"/v2/app/manifests/{artifact.digest}": (200, artifact.manifest, signatures.OCI_MANIFEST),
    }
    for blob in artifact.blobs:
        routes[f"/v2/app/blobs/{sha(blob)}"] = (200, blob, "application/octet-stream")
    if listing is not None:
        path, status, body = listing
        routes[path] = (status, body, sb.OCI_INDEX)
    return routes


def run(tmp_path: Path, key: signatures.PrivateKey) -> dict[str, Any]:
    path = tmp_path / "cosign.pub"
    path.write_bytes(signatures.public_pem(key))
    return probe_module.image_signature(
        "app:v1", public_key=str(path), configuration={"registry_url": "http://reg.test"}
    )


def test_a_bundle_listed_by_the_referrers_api_verifies(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, key: signatures.PrivateKey
) -> None:
    artifact = sb.signed_bundle(key, SUBJECT, signatures.ZERO_TIME)
    index = sb.referrers_index([artifact.descriptor])
    asked = serve(monkeypatch, routes_for(artifact, (f"/v2/app/referrers/{DIGEST}", 200, index)))
    result = run(tmp_path, key)
    assert result["verdict"] == "verified" and result["discovery"] == "referrers-api"
    assert result["format"] == "bundle" and result["signature_tag"] is None
    assert result["signature_digest"] == artifact.digest and result["binds_to_pulled"]
    assert result["referrers"]["outcome"] == "listed" and not result["referrers"]["fell_back"]
    # A verified bundle ends the search: neither tag is asked for.
    assert not any("/manifests/sha256-" in path for path in asked)


def test_an_api_answer_that_is_not_an_index_fails_with_no_fallback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, key: signatures.PrivateKey
) -> None:
    artifact = sb.signed_bundle(key, SUBJECT, signatures.ZERO_TIME)
    tag_path = f"/v2/app/manifests/{sb.referrers_tag(DIGEST)}"
    routes = routes_for(artifact, (tag_path, 200, sb.referrers_index([artifact.descriptor])))
    routes[f"/v2/app/referrers/{DIGEST}"] = (200, b"<html>", "text/html")
    asked = serve(monkeypatch, routes)
    result = run(tmp_path, key)
    # As cosign: a broken API is no licence to read the referrers tag instead.
    assert result["verdict"] is None and tag_path not in asked
    referrers = result["referrers"]
    assert referrers["outcome"] == "failed" and referrers["fell_back"] is False
    assert referrers["error"]["class"] == "protocol" and result["error"] == referrers["error"]


def test_an_absent_api_falls_back_to_the_referrers_tag(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, key: signatures.PrivateKey
) -> None:
    artifact = sb.signed_bundle(key, SUBJECT, signatures.ZERO_TIME)
    tag_path = f"/v2/app/manifests/{sb.referrers_tag(DIGEST)}"
    index = sb.referrers_index([artifact.descriptor])
    serve(monkeypatch, routes_for(artifact, (tag_path, 200, index)))
    result = run(tmp_path, key)
    assert result["verdict"] == "verified" and result["discovery"] == "referrers-tag"
    assert result["signature_tag"] == sb.referrers_tag(DIGEST)
    referrers = result["referrers"]
    assert referrers["status"] == 404 and referrers["outcome"] == "absent"
    assert referrers["fell_back"] is True and referrers["error"] is None


def test_a_failing_api_and_nothing_elsewhere_is_no_verdict(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, key: signatures.PrivateKey
) -> None:
    artifact = sb.signed_bundle(key, SUBJECT, signatures.ZERO_TIME)
    routes = routes_for(artifact, None)
    routes[f"/v2/app/referrers/{DIGEST}"] = (503, b"{}", "application/json")
    serve(monkeypatch, routes)
    result = run(tmp_path, key)
    # Maybe signed, unseen: never "unsigned".
    assert result["verdict"] is None and result["error"]["class"] == "server-error"
    assert result["referrers"]["outcome"] == "failed"


def test_a_listed_bundle_that_is_gone_is_invalid_not_a_crash(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, key: signatures.PrivateKey
) -> None:
    artifact = sb.signed_bundle(key, SUBJECT, signatures.ZERO_TIME)
    index = sb.referrers_index([{**artifact.descriptor, "digest": OTHER}])
    serve(monkeypatch, routes_for(artifact, (f"/v2/app/referrers/{DIGEST}", 200, index)))
    result = run(tmp_path, key)
    assert result["verdict"] == "invalid" and "is not there" in result["detail"]
    assert result["discovery"] == "referrers-api"


def test_bundle_and_legacy_signatures_the_best_verdict_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, key: signatures.PrivateKey
) -> None:
    # A bundle of another key, a legacy signature of this one: verified, by the legacy tag.
    other = signatures.generate_private_key()
    artifact = sb.signed_bundle(other, SUBJECT, signatures.ZERO_TIME)
    index = sb.referrers_index([artifact.descriptor])
    routes = routes_for(artifact, (f"/v2/app/referrers/{DIGEST}", 200, index))
    legacy = signatures.signed_artifact(key, "app", DIGEST)
    routes[f"/v2/app/manifests/{signatures.signature_tag(DIGEST)}"] = (
        200,
        legacy.manifest,
        signatures.OCI_MANIFEST,
    )
    for blob in legacy.blobs:
        routes[f"/v2/app/blobs/{sha(blob)}"] = (200, blob, "application/octet-stream")
    serve(monkeypatch, routes)
    result = run(tmp_path, key)
    assert result["verdict"] == "verified" and result["discovery"] == "legacy-tag"
    assert result["signatures"] == 2 and result["bound_digests"] == [DIGEST, DIGEST]
