"""Signed sandbox content: images in ``signed/app``, some signed with the sandbox's key, one not.

``sandbox up`` makes an ECDSA P-256 key pair once per run dir (``secrets/signing.key``, and
``pki/signing.pub``: endpoints' ``signing_public_key``), pushes the images below and, for the
signed ones, the signature cosign's ``sign --key`` stores in its legacy tag format
(``sha256-<hex>.sig``; :mod:`chaosregistry.signatures`), so ``cosign verify --key signing.pub
--insecure-ignore-tlog`` accepts them (the tests check it). Signatures are deterministic
(RFC 6979): an ``up`` again pushes the same bytes.

The images live in a repository of their own, outside catalog.json: the seeded catalog's tags,
blobs and figures stay what the other probes' tests expect. ``state/signatures.json``::

    {"public_key": path, "images": [{"image": "signed/app:signed-prod-1.0.0", "repository",
      "tag", "digest", "signed": true, "signature_tag": "sha256-<hex>.sig" | null,
      "signature_digest": digest | null}]}

Pushed to every seed target (one per storage; each ggcr node, whose re-seed list gets the
manifests too so a restarted node serves them again).
"""

import base64
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from chaosregistry.errors import PullError
from chaosregistry.oci import RegistryClient
from chaosregistry.osutil.files import write_bytes_atomic, write_json
from chaosregistry.sandbox.content import Image, ImageRecipe, KiB, LayerRecipe, build_image
from chaosregistry.sandbox.credentials import Credentials
from chaosregistry.sandbox.layout import Layout, SandboxError, read_json
from chaosregistry.sandbox.seed import TIMEOUT, manifest_pushes, push_image
from chaosregistry.signatures import (
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
# (tag, platforms, signed)
SIGNED_IMAGES: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("signed-prod-1.0.0", ("linux/amd64",), True),
    ("signed-prod-2.0.0", ("linux/amd64", "linux/arm64"), True),  # signs the index
    ("unsigned-prod-1.0.0", ("linux/amd64",), False),
)


# One layer for all of them (each platform's): fewer uploads at `up`. The images still differ
# (their configs name their tags), so each has a digest, and a signature, of its own.
APP_LAYER = LayerRecipe(
    (("app/binary.bin", 12 * KiB), ("app/config.json", 1 * KiB)), shared_key="signed-app"
)


def _recipe(tag: str, platforms: tuple[str, ...]) -> ImageRecipe:
    return ImageRecipe(SIGNED_REPOSITORY, (tag,), (APP_LAYER,), platforms=platforms)


def signed_images() -> list[tuple[Image, bool]]:
    return [
        (build_image(_recipe(tag, platforms)), signed) for tag, platforms, signed in SIGNED_IMAGES
    ]


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
        for image, signed in images
        if signed
    }
    with ExitStack() as stack:
        ca = str(layout.pki.ca_cert)
        clients = [
            stack.enter_context(RegistryClient(url, credentials=creds, verify=ca, timeout=TIMEOUT))
            for url in registry_urls
        ]
        for client in clients:
            if _present(client, images, artifacts):
                continue
            for image, _ in images:
                push_image(client, image, progress)
                artifact = artifacts.get(image.top.digest)
                if artifact is not None:
                    _push_artifact(
                        client, image.repository, signature_tag(image.top.digest), artifact
                    )
    entries = [
        {
            "image": f"{image.repository}:{image.tags[0]}",
            "repository": image.repository,
            "tag": image.tags[0],
            "digest": image.top.digest,
            "signed": signed,
            "signature_tag": signature_tag(image.top.digest) if signed else None,
            "signature_digest": artifacts[image.top.digest].digest if signed else None,
        }
        for image, signed in images
    ]
    _add_to_reseed(layout, images, artifacts)
    write_json(
        layout.signatures_file,
        {"public_key": str(layout.signing_public_key_file), "images": entries},
    )
    signed_count = sum(signed for _, signed in images)
    progress(
        f"signing: {signed_count} of {len(entries)} images in {SIGNED_REPOSITORY} signed "
        f"(key {layout.signing_public_key_file.name})"
    )
    return entries


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
    images: list[tuple[Image, bool]],
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
    layout: Layout, images: list[tuple[Image, bool]], artifacts: dict[str, SignatureArtifact]
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
        artifact = artifacts.get(image.top.digest)
        if artifact is not None:
            tag = signature_tag(image.top.digest)
            pushes.append((image.repository, tag, artifact.media_type, artifact.manifest))
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
