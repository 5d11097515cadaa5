"""Never-seen images for cold-mode loads, pushed to the origin registry before the run.

A pull-through mirror caches by digest, so re-tagging known content would only miss on the
manifest. Each fresh image is therefore unique all the way down: one small layer (a tar of one
file of random bytes) and a config naming it, in repository ``chaosregistry-load/fresh-<token>``
with tags ``f00000``, ``f00001``... The images stay in the origin afterwards (a registry
without deletion enabled cannot drop them); each is about ``FRESH_LAYER_BYTES``.

Pushed with :class:`chaosregistry.oci.RegistryClient`, by ``PUSH_THREADS`` threads sharing it.
"""

import io
import json
import os
import secrets as _random
import tarfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from chaosregistry.experiment.settings import RegistryTarget
from chaosregistry.oci import RegistryClient
from chaosregistry.oci.blobs import OCI_CONFIG, OCI_MANIFEST, Blob
from chaosregistry.oci.reference import Platform

FRESH_REPOSITORY_PREFIX = "chaosregistry-load/fresh-"
FRESH_LAYER_BYTES = 16 * 1024
PUSH_THREADS = 4
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def fresh_image(
    platform: Platform, layer_bytes: int = FRESH_LAYER_BYTES
) -> tuple[Blob, Blob, Blob]:
    """(layer, config, manifest) of one new image with content nobody has seen."""
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("fresh/data.bin")
        info.size = layer_bytes
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(os.urandom(layer_bytes)))
    layer = Blob(OCI_LAYER, archive.getvalue())
    platform_fields = {"architecture": platform.architecture, "os": platform.os}
    if platform.variant:
        platform_fields["variant"] = platform.variant
    config = Blob(
        OCI_CONFIG,
        json.dumps(
            {
                **platform_fields,
                "config": {"Labels": {"io.chaosregistry.load": "fresh"}},
                "rootfs": {"type": "layers", "diff_ids": [layer.digest]},
            }
        ).encode(),
    )
    manifest = Blob(
        OCI_MANIFEST,
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": config.descriptor(),
                "layers": [layer.descriptor()],
            }
        ).encode(),
    )
    return layer, config, manifest


def push_fresh_images(
    origin: RegistryTarget,
    count: int,
    platform: Platform,
    *,
    progress: Callable[[int], None] | None = None,
) -> list[str]:
    """Push ``count`` fresh images to ``origin``; their references, in pull order.

    Raises PullError (classified) when the origin refuses a push.
    """
    repository = FRESH_REPOSITORY_PREFIX + _random.token_hex(4)
    references = [f"{repository}:f{index:05d}" for index in range(count)]
    tags = [reference.rsplit(":", 1)[1] for reference in references]
    with (
        origin.client(max_connections=PUSH_THREADS) as client,
        ThreadPoolExecutor(PUSH_THREADS) as pool,
    ):
        pushed = pool.map(lambda tag: _push(client, repository, tag, platform), tags)
        for done, _ in enumerate(pushed, start=1):
            if progress is not None:
                progress(done)
    return references


def _push(client: RegistryClient, repository: str, tag: str, platform: Platform) -> None:
    layer, config, manifest = fresh_image(platform)
    for blob in (layer, config):
        client.push_blob(repository, blob.data, blob.digest)
    client.push_manifest(repository, tag, manifest.data, manifest.media_type)
