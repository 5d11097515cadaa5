"""cosign's legacy signature format and the verdicts, without a registry; and the probe at the
HTTP boundary for what the sandbox's registries cannot be made to serve (a referrers API that
answers, signature manifests that are not cosign's)."""

import base64
import json
from pathlib import Path

import pytest
from chaoslib.exceptions import ActivityFailed
from support.mock_registry import serve, sha

from chaosregistry.errors import ConfigError
from chaosregistry.probes import signature as probe_module
from chaosregistry.trust import signatures

DIGEST = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64


def layers_of(
    artifact: signatures.SignatureArtifact,
) -> list[tuple[signatures.SignatureLayer, bytes]]:
    blobs = {sha(blob): blob for blob in artifact.blobs}
    found = signatures.signature_layers(json.loads(artifact.manifest))
    assert not isinstance(found, str)
    return [(layer, blobs[layer.digest]) for layer in found]


@pytest.fixture(scope="module")
def key() -> signatures.PrivateKey:
    return signatures.generate_private_key()


def public(key: signatures.PrivateKey) -> signatures.PublicKey:
    return signatures.load_public_key(signatures.public_pem(key), "test")


def test_the_payload_is_cosigns_simple_signing_document() -> None:
    document = json.loads(signatures.payload("signed/app", DIGEST))
    assert document == {
        "critical": {
            "identity": {"docker-reference": "signed/app"},
            "image": {"docker-manifest-digest": DIGEST},
            "type": "cosign container image signature",
        },
        "optional": None,
    }


def test_the_signature_manifest_carries_the_payload_and_its_annotation(
    key: signatures.PrivateKey,
) -> None:
    artifact = signatures.signed_artifact(key, "signed/app", DIGEST)
    manifest = json.loads(artifact.manifest)
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
    assert set(layer["annotations"]) == {"dev.cosignproject.cosign/signature"}
    config = json.loads(artifact.blobs[0])
    assert config["rootfs"]["diff_ids"] == [layer["digest"]]
    assert signatures.signature_tag(DIGEST) == "sha256-" + "a" * 64 + ".sig"
    # RFC 6979: signing again gives the same bytes (an `up` again pushes nothing new).
    assert signatures.signed_artifact(key, "signed/app", DIGEST).digest == artifact.digest


def test_the_four_verdicts(key: signatures.PrivateKey) -> None:
    artifact = signatures.signed_artifact(key, "signed/app", DIGEST)
    layers = layers_of(artifact)
    assert signatures.check_signatures(public(key), DIGEST, layers).verdict == "verified"
    other_key = public(signatures.generate_private_key())
    wrong = signatures.check_signatures(other_key, DIGEST, layers)
    assert wrong.verdict == "wrong-key" and wrong.bound_digests == [DIGEST]
    moved = signatures.check_signatures(public(key), OTHER, layers)
    assert moved.verdict == "invalid" and "vouches for" in moved.detail
    # A payload re-pointed at this digest with the old signature: bound, but does not verify.
    forged = signatures.signature_artifact(
        [(signatures.payload("signed/app", OTHER), layers[0][0].signature or "")]
    )
    assert signatures.check_signatures(public(key), OTHER, layers_of(forged)).verdict == "wrong-key"


@pytest.mark.parametrize(
    ("payload", "signature", "fragment"),
    [
        (b"not json", "AAAA", "not a simple signing document"),
        (
            json.dumps(
                {"critical": {"type": "x", "image": {"docker-manifest-digest": DIGEST}}}
            ).encode(),
            "AAAA",
            "of type 'x'",
        ),
        (signatures.payload("r", DIGEST), "!!not base64!!", "not base64"),
    ],
)
def test_malformed_signatures_are_invalid(payload: bytes, signature: str, fragment: str) -> None:
    artifact = signatures.signature_artifact([(payload, signature)])
    check = signatures.check_signatures(
        public(signatures.generate_private_key()), DIGEST, layers_of(artifact)
    )
    assert check.verdict == "invalid" and fragment in check.detail


def test_a_manifest_without_simple_signing_layers_is_not_a_signature() -> None:
    assert "no application/vnd.dev.cosign" in str(signatures.signature_layers({"layers": []}))
    assert "lists no layers" in str(signatures.signature_layers({}))


def test_a_file_that_is_not_a_public_key_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"x\.pub: not a PEM public key"):
        signatures.load_public_key(b"hello", "x.pub")
    private = signatures.private_pem(signatures.generate_private_key())
    with pytest.raises(ConfigError, match="not a PEM public key"):
        signatures.load_public_key(private, "x.pub")


# -- the probe at the HTTP boundary ------------------------------------------------------------
IMAGE_MANIFEST = json.dumps({"schemaVersion": 2, "layers": [], "config": {}}).encode()


