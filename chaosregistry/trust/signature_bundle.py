"""cosign's image signatures in its bundle format (OCI 1.1 referrers), made and checked without
I/O.

What ``cosign sign --key`` (v3, the default "new bundle format") stores for an image, offline
(sigstore/cosign ``pkg/oci/remote`` ``WriteReferrer``; the bundle is protobuf-specs' Sigstore
bundle v0.3 in its JSON form):

- a *referrer*: an OCI image manifest whose ``subject`` is the signed manifest's descriptor and
  whose ``artifactType`` (top level and on the config) is
  ``application/vnd.dev.sigstore.bundle.v0.3+json``; its config is the empty descriptor
  (``application/vnd.oci.empty.v1+json``, the bytes ``{}``), its one layer the bundle;
- the bundle: ``{"mediaType": ..., "verificationMaterial": {"publicKey": {"hint": ...}},
  "dsseEnvelope": {"payload": b64, "payloadType": "application/vnd.in-toto+json",
  "signatures": [{"sig": b64}]}}``, the payload an in-toto statement whose ``subject`` names the
  signed digest and whose ``predicateType`` is ``https://sigstore.dev/cosign/sign/v1``; the
  signature is over DSSE's pre-authentication encoding (PAE) of the payload. A bundle may
  instead carry a ``messageSignature`` (``messageDigest`` {``algorithm`` ``SHA2_256``,
  ``digest`` b64} and ``signature``): for an image, the message is the manifest, so the digest
  must be the image's, and the signature is over that digest (ECDSA, prehashed);
- where to find it: the registry's referrers API (``GET /v2/<name>/referrers/<digest>``), or
  where the registry has none (it answers 404), the OCI referrers *tag schema*: a tag
  ``sha256-<hex>`` holding an image index that lists the referrers (descriptors with their
  ``artifactType``), which the writer keeps up to date.

:func:`check_bundles` gives the same four verdicts as :mod:`chaosregistry.trust.signatures`
(``unsigned``, no referrer that is a bundle, is the caller's).
"""

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from chaosregistry.oci.blobs import OCI_INDEX, OCI_MANIFEST, sha256_digest
from chaosregistry.trust.signatures import (
    BUNDLE_ARTIFACT_TYPE_PREFIX,
    Check,
    PrivateKey,
    PublicKey,
    digest_tag,
    tallied_verdict,
    verifies,
)

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_CONFIG = b"{}"
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
IN_TOTO_STATEMENT = "https://in-toto.io/Statement/v1"
COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
CONTENT_ANNOTATION = "dev.sigstore.bundle.content"
PREDICATE_ANNOTATION = "dev.sigstore.bundle.predicateType"
CREATED_ANNOTATION = "org.opencontainers.image.created"
# At most this many referrers are read per image: a registry listing thousands is not
# a signature store we can judge in a probe's time.
MAX_REFERRERS = 16


def referrers_tag(digest: str) -> str:
    """The referrers tag schema's tag for ``digest``: ``sha256-<hex>``."""
    return digest_tag(digest)


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what a DSSE signature is over."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def statement(digest: str) -> bytes:
    """The in-toto statement ``cosign sign`` signs for the image at ``digest``."""
    algorithm, _, hexdigest = digest.partition(":")
    document = {
        "_type": IN_TOTO_STATEMENT,
        "subject": [{"digest": {algorithm: hexdigest}, "annotations": {}}],
        "predicateType": COSIGN_SIGN_PREDICATE,
        "predicate": {},
    }
    return json.dumps(document, separators=(",", ":")).encode()


def key_hint(key: PublicKey) -> str:
    """cosign's ``publicKey.hint``: base64 of the SHA-256 of the key's DER form."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(der).digest()).decode("ascii")


def bundle_document(key: PrivateKey, payload: bytes) -> bytes:
    """A v0.3 bundle holding a DSSE envelope of the in-toto ``payload`` signed with ``key``
    (RFC 6979: the same bytes each time)."""
    signature = key.sign(
        pae(IN_TOTO_PAYLOAD_TYPE, payload),
        ec.ECDSA(hashes.SHA256(), deterministic_signing=True),
    )
    document = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": key_hint(key.public_key())}},
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode("ascii"),
            "payloadType": IN_TOTO_PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(signature).decode("ascii")}],
        },
    }
    return json.dumps(document, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int

    def as_dict(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "size": self.size, "digest": self.digest}


@dataclass(frozen=True)
class BundleArtifact:
    """A referrer manifest and its blobs (the empty config, the bundle), ready to push (blobs
    first, the manifest by its digest)."""

    manifest: bytes
    blobs: tuple[bytes, ...]
    subject: str
    media_type: str = OCI_MANIFEST

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)

    @property
    def descriptor(self) -> dict[str, Any]:
        """As listed by the referrers API or the referrers tag's index."""
        return {
            "mediaType": self.media_type,
            "size": len(self.manifest),
            "digest": self.digest,
            "artifactType": BUNDLE_MEDIA_TYPE,
        }


