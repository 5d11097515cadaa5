"""cosign's image signatures in its legacy tag format, made and checked without I/O.

What cosign (sigstore/cosign, ``pkg/oci/static``, ``pkg/types``; the payload type from
sigstore/sigstore ``pkg/signature/payload``) stores for a key-signed image, offline:

- a tag ``sha256-<hex>.sig`` in the image's own repository, ``<hex>`` the signed manifest's
  digest (the index's, for a multi-platform image);
- an OCI image manifest under that tag whose layers are *simple signing* payloads, media type
  ``application/vnd.dev.cosign.simplesigning.v1+json``, each annotated with the base64 DER
  ECDSA signature over the payload's bytes (``dev.cosignproject.cosign/signature``);
- a payload naming what it vouches for:
  ``{"critical": {"identity": {"docker-reference": <repository>}, "image":
  {"docker-manifest-digest": <digest>}, "type": "cosign container image signature"},
  "optional": ...}``.

:func:`check_signatures` gives the verdict a verifier owes: ``verified`` (a payload that binds
to this digest verifies with the key), ``wrong-key`` (well-formed signatures of this digest, none
verifies with the key: another key signed it, or its signature bytes were altered), ``invalid``
(a signature artifact is there but none of it can vouch for this image: not the format, a
payload naming another digest or another type, a signature that is not base64 DER).
``unsigned`` (no signature tag) is the caller's, which looks the tag up.

Only ECDSA (P-256/384/521) and Ed25519 keys: what ``cosign generate-key-pair`` makes (P-256).
"""

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from chaosregistry.errors import ConfigError
from chaosregistry.oci.blobs import OCI_CONFIG, OCI_MANIFEST, sha256_digest

SIMPLE_SIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
COSIGN_SIGNATURE_TYPE = "cosign container image signature"
SIGNATURE_TAG_SUFFIX = ".sig"
# cosign writes Go's zero time into the signature image's config.
ZERO_TIME = "0001-01-01T00:00:00Z"
# cosign's new bundle format, found through the referrers API (or its sha256-<hex> tag index).
BUNDLE_ARTIFACT_TYPE_PREFIX = "application/vnd.dev.sigstore.bundle"

VERIFIED = "verified"
UNSIGNED = "unsigned"
INVALID = "invalid"
WRONG_KEY = "wrong-key"
VERDICTS = (VERIFIED, UNSIGNED, INVALID, WRONG_KEY)

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
PrivateKey = ec.EllipticCurvePrivateKey


def digest_tag(digest: str) -> str:
    """``sha256-<hex>``: the tag name both formats derive from a digest (the referrers tag
    schema's tag as it is; the legacy signature tag with ``.sig`` after it)."""
    algorithm, _, hexdigest = digest.partition(":")
    if algorithm != "sha256" or len(hexdigest) != 64:
        raise ValueError(f"not a sha256 digest: {digest!r}")
    return f"sha256-{hexdigest}"


def signature_tag(digest: str) -> str:
    """The tag cosign stores ``digest``'s signatures under: ``sha256-<hex>.sig``."""
    return digest_tag(digest) + SIGNATURE_TAG_SUFFIX


def load_public_key(data: bytes, source: str) -> PublicKey:
    """A PEM public key (``-----BEGIN PUBLIC KEY-----``, as ``cosign.pub``); ConfigError naming
    ``source`` when the bytes are not one, or not a kind cosign signs with."""
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        raise ConfigError(f"{source}: not a PEM public key (expected cosign.pub)") from None
    if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
        raise ConfigError(f"{source}: a {type(key).__name__}, not an ECDSA or Ed25519 key")
    return key


def generate_private_key() -> PrivateKey:
    """A fresh ECDSA P-256 key, the kind ``cosign generate-key-pair`` makes."""
    return ec.generate_private_key(ec.SECP256R1())


def public_pem(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def private_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_key(data: bytes) -> PrivateKey:
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError("the signing key is not an ECDSA private key")
    return key


def payload(repository: str, digest: str) -> bytes:
    """The simple signing payload vouching that ``repository`` at ``digest`` is signed."""
    document = {
        "critical": {
            "identity": {"docker-reference": repository},
            "image": {"docker-manifest-digest": digest},
            "type": COSIGN_SIGNATURE_TYPE,
        },
        "optional": None,
    }
    return json.dumps(document, separators=(",", ":")).encode()


def sign(key: PrivateKey, data: bytes) -> str:
    """base64 of the DER ECDSA-SHA256 signature over ``data`` (RFC 6979: the same bytes each
    time, so a sandbox signed again pushes the same manifest)."""
    signature = key.sign(data, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    return base64.b64encode(signature).decode("ascii")


@dataclass(frozen=True)
class SignatureArtifact:
    """The manifest and blobs of one ``.sig`` tag, ready to push (blobs first)."""

    manifest: bytes
    blobs: tuple[bytes, ...]
    media_type: str = OCI_MANIFEST

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)


def signature_artifact(layers: Sequence[tuple[bytes, str]]) -> SignatureArtifact:
    """The ``.sig`` manifest holding ``layers`` (payload bytes, base64 signature), with the
    image config cosign writes for it (the payloads' diff_ids)."""
    config = json.dumps(
        {
            "architecture": "",
            "created": ZERO_TIME,
            "history": [{"created": ZERO_TIME} for _ in layers],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": [sha256_digest(data) for data, _ in layers]},
            "config": {},
        },
        separators=(",", ":"),
    ).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "size": len(config), "digest": sha256_digest(config)},
        "layers": [
            {
                "mediaType": SIMPLE_SIGNING_MEDIA_TYPE,
                "size": len(data),
                "digest": sha256_digest(data),
                "annotations": {SIGNATURE_ANNOTATION: signature},
            }
            for data, signature in layers
        ],
    }
    blobs = (config, *(data for data, _ in layers))
    return SignatureArtifact(json.dumps(manifest, separators=(",", ":")).encode(), blobs)


