"""Push the seeded images into the sandbox through the registry HTTP API and write catalog.json.

Pushed with :class:`chaosregistry.oci.RegistryClient` (monolithic blob uploads, then manifests),
straight to registry-1 with basic auth: the seed must not depend on the hops or nginx being
healthy.

Idempotent: skipped when the marker names this seed version and the registry still serves every
catalogued tag at its digest; blobs the registry already has are not uploaded again.
"""

import base64
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

from chaosregistry.errors import PullError
from chaosregistry.oci import RegistryClient
from chaosregistry.osutil.files import write_json
from chaosregistry.sandbox.content import (
    SEED_VERSION,
    Image,
    ImageRecipe,
    LayerRecipe,
    MiB,
    build_image,
    catalog_entries,
    iter_images,
)
from chaosregistry.sandbox.credentials import Credentials
from chaosregistry.sandbox.layout import Layout, SandboxError, read_json

# Large enough for a 64 MiB PUT on a busy two-core machine.
TIMEOUT = 120.0
CONNECT_TIMEOUT = 5.0

Progress = Callable[[str], None]


def _size(count: int) -> str:
    return f"{count / MiB:.1f} MiB" if count >= MiB else f"{count / 1024:.0f} KiB"


def _client(
    registry_url: str, creds: Credentials | None, verify: bool | str = True
) -> RegistryClient:
    return RegistryClient(
        registry_url,
        credentials=creds,
        verify=verify,
        timeout=TIMEOUT,
        connect_timeout=CONNECT_TIMEOUT,
    )


def manifest_pushes(image: Image) -> list[tuple[str, str, bytes]]:
    """(reference, media type, bytes) of every manifest PUT for ``image``, in push order.

    Children first: a registry rejects an index naming manifests it lacks.
    """
    pushes = []
    if image.index is not None:
        pushes = [
            (item.manifest.digest, item.manifest.media_type, item.manifest.data)
            for item in image.platforms
        ]
    return pushes + [(tag, image.top.media_type, image.top.data) for tag in image.tags]


def push_content(client: RegistryClient, image: Image, progress: Progress) -> None:
    """Push every blob, then the manifests; raises the registry's refusal as PullError."""
    repository = image.repository
    for item in image.platforms:
        for number, layer in enumerate(item.layers, start=1):
            if layer.blob.size >= 16 * MiB:
                progress(
                    f"seed: {repository} {item.platform} layer {number}/"
                    f"{len(item.layers)} ({_size(layer.blob.size)})"
                )
            client.push_blob(repository, layer.blob.data, layer.blob.digest)
        client.push_blob(repository, item.config.data, item.config.digest)
    for reference, media_type, data in manifest_pushes(image):
        client.push_manifest(repository, reference, data, media_type)


def push_image(client: RegistryClient, image: Image, progress: Progress) -> None:
    """Push every blob, then the manifests; raises SandboxError when the registry refuses."""
    try:
        push_content(client, image, progress)
    except PullError as exc:
        raise SandboxError(f"seeding failed: {exc}") from None


def _already_seeded(layout: Layout, client: RegistryClient) -> list[dict[str, Any]] | None:
    if not (layout.seed_marker.is_file() and layout.catalog_file.is_file()):
        return None
    if read_json(layout.seed_marker).get("seed_version") != SEED_VERSION:
        return None
    catalog: list[dict[str, Any]] = read_json(layout.catalog_file)
    for entry in catalog:
        try:
            digest = client.get_manifest(entry["repository"], entry["tag"]).digest
        except PullError:
            return None  # seed again: pushing says what is wrong, if anything is
        if digest != entry["digest"]:
            return None
    return catalog


def seed(
    layout: Layout, registry_urls: list[str], creds: Credentials, progress: Progress
) -> list[dict[str, Any]]:
    """Make sure every registry in ``registry_urls`` holds the seeded images; returns the catalog.

    One URL per storage (replicas sharing a storage need one). Also writes the seeded manifests
    in push order (``layout.seed_manifests_file``) for nodes that keep manifests in memory.
    """
    with ExitStack() as stack:
        # Verified against the sandbox CA: the token registry is seeded through nginx (HTTPS).
        ca = str(layout.pki.ca_cert)
        clients = [stack.enter_context(_client(url, creds, ca)) for url in registry_urls]
        unseeded = [client for client in clients if _already_seeded(layout, client) is None]
        if not unseeded:
            catalog: list[dict[str, Any]] = read_json(layout.catalog_file)
            progress(f"seed: content v{SEED_VERSION} already present ({len(catalog)} tags)")
            return catalog
        catalog = []
        manifests: list[dict[str, str]] = []
        for image in iter_images():
            total = catalog_entries(image)[0]["total_bytes"]
            progress(
                f"seed: {image.repository}:{','.join(image.tags)} "
                f"({len(image.platforms)} platform(s), {_size(total)}) "
                f"to {len(unseeded)} registr{'y' if len(unseeded) == 1 else 'ies'}"
            )
            # One storage after another took ~7 s each for a three-storage implementation;
            # side by side, the pushes overlap TLS and the registries' own hashing.
            with ThreadPoolExecutor(max_workers=len(unseeded)) as pool:
                for pushed in [
                    pool.submit(push_image, client, image, progress) for client in unseeded
                ]:
                    pushed.result()
            catalog.extend(catalog_entries(image))
            manifests.extend(
                {
                    "repository": image.repository,
                    "reference": reference,
                    "media_type": media_type,
                    "data": base64.b64encode(data).decode("ascii"),
                }
                for reference, media_type, data in manifest_pushes(image)
            )
    write_json(layout.catalog_file, catalog)
    write_json(layout.seed_manifests_file, manifests)
    write_json(layout.seed_marker, {"seed_version": SEED_VERSION, "tags": len(catalog)})
    return catalog


def push_unique_image(
    registry_url: str,
    creds: Credentials | None,
    repository: str,
    tag: str,
    *,
    layer_sizes: tuple[int, ...] = (48 * 1024, 16 * 1024),
    verify: bool | str = True,
) -> dict[str, Any]:
    """Push an image no registry (and no mirror) has seen before; returns its catalog entry.

    Its layers hold a random nonce, so every call makes new blobs: what a "cold" pull through a
    pull-through mirror needs. ``verify``: TLS as for ``RegistryClient`` (a CA bundle path for
    the sandbox's HTTPS endpoints). Raises SandboxError when the registry refuses the push.
    """
    image = unique_image(repository, tag, layer_sizes=layer_sizes)
    with _client(registry_url, creds, verify) as client:
        push_image(client, image, lambda _: None)
    return catalog_entries(image)[0]


def unique_image(
    repository: str, tag: str, *, layer_sizes: tuple[int, ...] = (48 * 1024, 16 * 1024)
) -> Image:
    """An image no registry has seen: its one layer holds a random nonce, so its blobs are new."""
    nonce = secrets.token_hex(8)
    recipe = ImageRecipe(
        repository,
        (tag,),
        (LayerRecipe(((f"nonce/{nonce}", 16), *_numbered_files(f"{nonce}", layer_sizes))),),
    )
    return build_image(recipe)


def _numbered_files(prefix: str, sizes: tuple[int, ...]) -> tuple[tuple[str, int], ...]:
    return tuple((f"{prefix}/part-{index}.bin", size) for index, size in enumerate(sizes))