def bundle_artifact(bundle: bytes, subject: Descriptor, created: str) -> BundleArtifact:
    """The referrer manifest cosign writes for ``bundle`` about ``subject``. ``created``
    (RFC 3339) is its annotation: cosign puts the time of signing."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": EMPTY_MEDIA_TYPE,
            "size": len(EMPTY_CONFIG),
            "digest": sha256_digest(EMPTY_CONFIG),
            "artifactType": BUNDLE_MEDIA_TYPE,
        },
        "layers": [
            {"mediaType": BUNDLE_MEDIA_TYPE, "size": len(bundle), "digest": sha256_digest(bundle)}
        ],
        "annotations": {
            CONTENT_ANNOTATION: "dsse-envelope",
            PREDICATE_ANNOTATION: COSIGN_SIGN_PREDICATE,
            CREATED_ANNOTATION: created,
        },
        "subject": subject.as_dict(),
        "artifactType": BUNDLE_MEDIA_TYPE,
    }
    body = json.dumps(manifest, separators=(",", ":")).encode()
    return BundleArtifact(body, (EMPTY_CONFIG, bundle), subject.digest)


def signed_bundle(key: PrivateKey, subject: Descriptor, created: str) -> BundleArtifact:
    """What ``cosign sign --key`` (bundle format, no transparency log) stores for ``subject``."""
    return bundle_artifact(bundle_document(key, statement(subject.digest)), subject, created)


def referrers_index(descriptors: Sequence[Mapping[str, Any]]) -> bytes:
    """The referrers tag's image index listing ``descriptors`` (sorted by digest, one each)."""
    unique = {str(item["digest"]): dict(item) for item in descriptors}
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [unique[digest] for digest in sorted(unique)],
    }
    return json.dumps(document, separators=(",", ":")).encode()


def listed_referrers(index: Any) -> list[dict[str, Any]] | str:
    """The descriptors of a referrers index (the API's answer or the tag's manifest), or a line
    saying why it is not one."""
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        return "the referrers answer is not an image index"
    return [
        item
        for item in index["manifests"]
        if isinstance(item, dict) and isinstance(item.get("digest"), str)
    ]


def may_be_bundle(descriptor: Mapping[str, Any]) -> bool:
    """Whether a listed referrer is worth reading as a bundle: its ``artifactType`` says so,
    or says nothing useful (ggcr's registry lists the config's media type there)."""
    kind = str(descriptor.get("artifactType") or "")
    return kind.startswith(BUNDLE_ARTIFACT_TYPE_PREFIX) or kind in ("", EMPTY_MEDIA_TYPE)


@dataclass(frozen=True)
class BundleLayer:
    digest: str
    size: int


def bundle_layer(manifest: Any, subject: str) -> BundleLayer | str:
    """The bundle layer of a referrer manifest about ``subject``, or a line saying why the
    manifest is not a sigstore bundle referrer of it (cosign wants exactly one bundle layer)."""
    if not isinstance(manifest, dict):
        return "a referrer is not a manifest"
    layers = manifest.get("layers")
    if not isinstance(layers, list) or len(layers) != 1 or not isinstance(layers[0], dict):
        return "a referrer does not have exactly one layer"
    layer = layers[0]
    if not str(layer.get("mediaType", "")).startswith(BUNDLE_ARTIFACT_TYPE_PREFIX):
        return "a referrer's layer is not a sigstore bundle"
    digest, size = layer.get("digest"), layer.get("size")
    if not isinstance(digest, str) or not isinstance(size, int):
        return "a bundle layer has no digest or size"
    named = (manifest.get("subject") or {}).get("digest")
    if named != subject:
        return f"a bundle referrer's subject is {named}, not {subject}"
    return BundleLayer(digest, size)


