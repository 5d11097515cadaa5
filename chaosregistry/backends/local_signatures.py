"""The local backend's signature faults: what a verifier sees when a signed image's registry
content is changed under it, and the content put back.

=========================  ===========================================  =======================
fault (kind)               what changes                                 ``image_signature`` says
=========================  ===========================================  =======================
``signature.tamper``       the ``.sig`` manifest is replaced by one     ``invalid`` (cosign
                           whose payload vouches for another digest,    refuses it too: the
                           the original signature bytes kept            signature no longer
                                                                        verifies)
``signature.delete``       the ``.sig`` manifest is deleted (by         ``unsigned``
                           digest; by tag too where a registry, ggcr,
                           keeps the tag)
``signature.unsigned-      the image's tag points at ``source``, an     ``unsigned`` (the tag's
image``                    unsigned image of the same repository        new digest has no
                                                                        signature)
=========================  ===========================================  =======================

Writes go to the replicas directly (one per storage: both ggcr nodes, which share nothing),
with the sandbox's credentials read from its run dir (never from the ledger). Before anything
is changed, the image tag's and the signature tag's manifests are read and stored in the undo
(``registry.restore-manifests``); the undo pushes them back and returns only once every
replica serves each tag at its original digest. The fault counts as applied only once every
replica serves the changed state. The tag-deleted fault (``local_registry_changes``) saves
and restores a tag with the same helpers and undo.
"""

import base64
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chaosregistry.backends.plan import FaultPlan, confirmed
from chaosregistry.errors import ConfigError, ErrorClass, PullError
from chaosregistry.faults.undo import UndoError, undo_handler
from chaosregistry.oci import RegistryClient
from chaosregistry.oci.blobs import sha256_digest
from chaosregistry.oci.reference import ImageReference
from chaosregistry.sandbox import load_credentials, load_endpoints
from chaosregistry.sandbox.implementations import implementation
from chaosregistry.trust.signatures import (
    SignatureArtifact,
    signature_artifact,
    signature_layers,
    signature_tag,
)

RESTORE = "registry.restore-manifests"
SIGNATURE_KINDS = ("tamper", "delete", "unsigned-image")
TIMEOUT = 15.0


def replica_urls(run_dir: Path) -> list[str]:
    """The replicas to write to: the first when they share one storage, else every one."""
    endpoints = load_endpoints(run_dir)
    replicas = [str(r["url"]) for r in endpoints.get("replicas") or ()]
    if not replicas:
        raise ConfigError(f"the sandbox in {run_dir} lists no replicas")
    chosen = implementation(str(endpoints.get("implementation") or "distribution-2"))
    return replicas if not chosen.capabilities.shared_storage else replicas[:1]


def replica_client(run_dir: Path, url: str) -> RegistryClient:
    """A client of one replica (plain HTTP, behind nginx) with the sandbox's credentials."""
    return RegistryClient(
        url, credentials=load_credentials(run_dir), timeout=TIMEOUT, connect_timeout=5.0
    )


def saved_manifest(reference: str, media_type: str, data: bytes) -> dict[str, str]:
    """A manifest as ``registry.restore-manifests`` puts it back: its exact bytes and type."""
    return {
        "reference": reference,
        "media_type": media_type,
        "data": base64.b64encode(data).decode("ascii"),
        "digest": sha256_digest(data),
    }


def signature_plan(run_dir: Path, kind: str, image: str, source: str = "") -> FaultPlan:
    """The plan for ``signature.<kind>`` on ``image`` (``repository:tag``) of the sandbox."""
    if kind not in SIGNATURE_KINDS:
        raise ConfigError(f"kind must be one of {', '.join(SIGNATURE_KINDS)}, got {kind!r}")
    reference = ImageReference.parse(image)
    if reference.is_digest:
        raise ConfigError(f"image {image!r}: name a tag (a digest cannot be re-pointed)")
    repository, tag = reference.repository, reference.reference
    urls = replica_urls(run_dir)
    with replica_client(run_dir, urls[0]) as client:
        current = _existing(client, repository, tag, f"image {image}")
        sig_tag = signature_tag(current.digest)
        try:
            signature = client.get_manifest(repository, sig_tag)
        except PullError as exc:
            if exc.error_class is not ErrorClass.NOT_FOUND:
                raise ConfigError(f"cannot read {repository}:{sig_tag}: {exc}") from None
            raise ConfigError(
                f"image {image} is not signed (no {sig_tag}): nothing to break"
            ) from None
        saved = [
            saved_manifest(tag, current.media_type, current.body),
            saved_manifest(sig_tag, signature.media_type, signature.body),
        ]
        parameters: dict[str, Any] = {"kind": kind, "image": str(reference)}
        tampered: SignatureArtifact | None = None
        replacement = None
        if kind == "tamper":
            tampered = _tampered(client, repository, current.digest, signature.json())
        if kind == "unsigned-image":
            if not source:
                raise ConfigError("source: name the unsigned image the tag is to point at")
            other = ImageReference.parse(source)
            if other.repository != repository:
                raise ConfigError(
                    f"source {source!r} must be in {repository} (a tag can only point at a "
                    "manifest of its own repository)"
                )
            replacement = _existing(client, repository, other.reference, f"source {source}")
            if _signed(client, repository, replacement.digest):
                raise ConfigError(f"source {source} is signed: name an unsigned image")
            parameters["source"] = str(other)

    def apply() -> dict[str, Any]:
        applied: dict[str, Any] = {
            "replicas": urls,
            "original_digest": current.digest,
            "signature_tag": sig_tag,
            "original_signature_digest": signature.digest,
        }
        for url in urls:
            with replica_client(run_dir, url) as client:
                if tampered is not None:
                    for blob in tampered.blobs:
                        client.push_blob(repository, blob)
                    client.push_manifest(
                        repository, sig_tag, tampered.manifest, tampered.media_type
                    )
                    _expect(client, repository, sig_tag, tampered.digest)
                elif replacement is not None:
                    client.push_manifest(repository, tag, replacement.body, replacement.media_type)
                    _expect(client, repository, tag, replacement.digest)
                else:
                    _delete_tag(client, repository, sig_tag, signature.digest)
        if tampered is not None:
            applied["tampered_signature_digest"] = tampered.digest
        if replacement is not None:
            applied["now_digest"] = replacement.digest
        # Each replica was read back above (_expect, _delete_tag): it serves the change.
        applied.update(confirmed(f"{len(urls)} replica(s) read back serving the {kind} change"))
        return applied

    return FaultPlan(
        kind=f"signature.{kind}",
        target=f"image:{reference}",
        parameters=parameters,
        apply=apply,
        undo={
            "kind": RESTORE,
            "params": {
                "run_dir": str(run_dir),
                "urls": urls,
                "repository": repository,
                "manifests": saved,
            },
        },
    )


