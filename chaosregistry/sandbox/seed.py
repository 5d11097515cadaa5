"""Push the seeded images into the sandbox through the registry HTTP API and write catalog.json.

Blobs go up as monolithic uploads (POST, then PUT with the digest), manifests by PUT, straight
to registry-1 with basic auth: the seed must not depend on the hops or nginx being healthy.
Idempotent: skipped when the marker names this seed version and the registry still serves every
catalogued tag at its digest; blobs the registry already has are not uploaded again.
"""

import secrets
from collections.abc import Callable
from typing import Any

import httpx

from chaosregistry.sandbox.content import (
    MANIFEST_MEDIA_TYPES,
    SEED_VERSION,
    Blob,
    Image,
    ImageRecipe,
    LayerRecipe,
    MiB,
    build_image,
    catalog_entries,
    iter_images,
)
from chaosregistry.sandbox.credentials import Credentials
from chaosregistry.sandbox.layout import Layout, SandboxError, read_json, write_json

ACCEPT_MANIFESTS = ", ".join(MANIFEST_MEDIA_TYPES)
# Large enough for a 64 MiB PUT on a busy two-core machine.
TIMEOUT = httpx.Timeout(120.0, connect=5.0)

Progress = Callable[[str], None]


def _size(count: int) -> str:
    return f"{count / MiB:.1f} MiB" if count >= MiB else f"{count / 1024:.0f} KiB"


def _fail(what: str, response: httpx.Response) -> SandboxError:
    return SandboxError(f"seeding failed: {what} -> {response.status_code} {response.text[:200]}")


def _has_blob(client: httpx.Client, repository: str, digest: str) -> bool:
    return client.head(f"/v2/{repository}/blobs/{digest}").status_code == 200


def _upload_blob(client: httpx.Client, repository: str, blob: Blob) -> None:
    if _has_blob(client, repository, blob.digest):
        return
    started = client.post(f"/v2/{repository}/blobs/uploads/")
    if started.status_code != 202 or "Location" not in started.headers:
        raise _fail(f"POST upload {repository}", started)
    # The Location carries the upload's signed state (_state=...): add to its query, since
    # httpx's params= would replace it.
    location = httpx.URL(started.headers["Location"]).copy_add_param("digest", blob.digest)
    finished = client.put(
        location,
        content=blob.data,
        headers={"Content-Type": "application/octet-stream"},
    )
    if finished.status_code != 201:
        raise _fail(f"PUT blob {repository}@{blob.digest}", finished)


def _put_manifest(client: httpx.Client, repository: str, reference: str, blob: Blob) -> None:
    response = client.put(
        f"/v2/{repository}/manifests/{reference}",
        content=blob.data,
        headers={"Content-Type": blob.media_type},
    )
    if response.status_code != 201:
        raise _fail(f"PUT manifest {repository}:{reference}", response)
    served = response.headers.get("Docker-Content-Digest")
    if served != blob.digest:
        raise SandboxError(
            f"seeding failed: registry stored {repository}:{reference} as {served}, "
            f"expected {blob.digest}"
        )


def push_image(client: httpx.Client, image: Image, progress: Progress) -> None:
    for item in image.platforms:
        for number, layer in enumerate(item.layers, start=1):
            if layer.blob.size >= 16 * MiB:
                progress(
                    f"seed: {image.repository} {item.platform} layer {number}/"
                    f"{len(item.layers)} ({_size(layer.blob.size)})"
                )
            _upload_blob(client, image.repository, layer.blob)
        _upload_blob(client, image.repository, item.config)
        if image.index is not None:
            # Children first: the registry rejects an index naming manifests it lacks.
            _put_manifest(client, image.repository, item.manifest.digest, item.manifest)
    for tag in image.tags:
        _put_manifest(client, image.repository, tag, image.top)


def _already_seeded(layout: Layout, client: httpx.Client) -> list[dict[str, Any]] | None:
    if not (layout.seed_marker.is_file() and layout.catalog_file.is_file()):
        return None
    if read_json(layout.seed_marker).get("seed_version") != SEED_VERSION:
        return None
    catalog: list[dict[str, Any]] = read_json(layout.catalog_file)
    for entry in catalog:
        response = client.head(
            f"/v2/{entry['repository']}/manifests/{entry['tag']}",
            headers={"Accept": ACCEPT_MANIFESTS},
        )
        if response.headers.get("Docker-Content-Digest") != entry["digest"]:
            return None
    return catalog


def seed(
    layout: Layout, registry_url: str, creds: Credentials, progress: Progress
) -> list[dict[str, Any]]:
    """Make sure the registry holds the seeded images; returns the catalog."""
    with httpx.Client(
        base_url=registry_url,
        auth=(creds.username, creds.password),
        timeout=TIMEOUT,
        trust_env=False,
    ) as client:
        catalog = _already_seeded(layout, client)
        if catalog is not None:
            progress(f"seed: content v{SEED_VERSION} already present ({len(catalog)} tags)")
            return catalog
        catalog = []
        for image in iter_images():
            total = catalog_entries(image)[0]["total_bytes"]
            progress(
                f"seed: {image.repository}:{','.join(image.tags)} "
                f"({len(image.platforms)} platform(s), {_size(total)})"
            )
            push_image(client, image, progress)
            catalog.extend(catalog_entries(image))
    write_json(layout.catalog_file, catalog)
    write_json(layout.seed_marker, {"seed_version": SEED_VERSION, "tags": len(catalog)})
    return catalog


def push_unique_image(
    registry_url: str,
    creds: Credentials | None,
    repository: str,
    tag: str,
    *,
    layer_sizes: tuple[int, ...] = (48 * 1024, 16 * 1024),
) -> dict[str, Any]:
    """Push an image no registry (and no mirror) has seen before; returns its catalog entry.

    Its layers hold a random nonce, so every call makes new blobs: what a "cold" pull through a
    pull-through mirror needs. Raises SandboxError when the registry refuses the push.
    """
    nonce = secrets.token_hex(8)
    recipe = ImageRecipe(
        repository,
        (tag,),
        (LayerRecipe(((f"nonce/{nonce}", 16), *_numbered_files(f"{nonce}", layer_sizes))),),
    )
    image = build_image(recipe)
    auth = (creds.username, creds.password) if creds is not None else None
    with httpx.Client(base_url=registry_url, auth=auth, timeout=TIMEOUT, trust_env=False) as client:
        push_image(client, image, lambda _: None)
    return catalog_entries(image)[0]


def _numbered_files(prefix: str, sizes: tuple[int, ...]) -> tuple[tuple[str, int], ...]:
    return tuple((f"{prefix}/part-{index}.bin", size) for index, size in enumerate(sizes))