def check_bundles(key: PublicKey, digest: str, bundles: Sequence[bytes]) -> Check:
    """The verdict on ``bundles`` (each a bundle layer's bytes) for the image at ``digest``."""
    bound: list[str] = []
    problems: list[str] = []
    well_formed = verified = 0
    for data in bundles:
        claim = _claims(data)
        if isinstance(claim, str):
            problems.append(claim)
            continue
        claimed, signature, signed = claim
        bound.extend(claimed)
        if digest not in claimed:
            problems.append(f"a bundle vouches for {', '.join(claimed) or 'nothing'}, not {digest}")
            continue
        well_formed += 1
        if _verifies(key, signature, signed):
            verified += 1
    return tallied_verdict(
        "bundle",
        digest,
        verified=verified,
        well_formed=well_formed,
        problems=problems,
        bound=bound,
        none_found="no bundle",
    )


@dataclass(frozen=True)
class _Prehashed:
    digest: bytes


# (the digests claimed, the signature, what it signs: PAE bytes, or a prehashed digest)
_Claim = tuple[list[str], bytes, bytes | _Prehashed]


def _claims(data: bytes) -> _Claim | str:
    try:
        document = json.loads(data)
    except ValueError:
        return "a bundle is not JSON"
    if not isinstance(document, dict):
        return "a bundle is not a JSON object"
    kind = str(document.get("mediaType", ""))
    if not kind.startswith(BUNDLE_ARTIFACT_TYPE_PREFIX):
        return f"a bundle's mediaType is {kind!r}, not a sigstore bundle"
    if isinstance(document.get("dsseEnvelope"), dict):
        return _dsse(document["dsseEnvelope"])
    if isinstance(document.get("messageSignature"), dict):
        return _message(document["messageSignature"])
    return "a bundle has neither a dsseEnvelope nor a messageSignature"


def _dsse(envelope: Mapping[str, Any]) -> _Claim | str:
    payload_type = envelope.get("payloadType")
    if payload_type != IN_TOTO_PAYLOAD_TYPE:
        return f"a DSSE payload of type {payload_type!r}, not an in-toto statement"
    payload = _decode(envelope.get("payload"))
    signatures = envelope.get("signatures")
    if payload is None:
        return "a DSSE payload is missing or not base64"
    if not isinstance(signatures, list) or len(signatures) != 1:
        return "a DSSE envelope does not carry exactly one signature"
    signature = _decode(signatures[0].get("sig") if isinstance(signatures[0], dict) else None)
    if signature is None:
        return "a DSSE signature is missing or not base64"
    try:
        document = json.loads(payload)
        kind, predicate = document["_type"], document["predicateType"]
        subjects = document["subject"]
        claimed = [
            f"{algorithm}:{value}"
            for item in subjects
            for algorithm, value in (item.get("digest") or {}).items()
        ]
    except (ValueError, KeyError, TypeError, AttributeError):
        return "a DSSE payload is not an in-toto statement"
    if kind != IN_TOTO_STATEMENT:
        return f"a DSSE payload's _type is {kind!r}, not an in-toto statement"
    if predicate != COSIGN_SIGN_PREDICATE:
        return f"an attestation of {predicate!r}, not a cosign signature"
    return claimed, signature, pae(IN_TOTO_PAYLOAD_TYPE, payload)


def _message(signed: Mapping[str, Any]) -> _Claim | str:
    message = signed.get("messageDigest")
    if not isinstance(message, dict) or message.get("algorithm") != "SHA2_256":
        return "a messageSignature without a SHA2_256 messageDigest"
    raw = _decode(message.get("digest"))
    signature = _decode(signed.get("signature"))
    if raw is None or len(raw) != 32:
        return "a messageDigest that is not 32 bytes of base64"
    if signature is None:
        return "a messageSignature's signature is missing or not base64"
    return ["sha256:" + raw.hex()], signature, _Prehashed(raw)


def _decode(value: Any) -> bytes | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _verifies(key: PublicKey, signature: bytes, signed: "bytes | _Prehashed") -> bool:
    if not isinstance(signed, _Prehashed):
        return verifies(key, signature, signed)
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return False  # Ed25519 cannot verify a prehashed message
    try:
        key.verify(signature, signed.digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    except (InvalidSignature, ValueError):
        return False
    return True
