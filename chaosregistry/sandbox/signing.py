"""Signed sandbox content: images in ``signed/app``, some signed with the sandbox's key, one not.

``sandbox up`` makes an ECDSA P-256 key pair once per run dir (``secrets/signing.key``, and
``pki/signing.pub``: endpoints' ``signing_public_key``), pushes the images below and, for the
signed ones, the signature ``cosign sign --key`` stores, in one of its two formats:

- ``legacy``: the ``sha256-<hex>.sig`` tag (:mod:`chaosregistry.trust.signatures`);
- ``bundle``: a sigstore bundle in a referrer manifest
(:mod:`chaosregistry.trust.signature_bundle`),
  pushed by digest; where the registry has no referrers API (it answers 404: Distribution),
  the referrers tag ``sha256-<hex>`` is written too, an index listing the image's referrers,
  as cosign does. ggcr's registry lists it through its API.

``cosign verify --key signing.pub --insecure-ignore-tlog`` accepts both (the tests check it).
Signatures are deterministic (RFC 6979, a fixed ``created`` annotation): an ``up`` again
pushes the same bytes.

The images live in a repository of their own, outside catalog.json: the seeded catalog's tags,
blobs and figures stay what the other probes' tests expect. ``state/signatures.json``::

    {"public_key": path, "images": [{"image": "signed/app:signed-prod-1.0.0", "repository",
      "tag", "digest", "signed": true, "format": "legacy" | "bundle" | null,
      "signature_tag": "sha256-<hex>.sig" | "sha256-<hex>" (the referrers tag) | null,
      "signature_digest": digest (the .sig manifest's, or the bundle referrer's) | null}]}

Pushed to every seed target (one per storage; each ggcr node, whose re-seed list gets the
manifests too so a restarted node serves them again).
"""

import base64
import json
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from chaosregistry.errors import ErrorClass, PullError
from chaosregistry.oci import RegistryClient
from chaosregistry.oci.blobs import OCI_INDEX
from chaosregistry.osutil.files import write_bytes_atomic, write_json
from chaosregistry.sandbox.content import Image, ImageRecipe, KiB, LayerRecipe, build_image
from chaosregistry.sandbox.credentials import Credentials
from chaosregistry.sandbox.layout import Layout, SandboxError, read_json
from chaosregistry.sandbox.seed import TIMEOUT, manifest_pushes, push_image
from chaosregistry.trust.signature_bundle import (
    BundleArtifact,
    Descriptor,
    listed_referrers,
    referrers_index,
    referrers_tag,
    signed_bundle,
)
from chaosregistry.trust.signatures import (
    ZERO_TIME,
    PrivateKey,
    SignatureArtifact,
    generate_private_key,
    load_private_key,
    private_pem,
    public_pem,
    signature_tag,
    signed_artifact,
)

Progress = Callable[[str], None]

SIGNED_REPOSITORY = "signed/app"
LEGACY = "legacy"
BUNDLE = "bundle"
# (tag, platforms, signature format or None: unsigned)
SIGNED_IMAGES: tuple[tuple[str, tuple[str, ...], str | None], ...] = (
    ("signed-prod-1.0.0", ("linux/amd64",), LEGACY),
    ("signed-prod-2.0.0", ("linux/amd64", "linux/arm64"), LEGACY),  # signs the index
    ("bundle-prod-1.0.0", ("linux/amd64",), BUNDLE),
    ("bundle-prod-2.0.0", ("linux/amd64", "linux/arm64"), BUNDLE),  # signs the index
    ("unsigned-prod-1.0.0", ("linux/amd64",), None),
)


# One layer for all of them (each platform's): fewer uploads at `up`. The images still differ
# (their configs name their tags), so each has a digest, and a signature, of its own.
APP_LAYER = LayerRecipe(
    (("app/binary.bin", 12 * KiB), ("app/config.json", 1 * KiB)), shared_key="signed-app"
)


def _recipe(tag: str, platforms: tuple[str, ...]) -> ImageRecipe:
    return ImageRecipe(SIGNED_REPOSITORY, (tag,), (APP_LAYER,), platforms=platforms)


