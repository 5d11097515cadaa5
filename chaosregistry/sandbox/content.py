"""The seeded images: built by the project itself, deterministically, from a seeded PRNG.

Layers are real tar archives of pseudo-random files; configs are real image configs whose
``rootfs.diff_ids`` are the sha256 of each uncompressed tar. Most images use OCI media types
with uncompressed layers; the ``payments/worker`` images use Docker schema2 media types with
gzip layers (so a layer digest differs from its diff_id, as in most real registries).

Content depends only on ``SEED_VERSION`` and the recipes below (gzip output also on zlib, which
a given machine keeps fixed). Bump ``SEED_VERSION`` whenever a recipe changes.
"""

import gzip
import io
import json
import random
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from chaosregistry.oci.blobs import OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, Blob, sha256_digest

SEED_VERSION = 1
KiB = 1024
MiB = 1024 * KiB
# Fixed timestamps keep tar headers and configs byte-identical between runs.
FIXED_MTIME = 1_700_000_000
CREATED = "2023-11-14T22:13:20Z"

OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MANIFEST_MEDIA_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST)


@dataclass(frozen=True)
class Layer:
    blob: Blob
    diff_id: str


@dataclass(frozen=True)
class PlatformImage:
    """One platform's image: its manifest, config and layers."""

    platform: str
    manifest: Blob
    config: Blob
    layers: tuple[Layer, ...]


@dataclass(frozen=True)
class Image:
    """What one or more tags of a repository point to."""

    repository: str
    tags: tuple[str, ...]
    platforms: tuple[PlatformImage, ...]
    # The index / manifest list of a multi-platform image; None for a single manifest.
    index: Blob | None

    @property
    def top(self) -> Blob:
        """The manifest the tags point to."""
        return self.index if self.index is not None else self.platforms[0].manifest


@dataclass(frozen=True)
class LayerRecipe:
    files: tuple[tuple[str, int], ...]  # (path in the archive, size in bytes)
    # Layers with the same key (and platform) have the same content, across repositories.
    shared_key: str | None = None


@dataclass(frozen=True)
class ImageRecipe:
    repository: str
    tags: tuple[str, ...]
    layers: tuple[LayerRecipe, ...]
    platforms: tuple[str, ...] = ("linux/amd64",)
    docker: bool = False  # Docker schema2 media types instead of OCI


def _files(prefix: str, *sizes: int) -> tuple[tuple[str, int], ...]:
    return tuple((f"{prefix}/part-{index}.bin", size) for index, size in enumerate(sizes))


BASE_OS = LayerRecipe(
    files=(("etc/os-release", 300), *_files("usr/lib", 96 * KiB, 128 * KiB, 64 * KiB)),
    shared_key="base-os",
)
BOTH_ARCHES = ("linux/amd64", "linux/arm64")

RECIPES: tuple[ImageRecipe, ...] = (
    ImageRecipe(
        "tiny/hello",
        ("tiny-dev-0.0.1", "latest"),
        (LayerRecipe((("hello/greeting.txt", 2 * KiB), ("hello/data.bin", 6 * KiB))),),
    ),
    ImageRecipe(
        "shop/frontend",
        ("shop-prod-1.4.2", "latest"),
        (BASE_OS, LayerRecipe(_files("app", 48 * KiB, 32 * KiB))),
    ),
    ImageRecipe(
        "shop/frontend",
        ("shop-staging-1.5.0-rc.1",),
        (
            BASE_OS,
            LayerRecipe(_files("app", 50 * KiB, 40 * KiB)),
            LayerRecipe(_files("app/assets", 256 * KiB, 256 * KiB)),
        ),
    ),
    ImageRecipe(
        "shop/api",
        ("shop-prod-2.0.1", "latest"),
        (
            BASE_OS,
            LayerRecipe(_files("usr/local/bin", 1 * MiB)),
            LayerRecipe((("etc/api/config.json", 20 * KiB),)),
        ),
        platforms=BOTH_ARCHES,
    ),
    ImageRecipe(
        "shop/api",
        ("shop-staging-2.1.0-beta.2", "nightly"),
        (BASE_OS, LayerRecipe(_files("usr/local/bin", 1 * MiB + 100 * KiB))),
    ),
    ImageRecipe(
        "payments/worker",
        ("payments-prod-0.9.12",),
        (LayerRecipe(_files("srv", 200 * KiB)), LayerRecipe(_files("srv/jobs", 50 * KiB))),
        docker=True,
    ),
    ImageRecipe(
        "payments/worker",
        ("payments-staging-1.0.0", "nightly"),
        (LayerRecipe(_files("srv", 210 * KiB)), LayerRecipe(_files("srv/jobs", 60 * KiB))),
        platforms=BOTH_ARCHES,
        docker=True,
    ),
    ImageRecipe(
        "medium/app",
        ("medium-prod-3.2.0", "latest"),
        tuple(LayerRecipe(_files(f"opt/m{mib}", mib * MiB)) for mib in (1, 2, 4, 8, 16)),
    ),
    # Three ~64 MiB layers: a throughput benchmark moves ~192 MiB per pull.
    ImageRecipe(
        "big/blob",
        ("big-bench-1.0.0", "latest"),
        tuple(LayerRecipe(_files(f"data/{index}", 64 * MiB - 4 * KiB)) for index in range(3)),
    ),
)


