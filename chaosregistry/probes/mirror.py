"""Probes of a pull-through mirror's cost to its upstream.

Distribution's pull-through cache does not merge concurrent misses for the same blob (ANCHORS.md):
a cold mirror hit by a rollout fetches each blob from upstream as many times as it is asked at
once. ``upstream_fetches`` counts what the upstream actually served for one image, from the
access log of the sandbox's mirror->upstream front door (local backend only).
"""

import re
from pathlib import Path
from typing import Annotated, Any

from chaosregistry.errors import ConfigError, PullError
from chaosregistry.experiment.activity import Configuration, Result, Secrets, activity
from chaosregistry.experiment.contracts import Image, PlatformName, ResultKind, Returns
from chaosregistry.experiment.needs import SandboxNeed
from chaosregistry.experiment.settings import settings_for
from chaosregistry.oci.reference import ImageReference, Platform

__all__ = ["upstream_fetches"]

# On the local backend this reads the embedded sandbox itself, whatever the configuration
# names: gameday starts one for it (``experiment.needs`` reads this).
SANDBOX_NEED = SandboxNeed("reads the sandbox mirror's access log")

# One nginx access-log line of the sandbox (log_format "sandbox" in chaosregistry.sandbox.configs).
_LINE = re.compile(
    r'"(?P<method>[A-Z]+) /v2/(?P<repository>\S+)/(?P<kind>blobs|manifests)/(?P<ref>\S+) '
    r'HTTP/[\d.]+" (?P<status>\d{3}) .* port=(?P<port>\d+)$'
)


@activity
def upstream_fetches(
    image: Image,
    platform: PlatformName = "linux/amd64",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Annotated[
    Result,
    Returns(
        "image blobs blob_fetches fetches_per_blob max_fetches_of_one_blob",
        "manifest_fetches per_blob",
        kind=ResultKind.UPSTREAM_FETCHES,
    ),
]:
    """Count how often the mirror's upstream served each blob of ``image`` (sandbox only).

    Arguments:
      image: ``repository:tag`` as it exists on the origin registry.
      platform: which platform's blobs to count in a multi-platform image.

    Returns a mapping: ``image``, ``blobs`` (distinct blobs in the image), ``blob_fetches``
    (successful upstream GETs of those blobs), ``fetches_per_blob`` (blob_fetches / blobs: 1.0
    is a cache that fetches each blob once; 0 before any pull), ``max_fetches_of_one_blob``,
    ``manifest_fetches`` and ``per_blob`` {digest: fetches}.
    Raises ActivityFailed without a sandbox or when the image does not exist on the origin.
    """
    settings = settings_for(configuration).registry
    if settings.sandbox_dir is None:
        raise ConfigError("upstream_fetches reads the sandbox's logs: set 'sandbox_dir'")
    endpoints = settings.endpoints()
    reference = ImageReference.parse(image)
    wanted = Platform.parse(platform)
    registry = settings.resolve(secrets, "registry")
    with registry.client(max_connections=2) as client:
        try:
            resolved = client.resolve(reference, wanted)
        except PullError as exc:
            raise ConfigError(f"cannot read {image} on the origin: {exc}") from None
    digests = [blob.digest for blob in resolved.blobs]
    port = str(endpoints["hops"]["mirror-upstream"]["upstream"]).rsplit(":", 1)[1]
    per_blob: dict[str, int] = dict.fromkeys(digests, 0)
    manifest_fetches = 0
    for match in _matches(Path(endpoints["logs_dir"]) / "nginx-access.log", port):
        if match["repository"] != reference.repository or match["method"] != "GET":
            continue
        if match["kind"] == "blobs" and match["ref"] in per_blob and match["status"] == "200":
            per_blob[match["ref"]] += 1
        elif match["kind"] == "manifests":
            manifest_fetches += 1
    fetches = sum(per_blob.values())
    return {
        "image": str(reference),
        "blobs": len(digests),
        "blob_fetches": fetches,
        "fetches_per_blob": fetches / len(digests),
        "max_fetches_of_one_blob": max(per_blob.values()),
        "manifest_fetches": manifest_fetches,
        "per_blob": per_blob,
    }


def _matches(log: Path, port: str) -> list[dict[str, Any]]:
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return []
    found = []
    for line in lines:
        match = _LINE.search(line)
        if match is not None and match["port"] == port:
            found.append(match.groupdict())
    return found