def signed_images() -> list[tuple[Image, str | None]]:
    return [(build_image(_recipe(tag, platforms)), form) for tag, platforms, form in SIGNED_IMAGES]


def _subject(image: Image) -> Descriptor:
    return Descriptor(image.top.media_type, image.top.digest, len(image.top.data))


def ensure_signing_key(layout: Layout) -> PrivateKey:
    """The sandbox's signing key (made once; the public half written beside the CA)."""
    if layout.signing_key_file.is_file():
        key = load_private_key(layout.signing_key_file.read_bytes())
    else:
        key = generate_private_key()
        write_bytes_atomic(layout.signing_key_file, private_pem(key), mode=0o600)
    public = public_pem(key)
    path = layout.signing_public_key_file
    if not path.is_file() or path.read_bytes() != public:
        write_bytes_atomic(path, public)
    return key


def sign_content(
    layout: Layout, registry_urls: list[str], creds: Credentials, progress: Progress
) -> list[dict[str, Any]]:
    """Push the signed/unsigned images and the signatures to every registry of
    ``registry_urls``; write ``state/signatures.json``; returns its ``images``."""
    key = ensure_signing_key(layout)
    images = signed_images()
    artifacts = {
        image.top.digest: signed_artifact(key, image.repository, image.top.digest)
        for image, form in images
        if form == LEGACY
    }
    bundles = {
        image.top.digest: signed_bundle(key, _subject(image), ZERO_TIME)
        for image, form in images
        if form == BUNDLE
    }
    # The referrers tags written on the first registry (the one behind nginx; the others are
    # ggcr's other node, or the token registry), with the index each holds: none where it
    # has the referrers API.
    indexes: dict[str, bytes] = {}
    with ExitStack() as stack:
        ca = str(layout.pki.ca_cert)
        clients = [
            stack.enter_context(RegistryClient(url, credentials=creds, verify=ca, timeout=TIMEOUT))
            for url in registry_urls
        ]
        for number, client in enumerate(clients):
            if not _present(client, images, artifacts):
                for image, _ in images:
                    push_image(client, image, progress)
                    artifact = artifacts.get(image.top.digest)
                    if artifact is not None:
                        _push_artifact(
                            client, image.repository, signature_tag(image.top.digest), artifact
                        )
            for bundle in bundles.values():
                index = attach_bundle(client, SIGNED_REPOSITORY, bundle)
                if index is not None and number == 0:
                    indexes[bundle.subject] = index
    entries = [_entry(image, form, artifacts, bundles, indexes) for image, form in images]
    _add_to_reseed(layout, images, artifacts, bundles, indexes)
    write_json(
        layout.signatures_file,
        {"public_key": str(layout.signing_public_key_file), "images": entries},
    )
    legacy = sum(form == LEGACY for _, form in images)
    progress(
        f"signing: {legacy} image(s) in {SIGNED_REPOSITORY} signed in cosign's legacy format, "
        f"{len(bundles)} in its bundle format "
        f"({'referrers tag' if indexes else 'referrers API'}), "
        f"{sum(form is None for _, form in images)} unsigned "
        f"(key {layout.signing_public_key_file.name})"
    )
    return entries


def _entry(
    image: Image,
    form: str | None,
    artifacts: dict[str, SignatureArtifact],
    bundles: dict[str, BundleArtifact],
    indexes: dict[str, bytes],
) -> dict[str, Any]:
    digest = image.top.digest
    tag: str | None = None
    signature: str | None = None
    if form == LEGACY:
        tag, signature = signature_tag(digest), artifacts[digest].digest
    elif form == BUNDLE:
        tag = referrers_tag(digest) if digest in indexes else None
        signature = bundles[digest].digest
    return {
        "image": f"{image.repository}:{image.tags[0]}",
        "repository": image.repository,
        "tag": image.tags[0],
        "digest": digest,
        "signed": form is not None,
        "format": form,
        "signature_tag": tag,
        "signature_digest": signature,
    }


