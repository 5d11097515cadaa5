"""Probes of image signatures: does an image carry a cosign signature that verifies with a key?

Offline, in this process (``cryptography``): no transparency log, no cosign binary. Both of
cosign's formats are read, found the way cosign finds them: a sigstore bundle attached as an
OCI 1.1 referrer (``chaosregistry.trust.signature_bundle``), listed by the registry's referrers API
or, where the registry has none (Distribution 2.8 and 3.1 answer 404), by the referrers tag
``sha256-<hex>``; and the legacy ``sha256-<hex>.sig`` tag (``chaosregistry.trust.signatures``). What
the referrers API said is reported and classified, so a reader sees which discovery path a
registry leaves to its clients, and when it fell back or failed.
"""

import json
import time
from pathlib import Path
from typing import Annotated, Any

from chaosregistry.errors import ConfigError, ErrorClass, PullError
from chaosregistry.experiment.activity import Configuration, Result, Secrets, activity
from chaosregistry.experiment.contracts import ExistingFile, Image, ResultKind, Returns, Target
from chaosregistry.experiment.settings import settings_for
from chaosregistry.oci import RegistryClient
from chaosregistry.oci.reference import ImageReference
from chaosregistry.trust.signature_bundle import (
    MAX_REFERRERS,
    bundle_layer,
    check_bundles,
    listed_referrers,
    may_be_bundle,
    referrers_tag,
)
from chaosregistry.trust.signatures import (
    BUNDLE_ARTIFACT_TYPE_PREFIX,
    INVALID,
    UNSIGNED,
    VERIFIED,
    WRONG_KEY,
    Check,
    PublicKey,
    check_signatures,
    load_public_key,
    signature_layers,
    signature_tag,
)

__all__ = ["image_signature"]

REFERRERS_API = "referrers-api"
REFERRERS_TAG = "referrers-tag"
LEGACY_TAG = "legacy-tag"
# What a referrers API that does not list answers, by the OCI distribution spec: the client
# falls back to the referrers tag schema.
ABSENT_STATUSES = (400, 404, 406)
# Best first: the verdict of an image with signatures on several paths is the best of them.
_RANK = {VERIFIED: 0, WRONG_KEY: 1, INVALID: 2}