def key_file(tmp_path: Path, key: signatures.PrivateKey) -> str:
    path = tmp_path / "cosign.pub"
    path.write_bytes(signatures.public_pem(key))
    return str(path)


def test_a_referrers_api_that_answers_is_reported(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, key: signatures.PrivateKey
) -> None:
    digest = sha(IMAGE_MANIFEST)
    artifact = signatures.signed_artifact(key, "app", digest)
    referrers = {
        "manifests": [
            {"artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json", "digest": OTHER}
        ]
    }
    routes = {
        "/v2/app/manifests/v1": (200, IMAGE_MANIFEST, "application/vnd.oci.image.manifest.v1+json"),
        f"/v2/app/referrers/{digest}": (
            200,
            json.dumps(referrers).encode(),
            "application/vnd.oci.image.index.v1+json",
        ),
        f"/v2/app/manifests/{signatures.signature_tag(digest)}": (
            200,
            artifact.manifest,
            "application/vnd.oci.image.manifest.v1+json",
        ),
    }
    for blob in artifact.blobs:
        routes[f"/v2/app/blobs/{sha(blob)}"] = (200, blob, "application/octet-stream")
    serve(monkeypatch, routes)
    config = {"registry_url": "http://reg.test"}
    result = probe_module.image_signature(
        "app:v1", public_key=key_file(tmp_path, key), configuration=config
    )
    assert result["verdict"] == "verified" and result["discovery"] == "legacy-tag"
    # Listed as a bundle, and not there to read: the registry failed us on it, reported.
    assert result["referrers"] == {
        "supported": True,
        "status": 200,
        "outcome": "listed",
        "fell_back": False,
        "count": 1,
        "bundles": 0,
        "error": None,
    }


def test_a_failing_referrers_api_is_reported_and_the_tag_still_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, key: signatures.PrivateKey
) -> None:
    digest = sha(IMAGE_MANIFEST)
    artifact = signatures.signed_artifact(key, "app", digest)
    routes = {
        "/v2/app/manifests/v1": (200, IMAGE_MANIFEST, "application/vnd.oci.image.manifest.v1+json"),
        f"/v2/app/referrers/{digest}": (500, b"{}", "application/json"),
        f"/v2/app/manifests/{signatures.signature_tag(digest)}": (
            200,
            artifact.manifest,
            "application/vnd.oci.image.manifest.v1+json",
        ),
    }
    for blob in artifact.blobs:
        routes[f"/v2/app/blobs/{sha(blob)}"] = (200, blob, "application/octet-stream")
    serve(monkeypatch, routes)
    result = probe_module.image_signature(
        "app:v1",
        public_key=key_file(tmp_path, key),
        configuration={"registry_url": "http://reg.test"},
    )
    assert result["verdict"] == "verified" and result["discovery"] == "legacy-tag"
    referrers = result["referrers"]
    assert referrers["status"] == 500 and referrers["supported"] is False
    assert referrers["outcome"] == "failed" and referrers["fell_back"] is False
    assert referrers["error"]["class"] == "server-error"


def test_a_signature_manifest_that_is_not_cosigns_is_invalid(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, key: signatures.PrivateKey
) -> None:
    digest = sha(IMAGE_MANIFEST)
    other = json.dumps({"schemaVersion": 2, "layers": [{"mediaType": "x"}]}).encode()
    serve(
        monkeypatch,
        {
            "/v2/app/manifests/v1": (
                200,
                IMAGE_MANIFEST,
                "application/vnd.oci.image.manifest.v1+json",
            ),
            f"/v2/app/manifests/{signatures.signature_tag(digest)}": (
                200,
                other,
                "application/vnd.oci.image.manifest.v1+json",
            ),
        },
    )
    result = probe_module.image_signature(
        "app:v1",
        public_key=key_file(tmp_path, key),
        configuration={"registry_url": "http://reg.test"},
    )
    assert result["verdict"] == "invalid" and "no application/vnd.dev.cosign" in result["detail"]
    assert result["referrers"]["status"] == 404


def test_a_registry_failure_is_data_not_an_exception(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, key: signatures.PrivateKey
) -> None:
    serve(monkeypatch, {"/v2/app/manifests/v1": (503, b"{}", "application/json")})
    result = probe_module.image_signature(
        "app:v1",
        public_key=key_file(tmp_path, key),
        configuration={"registry_url": "http://reg.test"},
    )
    assert result["verdict"] is None and result["verified"] is False
    assert result["error"]["class"] == "server-error"


def test_no_key_and_no_sandbox_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Away from the checkout, whose runs/sandbox (left by `make gameday`) would lend its key.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ActivityFailed, match="public_key: give the path"):
        probe_module.image_signature("app:v1", configuration={"registry_url": "http://reg.test"})


def test_base64_helper_rejects_garbage() -> None:
    assert signatures._decode(base64.b64encode(b"x").decode()) == b"x"
    assert signatures._decode("***") is None