def attach_bundle(client: RegistryClient, repository: str, bundle: BundleArtifact) -> bytes | None:
    """Push ``bundle``'s referrer; where the registry has no referrers API, list it in the
    referrers tag too (what it already lists kept). Returns the tag's index when one is written
    (or already lists it), None where the API lists the referrer."""
    try:
        for blob in bundle.blobs:
            client.push_blob(repository, blob)
        client.push_manifest(repository, bundle.digest, bundle.manifest, bundle.media_type)
        answer = client.referrers(repository, bundle.subject)
        if answer.status == 200:
            listed = listed_referrers(_json(answer.body))
            if isinstance(listed, list) and any(i["digest"] == bundle.digest for i in listed):
                return None
            raise SandboxError(
                f"{client.url} has a referrers API that does not list {bundle.digest[:19]}"
            )
        tag = referrers_tag(bundle.subject)
        try:
            current = listed_referrers(client.get_manifest(repository, tag).json())
        except PullError as exc:
            if exc.error_class is not ErrorClass.NOT_FOUND:
                raise
            current = []
        if isinstance(current, str):
            raise SandboxError(f"{repository}:{tag} is not a referrers index: {current}")
        index = referrers_index([*current, bundle.descriptor])
        client.push_manifest(repository, tag, index, OCI_INDEX)
    except PullError as exc:
        raise SandboxError(
            f"attaching the bundle to {repository}@{bundle.subject[:19]} failed: {exc}"
        ) from None
    return index


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def _push_artifact(
    client: RegistryClient, repository: str, tag: str, artifact: SignatureArtifact
) -> None:
    try:
        for blob in artifact.blobs:
            client.push_blob(repository, blob)
        client.push_manifest(repository, tag, artifact.manifest, artifact.media_type)
    except PullError as exc:
        raise SandboxError(f"pushing the signature {repository}:{tag} failed: {exc}") from None


def _present(
    client: RegistryClient,
    images: list[tuple[Image, str | None]],
    artifacts: dict[str, SignatureArtifact],
) -> bool:
    """Every image tag and signature tag already at its digest on this registry."""
    wanted = [(image.repository, image.tags[0], image.top.digest) for image, _ in images]
    wanted += [
        (SIGNED_REPOSITORY, signature_tag(digest), artifact.digest)
        for digest, artifact in artifacts.items()
    ]
    for repository, tag, digest in wanted:
        try:
            if client.get_manifest(repository, tag).digest != digest:
                return False
        except PullError:
            return False
    return True


def _add_to_reseed(
    layout: Layout,
    images: list[tuple[Image, str | None]],
    artifacts: dict[str, SignatureArtifact],
    bundles: dict[str, BundleArtifact],
    indexes: dict[str, bytes],
) -> None:
    """Append these manifests to the ggcr nodes' re-seed list (when there is one)."""
    if not layout.seed_manifests_file.is_file():
        return
    manifests: list[dict[str, str]] = read_json(layout.seed_manifests_file)
    known = {(item["repository"], item["reference"]) for item in manifests}
    pushes = []
    for image, _ in images:
        pushes += [
            (image.repository, ref, kind, data) for ref, kind, data in manifest_pushes(image)
        ]
        digest = image.top.digest
        artifact = artifacts.get(digest)
        if artifact is not None:
            tag = signature_tag(digest)
            pushes.append((image.repository, tag, artifact.media_type, artifact.manifest))
        bundle = bundles.get(digest)
        if bundle is not None:
            pushes.append((image.repository, bundle.digest, bundle.media_type, bundle.manifest))
        if digest in indexes:
            pushes.append((image.repository, referrers_tag(digest), OCI_INDEX, indexes[digest]))
    added = [
        {
            "repository": repository,
            "reference": reference,
            "media_type": media_type,
            "data": base64.b64encode(data).decode("ascii"),
        }
        for repository, reference, media_type, data in pushes
        if (repository, reference) not in known
    ]
    if added:
        write_json(layout.seed_manifests_file, manifests + added)
