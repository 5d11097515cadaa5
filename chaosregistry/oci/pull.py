"""Pull an image the way a container runtime does, timing each phase.

tag -> (image index -> platform manifest) -> config and layers fetched concurrently (3 at a time
by default, like dockerd), each blob's size and sha256 checked while it streams. Blobs are
discarded after verification: we measure the registry, not the disk.
"""

import threading
import time
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Any

from chaosregistry.errors import ConfigError, PullError
from chaosregistry.oci.client import BlobFetch, RegistryClient
from chaosregistry.oci.protocol import Descriptor
from chaosregistry.oci.reference import ImageReference, Platform

DEFAULT_PLATFORM = Platform("linux", "amd64")
DEFAULT_CONCURRENCY = 3


@dataclass
class PullResult:
    """One pull. ``to_dict()`` is the stable, documented shape probes return."""

    image: str
    registry: str
    platform: str
    ok: bool = False
    digest: str = ""  # what the tag pointed to (an index for multi-arch images)
    manifest_digest: str = ""  # the platform's image manifest
    media_type: str = ""
    auth_seconds: float = 0.0
    manifest_seconds: float = 0.0
    blobs_seconds: float = 0.0
    total_seconds: float = 0.0
    bytes: int = 0
    blobs: int = 0
    verified: bool = False
    http_version: str = ""  # what the answers came over: "HTTP/1.1" or "HTTP/2"
    error: PullError | None = None
    blob_timings: list[BlobFetch] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        """Blob bytes per second over the blob phase (0 when nothing was fetched)."""
        return self.bytes / self.blobs_seconds if self.blobs_seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "registry": self.registry,
            "platform": self.platform,
            "ok": self.ok,
            "digest": self.digest,
            "manifest_digest": self.manifest_digest,
            "media_type": self.media_type,
            "timings": {
                "auth": self.auth_seconds,
                "manifest": self.manifest_seconds,
                "blobs": self.blobs_seconds,
                "total": self.total_seconds,
            },
            "bytes": self.bytes,
            "blobs": self.blobs,
            "throughput_bytes_per_second": self.throughput,
            "verified": self.verified,
            "http_version": self.http_version,
            "error": self.error.as_dict() if self.error else None,
            "layers": [asdict(b) for b in self.blob_timings],
        }


def pull(
    client: RegistryClient,
    image: ImageReference,
    *,
    platform: Platform | None = DEFAULT_PLATFORM,
    concurrency: int = DEFAULT_CONCURRENCY,
    verify: bool = True,
) -> PullResult:
    """Pull ``image`` from ``client``'s registry. Registry failures land in ``result.error``.

    ``platform=None`` accepts a plain manifest only (an index is then an error).
    Raises ConfigError for bad arguments, never PullError.
    """
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        raise ConfigError(f"concurrency must be a whole number >= 1, got {concurrency!r}")
    result = PullResult(str(image), client.url, str(platform) if platform else "")
    started = time.perf_counter()
    try:
        resolved = client.resolve(image, platform)
        result.digest = resolved.digest
        result.media_type = resolved.media_type
        result.manifest_digest = resolved.manifest_digest
        result.auth_seconds = resolved.auth_seconds
        result.manifest_seconds = time.perf_counter() - started - result.auth_seconds
        blobs_started = time.perf_counter()
        _fetch_blobs(client, image.repository, resolved.blobs, result, concurrency, verify)
        result.blobs_seconds = time.perf_counter() - blobs_started
        result.verified = verify
        result.ok = True
    except PullError as exc:
        result.error = exc
    result.total_seconds = time.perf_counter() - started
    result.http_version = client.http_version
    return result


def pull_many(
    client: RegistryClient,
    image: ImageReference,
    *,
    count: int,
    concurrency: int,
    platform: Platform | None = DEFAULT_PLATFORM,
    blob_concurrency: int = DEFAULT_CONCURRENCY,
    verify: bool = True,
) -> list[PullResult]:
    """``count`` pulls of ``image``, ``concurrency`` at a time, in the order they were started
    (``probes.pull.pull_latency`` and ``chaosregistry init``'s baseline)."""

    def one(_: int) -> PullResult:
        return pull(client, image, platform=platform, concurrency=blob_concurrency, verify=verify)

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="pull") as pool:
        return list(pool.map(one, range(count)))


def _fetch_blobs(
    client: RegistryClient,
    repository: str,
    descriptors: list[Descriptor],
    result: PullResult,
    concurrency: int,
    verify: bool,
) -> None:
    cancel = threading.Event()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="blob") as pool:
        futures: list[Future[BlobFetch]] = [
            pool.submit(
                client.fetch_blob, repository, d.digest, d.size, verify=verify, cancel=cancel
            )
            for d in descriptors
        ]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in done if f.exception() is not None]
        if failed:
            cancel.set()  # stop sibling downloads early: the pull has already failed
            for f in futures:
                f.cancel()
            error = failed[0].exception()
            assert error is not None
            raise error
    for future in futures:
        fetch = future.result()
        result.blob_timings.append(fetch)
        result.bytes += fetch.size
        result.auth_seconds += fetch.auth_seconds
    result.blobs = len(futures)