def _rng(*parts: object) -> random.Random:
    # A str seed is hashed with SHA-512 by random.Random: stable across runs and hash seeds.
    return random.Random(":".join(str(part) for part in (SEED_VERSION, *parts)))


def build_tar(rng: random.Random, files: tuple[tuple[str, int], ...]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for path, size in files:
            info = tarfile.TarInfo(path)
            info.size = size
            info.mode = 0o644
            info.mtime = FIXED_MTIME
            info.uname = info.gname = "root"
            archive.addfile(info, io.BytesIO(rng.randbytes(size)))
    return buffer.getvalue()


def _layer(recipe: ImageRecipe, index: int, platform: str) -> Layer:
    layer = recipe.layers[index]
    key = layer.shared_key or f"{recipe.repository}:{recipe.tags[0]}:{index}"
    tar = build_tar(_rng(key, platform), layer.files)
    diff_id = sha256_digest(tar)
    if recipe.docker:
        # mtime=0 keeps the gzip header free of the current time.
        return Layer(Blob(DOCKER_LAYER_GZIP, gzip.compress(tar, mtime=0)), diff_id)
    return Layer(Blob(OCI_LAYER_TAR, tar), diff_id)


def _json_blob(media_type: str, document: dict[str, Any]) -> Blob:
    return Blob(media_type, json.dumps(document, indent=2).encode())


def _platform_fields(platform: str) -> dict[str, str]:
    os_name, architecture = platform.split("/")
    return {"architecture": architecture, "os": os_name}


def _platform_image(recipe: ImageRecipe, platform: str) -> PlatformImage:
    layers = tuple(_layer(recipe, index, platform) for index in range(len(recipe.layers)))
    config = _json_blob(
        DOCKER_CONFIG if recipe.docker else OCI_CONFIG,
        {
            "created": CREATED,
            **_platform_fields(platform),
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Cmd": ["/usr/local/bin/app"],
                "Labels": {
                    "org.opencontainers.image.title": recipe.repository,
                    "org.opencontainers.image.version": recipe.tags[0],
                    "io.chaosregistry.seed-version": str(SEED_VERSION),
                },
            },
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
            "history": [
                {"created": CREATED, "created_by": f"chaosregistry seed layer {index}"}
                for index in range(len(layers))
            ],
        },
    )
    manifest = _json_blob(
        DOCKER_MANIFEST if recipe.docker else OCI_MANIFEST,
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST if recipe.docker else OCI_MANIFEST,
            "config": config.descriptor(),
            "layers": [layer.blob.descriptor() for layer in layers],
        },
    )
    return PlatformImage(platform=platform, manifest=manifest, config=config, layers=layers)


def build_image(recipe: ImageRecipe) -> Image:
    platforms = tuple(_platform_image(recipe, platform) for platform in recipe.platforms)
    index = None
    if len(platforms) > 1:
        media_type = DOCKER_MANIFEST_LIST if recipe.docker else OCI_INDEX
        index = _json_blob(
            media_type,
            {
                "schemaVersion": 2,
                "mediaType": media_type,
                "manifests": [
                    {**image.manifest.descriptor(), "platform": _platform_fields(image.platform)}
                    for image in platforms
                ],
            },
        )
    return Image(recipe.repository, recipe.tags, platforms, index)


def iter_images(recipes: tuple[ImageRecipe, ...] = RECIPES) -> Iterator[Image]:
    """Images one at a time, so the ~190 MiB image is the largest thing held in memory."""
    for recipe in recipes:
        yield build_image(recipe)


def catalog_entries(image: Image) -> list[dict[str, Any]]:
    """One catalog entry per tag (schema in the package docstring)."""
    platforms = [
        {
            "platform": item.platform,
            "manifest_digest": item.manifest.digest,
            "manifest_media_type": item.manifest.media_type,
            "manifest_size": item.manifest.size,
            "config": {"digest": item.config.digest, "size": item.config.size},
            "layers": [
                {
                    "digest": layer.blob.digest,
                    "size": layer.blob.size,
                    "media_type": layer.blob.media_type,
                    "diff_id": layer.diff_id,
                }
                for layer in item.layers
            ],
        }
        for item in image.platforms
    ]
    total = sum(
        item.config.size + sum(layer.blob.size for layer in item.layers) for item in image.platforms
    )
    return [
        {
            "repository": image.repository,
            "tag": tag,
            "digest": image.top.digest,
            "media_type": image.top.media_type,
            "size": image.top.size,
            "platforms": platforms,
            "total_bytes": total,
        }
        for tag in image.tags
    ]