@activity
def image_signature(
    image: Image,
    public_key: Annotated[str, ExistingFile("PEM public key")] = "",
    target: Target = "registry",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Annotated[
    Result,
    Returns(
        "image registry public_key digest media_type verdict verified detail discovery",
        "format signature_tag signature_digest signatures bound_digests binds_to_pulled",
        "referrers seconds error",
        kind=ResultKind.SIGNATURE,
    ),
]:
    """Check that ``image`` carries a cosign signature that verifies with ``public_key``.

    The image's manifest (the index, for a multi-platform image: what cosign signs) is fetched
    and its digest computed; the signature must vouch for exactly that digest. Both of cosign's
    formats are read, as cosign v3 finds them: sigstore bundles (v0.3, a DSSE envelope of an
    in-toto statement, or a messageSignature) attached as OCI 1.1 referrers, listed by the
    referrers API or, where it answers 404/400/406 (no API: Distribution), by the referrers tag
    ``sha256-<hex>`` (not when the API fails: a 5xx is no licence to fall back); then, unless a
    bundle verified, the legacy ``sha256-<hex>.sig`` tag.
    Nothing is written, nothing is sent anywhere but the registry.

    Arguments:
      image: ``repository:tag`` or ``repository@sha256:...``.
      public_key: path of a PEM public key (``cosign.pub``; ECDSA or Ed25519). Empty: the
        sandbox's signing key (its endpoints' ``signing_public_key``).
      target: ``registry`` (see chaosregistry.experiment.settings), another configured name, or a
      URL.

    Returns a mapping: ``image``, ``registry``, ``public_key``, ``digest`` (of the pulled
    manifest) and ``media_type``; ``verdict``: ``verified`` (a signature of this digest verifies
    with the key), ``unsigned`` (no bundle referrer and no ``.sig`` tag), ``invalid`` (a
    signature artifact that cannot vouch for this image: another digest, not the format, a
    corrupt signature encoding, an attestation rather than a signature), ``wrong-key``
    (signatures of this digest that the key does not verify: another key's, or altered bytes),
    or null when the registry failed us (see ``error``; also when the referrers API failed and
    nothing was found otherwise: the image cannot be called unsigned); the best verdict wins
    when several paths hold signatures; ``verified`` (bool, for a range tolerance), ``detail``
    (one line: why); ``discovery``: the path of the signature that decided the verdict,
    ``referrers-api``, ``referrers-tag`` or ``legacy-tag``, or null (nothing found);
    ``format``: ``bundle``, ``legacy`` or null; ``signature_tag`` (the referrers or ``.sig`` tag
    read, null for the API), ``signature_digest`` (the deciding bundle referrer's or ``.sig``
    manifest's digest; null when absent), ``signatures`` (bundles plus ``.sig`` layers read),
    ``bound_digests`` (what they vouch for) and ``binds_to_pulled`` (one of them is
    ``digest``); ``referrers`` {``supported`` (the API answered 200 with an index),
    ``status`` (any HTTP status), ``outcome`` (``listed``; ``absent``: 404/400/406, the
    referrers tag is the fallback; ``failed``: another status, an answer that is not an index,
    or no answer: as cosign, no bundle is looked for, only the legacy tag), ``fell_back`` (the
    referrers tag was read because the API answered absent), ``count``
    (referrers listed, by the API or the tag), ``bundles`` (of them, sigstore bundles read),
    ``error`` (null, or the classified failure: {``class``, ``message``, ``status``,
    ``detail``}; a 5xx is ``server-error``)}; ``seconds`` {``manifest``, ``referrers`` (the
    API), ``referrers_tag``, ``bundles`` (referrer manifests and bundle blobs),
    ``signature_tag``, ``payloads``, ``verify``, ``total``; null for a phase not run};
    ``error`` (null, or {``class``, ``message``, ``status``, ``detail``} of a failed registry
    request).

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
        "format": None,
        "signature_tag": None,
        "signature_digest": None,
        "signatures": 0,
        "bound_digests": [],
        "binds_to_pulled": False,
        "referrers": {
            "supported": False,
            "status": None,
            "outcome": None,
            "fell_back": False,
            "count": 0,
            "bundles": 0,
            "error": None,
        },
        "seconds": {
            "manifest": None,
            "referrers": None,
            "referrers_tag": None,
            "bundles": None,
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
    manifest = client.find_manifest(reference.repository, reference.reference)
    if manifest is None:
        raise ConfigError(f"image {reference} does not exist on {client.url}")
    _timed(result, "manifest", started)
    digest = manifest.digest
    result["digest"], result["media_type"] = digest, manifest.media_type

    found: list[tuple[Check, str, str, str | None, str | None]] = []
    bundles = _bundles(client, reference.repository, digest, key, result)
    if bundles is not None:
        found.append(bundles)
    if bundles is None or bundles[0].verdict != VERIFIED:
        legacy = _legacy(client, reference.repository, digest, key, result)
        if legacy is not None:
            found.append(legacy)
    if not found:
        referrers = result["referrers"]
        if referrers["outcome"] == "failed":
            # The API failed and nothing else holds a signature: it may be there, unseen.
            result["error"] = referrers["error"]
            result["detail"] = "the referrers API failed and no signature was found otherwise"
            return
        result["verdict"] = UNSIGNED
        result["detail"] = f"no bundle referrer and no signature tag {signature_tag(digest)}"
        return
    check, discovery, form, tag, signature = min(found, key=lambda item: _RANK[item[0].verdict])
    result["verdict"], result["detail"] = check.verdict, check.detail
    result["discovery"], result["format"] = discovery, form
    result["signature_tag"], result["signature_digest"] = tag, signature
    result["bound_digests"] = [d for item in found for d in item[0].bound_digests]
    result["binds_to_pulled"] = digest in result["bound_digests"]


def _bundles(
    client: RegistryClient, repository: str, digest: str, key: PublicKey, result: dict[str, Any]
) -> tuple[Check, str, str, str | None, str | None] | None:
    """The verdict on the image's bundle referrers, with (path, ``bundle``, the tag read, the
    first bundle's digest); None when there is none."""
    referrers = result["referrers"]
    started = time.perf_counter()
    try:
        answer = client.referrers(repository, digest)
    except PullError as exc:
        answer = None
        referrers["outcome"], referrers["error"] = "failed", exc.as_dict()
    _timed(result, "referrers", started)
    listed: list[dict[str, Any]] | str = "no answer"
    if answer is not None:
        referrers["status"] = answer.status
        if answer.status == 200:
            listed = listed_referrers(_json(answer.body))
        if isinstance(listed, list):
            referrers["supported"], referrers["outcome"] = True, "listed"
        elif answer.status in ABSENT_STATUSES:
            referrers["outcome"] = "absent"
        else:
            referrers["outcome"] = "failed"
            failure = answer.error or PullError(
                ErrorClass.PROTOCOL,
                f"referrers of {repository}@{digest[:19]}: HTTP {answer.status}, {listed}",
                status=answer.status,
            )
            referrers["error"] = failure.as_dict()
    if referrers["outcome"] == "failed":
        # The spec's clients fall back only when there is no API; cosign stops here too (and
        # goes on to the legacy tag).
        return None
    discovery, tag = REFERRERS_API, None
    if not isinstance(listed, list):
        discovery, tag = REFERRERS_TAG, referrers_tag(digest)
        referrers["fell_back"] = True
        started = time.perf_counter()
        index = client.find_manifest(repository, tag)
        _timed(result, "referrers_tag", started)
        listed = listed_referrers(index.json()) if index is not None else []
        if isinstance(listed, str):
            listed = []  # a tag of that name that is not an index lists no referrer
    referrers["count"] = len(listed)
    candidates = [item for item in listed if may_be_bundle(item)][:MAX_REFERRERS]
    if not candidates:
        return None
    started = time.perf_counter()
    documents: list[bytes] = []
    problems: list[str] = []
    first: str | None = None
    for item in candidates:
        listed_as_bundle = str(item.get("artifactType", "")).startswith(BUNDLE_ARTIFACT_TYPE_PREFIX)
        try:
            referrer = client.get_manifest(repository, item["digest"])
            layer = bundle_layer(referrer.json(), digest)
        except PullError as exc:
            if exc.error_class is ErrorClass.NOT_FOUND:
                layer = f"a listed referrer {item['digest'][:19]} is not there"
            elif exc.error_class is ErrorClass.PROTOCOL:
                layer = str(exc)  # not JSON: not a bundle referrer
            else:
                raise
        if isinstance(layer, str):
            if listed_as_bundle:
                problems.append(layer)  # listed as a bundle, and not one
            continue
        first = first or referrer.digest
        documents.append(client.read_blob(repository, layer.digest, layer.size))
    _timed(result, "bundles", started)
    referrers["bundles"] = len(documents)
    result["signatures"] += len(documents)
    if not documents and not problems:
        return None
    started = time.perf_counter()
    if documents:
        check = check_bundles(key, digest, documents)
    else:
        check = Check(INVALID, "; ".join(problems))
    _timed(result, "verify", started)
    return check, discovery, "bundle", tag, first or candidates[0]["digest"]


def _legacy(
    client: RegistryClient, repository: str, digest: str, key: PublicKey, result: dict[str, Any]
) -> tuple[Check, str, str, str | None, str | None] | None:
    """The verdict on the legacy ``.sig`` tag; None when there is none."""
    tag = signature_tag(digest)
    started = time.perf_counter()
    signature_manifest = client.find_manifest(repository, tag)
    _timed(result, "signature_tag", started)
    if signature_manifest is None:
        return None
    found = (LEGACY_TAG, "legacy", tag, signature_manifest.digest)
    try:
        layers = signature_layers(signature_manifest.json())
    except PullError as exc:
        layers = str(exc)
    if isinstance(layers, str):
        return (Check(INVALID, layers), *found)
    result["signatures"] += len(layers)
    started = time.perf_counter()
    payloads = [(layer, client.read_blob(repository, layer.digest, layer.size)) for layer in layers]
    _timed(result, "payloads", started)
    started = time.perf_counter()
    check = check_signatures(key, digest, payloads)
    _add_time(result, "verify", started)
    return (check, *found)


def _add_time(result: dict[str, Any], phase: str, started: float) -> None:
    result["seconds"][phase] = (result["seconds"][phase] or 0.0) + time.perf_counter() - started


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None