def _existing(client: RegistryClient, repository: str, reference: str, what: str) -> Any:
    try:
        return client.get_manifest(repository, reference)
    except PullError as exc:
        if exc.error_class is ErrorClass.NOT_FOUND:
            raise ConfigError(f"{what} does not exist on {client.url}") from None
        raise ConfigError(f"cannot read {what}: {exc}") from None


def _signed(client: RegistryClient, repository: str, digest: str) -> bool:
    try:
        client.get_manifest(repository, signature_tag(digest))
    except PullError as exc:
        if exc.error_class is ErrorClass.NOT_FOUND:
            return False
        raise ConfigError(f"cannot read {repository}:{signature_tag(digest)}: {exc}") from None
    return True


def _tampered(
    client: RegistryClient, repository: str, digest: str, manifest: Mapping[str, Any]
) -> SignatureArtifact:
    """The ``.sig`` artifact with each payload re-pointed at another digest, signatures kept."""
    layers = signature_layers(manifest)
    if isinstance(layers, str):
        raise ConfigError(f"the signature of {repository}@{digest} is not cosign's: {layers}")
    other = sha256_digest(f"chaosregistry tampered {digest}".encode())
    tampered = []
    for layer in layers:
        payload = client.read_blob(repository, layer.digest, layer.size)
        try:
            document = json.loads(payload)
            document["critical"]["image"]["docker-manifest-digest"] = other
        except (ValueError, KeyError, TypeError):
            raise ConfigError(
                f"the signature of {repository}@{digest} has a payload that is not cosign's"
            ) from None
        tampered.append(
            (json.dumps(document, separators=(",", ":")).encode(), layer.signature or "")
        )
    return signature_artifact(tampered)


def _expect(client: RegistryClient, repository: str, reference: str, digest: str) -> None:
    served = client.get_manifest(repository, reference).digest
    if served != digest:
        raise UndoError(f"{client.url} serves {repository}:{reference} at {served}, not {digest}")


def _delete_tag(client: RegistryClient, repository: str, tag: str, digest: str) -> None:
    """Delete ``tag``'s manifest by digest, then the tag itself where it outlives that (ggcr)."""
    client.delete_manifest(repository, digest)
    if serves(client, repository, tag):
        client.delete_manifest(repository, tag)
    if serves(client, repository, tag):
        raise UndoError(f"{client.url} still serves {repository}:{tag} after the delete")


def serves(client: RegistryClient, repository: str, reference: str) -> bool:
    """Whether ``client``'s registry serves the manifest; PullError for anything but 404."""
    try:
        client.get_manifest(repository, reference)
    except PullError as exc:
        if exc.error_class is ErrorClass.NOT_FOUND:
            return False
        raise
    return True


@undo_handler(RESTORE)
def restore_manifests(params: Mapping[str, Any]) -> None:
    """Push the saved manifests back to every replica; return once each serves every saved
    reference at its saved digest. Idempotent (pushing the same bytes again changes nothing)."""
    run_dir = params.get("run_dir")
    urls, repository, manifests = (
        params.get("urls"),
        params.get("repository"),
        params.get("manifests"),
    )
    if not isinstance(run_dir, str) or not isinstance(repository, str):
        raise UndoError("undo params need 'run_dir' and 'repository'")
    if not isinstance(urls, list) or not isinstance(manifests, list) or not manifests:
        raise UndoError("undo params need 'urls' and 'manifests' lists")
    if not Path(run_dir).is_dir():
        return  # the sandbox is gone, and with it what was changed
    for url in urls:
        try:
            with replica_client(Path(run_dir), str(url)) as client:
                for saved in manifests:
                    data = base64.b64decode(saved["data"])
                    client.push_manifest(repository, saved["reference"], data, saved["media_type"])
                for saved in manifests:
                    _expect(client, repository, saved["reference"], saved["digest"])
        except PullError as exc:
            raise UndoError(f"cannot restore {repository} on {url}: {exc}") from None
