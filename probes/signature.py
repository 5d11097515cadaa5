"""Probes of image signatures: does an image carry a cosign signature that verifies with a key?

Offline, in this process (``cryptography``): no transparency log, no cosign binary. The
signature is found the way cosign's legacy format stores it, a ``sha256-<hex>.sig`` tag next to
the image (``chaosregistry.signatures``); the OCI referrers API is asked first and what it said
is reported (CNCF Distribution 2.8 and 3.1 have no referrers API and answer 404), so a reader
sees which discovery path a registry leaves to its clients.
"""

import json
import time
from pathlib import Path
from typing import Any

from chaosregistry.activity import Configuration, Result, Secrets, activity
from chaosregistry.errors import ConfigError, ErrorClass, PullError
from chaosregistry.oci import RegistryClient
from chaosregistry.oci.reference import ImageReference
from chaosregistry.settings import settings_for
from chaosregistry.signatures import (
    BUNDLE_ARTIFACT_TYPE_PREFIX,
    INVALID,
    UNSIGNED,
    VERIFIED,
    PublicKey,
    check_signatures,
    load_public_key,
    signature_layers,
    signature_tag,
)

__all__ = ["image_signature"]


@activity
def image_signature(
    image: str,
    public_key: str = "",
    target: str = "registry",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Check that ``image`` carries a cosign signature that verifies with ``public_key``.

    The image's manifest (the index, for a multi-platform image: what cosign signs) is fetched
    and its digest computed; the signature must vouch for exactly that digest. Nothing is
    written, nothing is sent anywhere but the registry.

    Arguments:
      image: ``repository:tag`` or ``repository@sha256:...``.
      public_key: path of a PEM public key (``cosign.pub``; ECDSA or Ed25519). Empty: the
        sandbox's signing key (its endpoints' ``signing_public_key``).
      target: ``registry`` (see chaosregistry.settings), another configured name, or a URL.

    Returns a mapping: ``image``, ``registry``, ``public_key``, ``digest`` (of the pulled
    manifest) and ``media_type``; ``verdict``: ``verified`` (a signature of this digest verifies
    with the key), ``unsigned`` (no signature tag), ``invalid`` (a signature artifact that
    cannot vouch for this image: another digest, not the format, a corrupt signature
    encoding), ``wrong-key`` (signatures of this digest that the key does not verify: another
    key's, or altered bytes), or null when the registry failed us (see ``error``);
    ``verified`` (bool, for a range tolerance), ``detail`` (one line: why);
    ``discovery``: ``tag`` (the ``.sig`` tag was read) or null (nothing found);
    ``signature_tag``, ``signature_digest`` (null when absent), ``signatures`` (how many
    signature layers), ``bound_digests`` (what the payloads vouch for) and ``binds_to_pulled``
    (one of them is ``digest``); ``referrers`` {``supported`` (the API answered 200),
    ``status`` (any HTTP status: a failing API is reported, and the tag still read),
    ``count`` (referrers listed), ``bundles`` (of them, sigstore bundles, which this probe
    does not verify), ``error`` (null, or the classified failure when no answer came)};
    ``seconds`` {``manifest``, ``referrers``, ``signature_tag``, ``payloads``, ``verify``,
    ``total``}; ``error`` (null, or {``class``, ``message``,
    ``status``, ``detail``} of a failed registry request).

    Raises ActivityFailed, with nothing asked of the registry, when ``public_key`` is not a
    readable PEM public key or ``image`` is not a reference; and when the image itself does
    not exist on the registry (404: a typo or a digest that is not there).
    """
    reference = ImageReference.parse(image)
    settings = settings_for(configuration)
    key_path = public_key or str(settings.registry.endpoints().get("signing_public_key") or "")
    if not key_path:
        raise ConfigError("public_key: give the path of a PEM public key (cosign.pub)")
    key = _read_key(key_path)
    registry = settings.registry.resolve(secrets, target)
    result = _empty_result(str(reference), registry.url, key_path)
    started = time.perf_counter()
    with registry.client(max_connections=2) as client:
        try:
            _check(client, reference, key, result)
        except PullError as exc:
            result["error"] = exc.as_dict()
            result["detail"] = str(exc)
    result["seconds"]["total"] = time.perf_counter() - started
    result["verified"] = result["verdict"] == VERIFIED
    return result


def _read_key(path: str) -> PublicKey:
    try:
        data = Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise ConfigError(f"public_key {path}: cannot read it ({exc.strerror})") from None
    return load_public_key(data, f"public_key {path}")


def _empty_result(image: str, registry: str, key_path: str) -> dict[str, Any]:
    return {
        "image": image,
        "registry": registry,
        "public_key": key_path,
        "digest": None,
        "media_type": None,
        "verdict": None,
        "verified": False,
        "detail": "",
        "discovery": None,
        "signature_tag": None,
        "signature_digest": None,
        "signatures": 0,
        "bound_digests": [],
        "binds_to_pulled": False,
        "referrers": {
            "supported": False,
            "status": None,
            "count": 0,
            "bundles": 0,
            "error": None,
        },
        "seconds": {
            "manifest": None,
            "referrers": None,
            "signature_tag": None,
            "payloads": None,
            "verify": None,
            "total": None,
        },
        "error": None,
    }


def _timed(result: dict[str, Any], phase: str, started: float) -> None:
    result["seconds"][phase] = time.perf_counter() - started


def _check(
    client: RegistryClient, reference: ImageReference, key: PublicKey, result: dict[str, Any]
) -> None:
    started = time.perf_counter()
    try:
        manifest = client.get_manifest(reference.repository, reference.reference)
    except PullError as exc:
        if exc.error_class is ErrorClass.NOT_FOUND:
            raise ConfigError(f"image {reference} does not exist on {client.url}") from None
        raise
    _timed(result, "manifest", started)
    digest = manifest.digest
    result["digest"], result["media_type"] = digest, manifest.media_type

    started = time.perf_counter()
    referrers = result["referrers"]
    try:
        answer = client.referrers(reference.repository, digest)
    except PullError as exc:
        # Tools that need the referrers API fail here; the .sig tag is still there to read.
        answer = None
        referrers["error"] = exc.as_dict()
    _timed(result, "referrers", started)
    if answer is not None:
        referrers["status"] = answer.status
    if answer is not None and answer.status == 200:
        referrers["supported"] = True
        listed = _listed(answer.body)
        referrers["count"] = len(listed)
        referrers["bundles"] = sum(
            str(item.get("artifactType", "")).startswith(BUNDLE_ARTIFACT_TYPE_PREFIX)
            for item in listed
        )

    tag = signature_tag(digest)
    started = time.perf_counter()
    try:
        signature_manifest = client.get_manifest(reference.repository, tag)
    except PullError as exc:
        if exc.error_class is not ErrorClass.NOT_FOUND:
            raise
        _timed(result, "signature_tag", started)
        result["verdict"] = UNSIGNED
        result["detail"] = f"no signature tag {tag}"
        return
    _timed(result, "signature_tag", started)
    result["discovery"] = "tag"
    result["signature_tag"], result["signature_digest"] = tag, signature_manifest.digest

    try:
        layers = signature_layers(signature_manifest.json())
    except PullError as exc:
        layers = str(exc)
    if isinstance(layers, str):
        result["verdict"], result["detail"] = INVALID, layers
        return
    result["signatures"] = len(layers)
    started = time.perf_counter()
    payloads = [
        (layer, client.read_blob(reference.repository, layer.digest, layer.size))
        for layer in layers
    ]
    _timed(result, "payloads", started)
    started = time.perf_counter()
    check = check_signatures(key, digest, payloads)
    _timed(result, "verify", started)
    result["verdict"], result["detail"] = check.verdict, check.detail
    result["bound_digests"] = check.bound_digests
    result["binds_to_pulled"] = digest in check.bound_digests


def _listed(body: bytes) -> list[dict[str, Any]]:
    try:
        document = json.loads(body)
    except ValueError:
        return []
    manifests = document.get("manifests") if isinstance(document, dict) else None
    return [item for item in manifests or [] if isinstance(item, dict)]
