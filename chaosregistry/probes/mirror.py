"""Probes of a pull-through mirror's cost to its upstream, and of where nodes pulled from.

Distribution's pull-through cache does not merge concurrent misses for the same blob (ANCHORS.md):
a cold mirror hit by a rollout fetches each blob from upstream as many times as it is asked at
once. ``upstream_fetches`` counts what the upstream actually served for one image, from the
access log of the sandbox's mirror->upstream front door (local backend only).
``node_pull_hosts`` reads the same log for a Deployment's image on a cluster that pulls through
the sandbox: whether its nodes resolved it at the origin or the mirror fetched it for them.
"""

import re
from pathlib import Path
from typing import Annotated, Any

from chaosregistry.backends.kubernetes import get_deployment
from chaosregistry.errors import ConfigError, PullError
from chaosregistry.experiment.activity import Configuration, Result, Secrets, activity
from chaosregistry.experiment.contracts import KUBE_NAME, Image, PlatformName, ResultKind, Returns
from chaosregistry.experiment.needs import SandboxNeed
from chaosregistry.experiment.settings import Namespace, settings_for
from chaosregistry.kubernetes.rollout import container_images
from chaosregistry.oci.reference import ImageReference, Platform, split_image_name

__all__ = ["node_pull_hosts", "upstream_fetches"]

# On the local backend this reads the embedded sandbox itself, whatever the configuration
# names: gameday starts one for it (``experiment.needs`` reads this).
SANDBOX_NEED = SandboxNeed("reads the sandbox mirror's access log")

# One nginx access-log line of the sandbox (log_format "sandbox" in chaosregistry.sandbox.configs).
_LINE = re.compile(
    r'"(?P<method>[A-Z]+) /v2/(?P<repository>\S+)/(?P<kind>blobs|manifests)/(?P<ref>[^?\s]+)'
    r'(?P<query>\S*) HTTP/[\d.]+" (?P<status>\d{3}) .* port=(?P<port>\d+)$'
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


@activity
def node_pull_hosts(
    deployment: Annotated[str, KUBE_NAME],
    namespace: Namespace = "",
    container: str = "",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Annotated[
    Result,
    Returns(
        "image at_origin mirror_upstream origin_resolves mirror_fetches",
        kind=ResultKind.NODE_PULL_HOSTS,
    ),
]:
    """Where the nodes resolved a Deployment's current image: at the origin, or through the
    mirror (a cluster pulling through the sandbox, ``sandbox_dir``).

    Reads the sandbox's nginx access log, as ``upstream_fetches`` does: the manifest requests
    (HEAD and GET) for the image's reference, its tag or digest, that the nodes sent to the
    origin registry (containerd marks each request of a pull with ``?ns=<the image's registry
    host>``, which tells them from pushes), and those the mirror sent to its upstream for it (a
    node that pulls through the mirror makes the mirror ask). A pull the mirror served from its
    cache leaves neither: read ``origin_resolves`` 0 with ``mirror_fetches`` 0 as that, or as
    no pull.

    Arguments:
      deployment: the Deployment's name.
      namespace: its namespace (default ``configuration.namespace``).
      container: the container whose image (may be empty when the pod has one).

    Returns a mapping: ``image`` (as the Deployment names it), ``at_origin`` {status:
    requests} (the nodes' at the origin), ``mirror_upstream`` {status: requests} (the mirror's
    to its upstream), ``origin_resolves`` (``at_origin``'s 200s: the nodes' lookups the origin
    answered) and ``mirror_fetches`` (``mirror_upstream``'s 200s: what the mirror fetched to
    serve them). Raises ActivityFailed without a sandbox, for an unknown Deployment or
    container.
    """
    settings = settings_for(configuration)
    registry = settings.registry
    if registry.sandbox_dir is None:
        raise ConfigError("node_pull_hosts reads the sandbox's logs: set 'sandbox_dir'")
    client, chosen = settings.kubernetes.deployment_target(deployment, namespace)
    images = container_images(get_deployment(client, chosen, deployment))
    if not container and len(images) == 1:
        (image,) = images.values()
    elif container in images:
        image = images[container]
    else:
        raise ConfigError(
            f"deployment {deployment!r} has containers {sorted(images)}: name one as 'container'"
        )
    host, reference = split_image_name(image)
    endpoints = registry.endpoints()
    log = Path(endpoints["logs_dir"]) / "nginx-access.log"
    return {"image": image, **pull_hosts(log, endpoints["hops"], host, reference)}


def pull_hosts(
    log: Path, hops: dict[str, Any], host: str, reference: ImageReference
) -> dict[str, Any]:
    """``node_pull_hosts``'s figures from the access log ``log``, given the sandbox's ``hops``
    (``endpoints.json``'s) and the image's registry ``host`` and reference."""
    origin = str(hops["client-registry"]["upstream"]).rsplit(":", 1)[1]
    upstream = str(hops["mirror-upstream"]["upstream"]).rsplit(":", 1)[1]
    at_origin: dict[str, int] = {}
    mirror_upstream: dict[str, int] = {}
    for match in _matches(log, origin) + _matches(log, upstream):
        if match["kind"] != "manifests" or match["method"] not in ("HEAD", "GET"):
            continue
        if (match["repository"], match["ref"]) != (reference.repository, reference.reference):
            continue
        if match["port"] == upstream:
            mirror_upstream[match["status"]] = mirror_upstream.get(match["status"], 0) + 1
        elif match["query"] == f"?ns={host}":
            at_origin[match["status"]] = at_origin.get(match["status"], 0) + 1
    return {
        "at_origin": at_origin,
        "mirror_upstream": mirror_upstream,
        "origin_resolves": at_origin.get("200", 0),
        "mirror_fetches": mirror_upstream.get("200", 0),
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