def signed_artifact(key: PrivateKey, repository: str, digest: str) -> SignatureArtifact:
    """What ``cosign sign --key`` would store for ``repository`` at ``digest``."""
    data = payload(repository, digest)
    return signature_artifact([(data, sign(key, data))])


@dataclass(frozen=True)
class SignatureLayer:
    """One signature layer of a ``.sig`` manifest, as read from it."""

    digest: str
    size: int
    signature: str | None  # the annotation, None when missing


def signature_layers(manifest: Mapping[str, Any]) -> list[SignatureLayer] | str:
    """The simple signing layers of a ``.sig`` manifest, or a line saying why it is not one."""
    layers = manifest.get("layers")
    if not isinstance(layers, list):
        return "the signature manifest lists no layers"
    found = []
    for layer in layers:
        if not isinstance(layer, dict) or layer.get("mediaType") != SIMPLE_SIGNING_MEDIA_TYPE:
            continue
        annotations = layer.get("annotations") or {}
        signature = annotations.get(SIGNATURE_ANNOTATION) if isinstance(annotations, dict) else None
        digest, size = layer.get("digest"), layer.get("size")
        if not isinstance(digest, str) or not isinstance(size, int):
            return "a signature layer has no digest or size"
        found.append(
            SignatureLayer(digest, size, signature if isinstance(signature, str) else None)
        )
    if not found:
        return f"the signature manifest has no {SIMPLE_SIGNING_MEDIA_TYPE} layer"
    return found


@dataclass(frozen=True)
class Check:
    """What checking one image's signatures found."""

    verdict: str
    detail: str
    # The digests the payloads vouch for (all of them, bound to this image or not).
    bound_digests: list[str] = field(default_factory=list)
    verified_layers: int = 0


def check_signatures(
    key: PublicKey, digest: str, layers: Sequence[tuple[SignatureLayer, bytes]]
) -> Check:
    """The verdict on ``layers`` (each with its payload's bytes) for the image at ``digest``."""
    bound: list[str] = []
    problems: list[str] = []
    well_formed = 0
    verified = 0
    for layer, data in layers:
        if sha256_digest(data) != layer.digest:
            problems.append(f"payload {layer.digest[:19]} does not match its digest")
            continue
        claim, problem = _claim(data)
        if claim is None:
            problems.append(problem)
            continue
        bound.append(claim)
        if claim != digest:
            problems.append(f"a payload vouches for {claim}, not {digest}")
            continue
        raw = _decode(layer.signature)
        if raw is None:
            problems.append("a signature annotation is missing or not base64")
            continue
        well_formed += 1
        if verifies(key, raw, data):
            verified += 1
    return tallied_verdict(
        "signature",
        digest,
        verified=verified,
        well_formed=well_formed,
        problems=problems,
        bound=bound,
        none_found="no signature layer",
    )


def tallied_verdict(
    noun: str,
    digest: str,
    *,
    verified: int,
    well_formed: int,
    problems: list[str],
    bound: list[str],
    none_found: str,
) -> Check:
    """The verdict once every signature of one format (``noun``: signature, bundle) is read:
    verified when one verifies with the key; wrong-key when well-formed ones of ``digest`` do
    not; else invalid, with the problems found (``none_found`` when there were none)."""
    if verified:
        return Check(VERIFIED, f"{verified} {noun}(s) verify with the key", bound, verified)
    if well_formed:
        return Check(
            WRONG_KEY,
            f"{well_formed} {noun}(s) of {digest} do not verify with this key",
            bound,
        )
    return Check(INVALID, "; ".join(problems) or none_found, bound)


def _claim(data: bytes) -> tuple[str | None, str]:
    """(the digest a payload vouches for, "") or (None, a line saying why it vouches for none)."""
    try:
        document = json.loads(data)
        critical = document["critical"]
        kind = critical["type"]
        claimed = critical["image"]["docker-manifest-digest"]
    except (ValueError, KeyError, TypeError):
        return None, "a payload is not a simple signing document"
    if kind != COSIGN_SIGNATURE_TYPE:
        return None, f"a payload is of type {kind!r}, not a container image signature"
    if not isinstance(claimed, str):
        return None, "a payload names no manifest digest"
    return claimed, ""


def _decode(signature: str | None) -> bytes | None:
    if not signature:
        return None
    try:
        return base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return None


def verifies(key: PublicKey, signature: bytes, data: bytes) -> bool:
    """Whether ``signature`` over ``data`` verifies with ``key`` (ECDSA with cosign's hash for
    the curve, or Ed25519)."""
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        else:
            key.verify(signature, data, ec.ECDSA(_hash_for(key)))
    except (InvalidSignature, ValueError):
        return False
    return True


def _hash_for(key: ec.EllipticCurvePublicKey) -> hashes.HashAlgorithm:
    # cosign's defaults: SHA-256 for P-256, SHA-384 for P-384, SHA-512 for P-521.
    size = key.curve.key_size
    if size > 384:
        return hashes.SHA512()
    if size > 256:
        return hashes.SHA384()
    return hashes.SHA256()
