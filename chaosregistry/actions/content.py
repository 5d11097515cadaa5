"""Registry content for experiments: push images no mirror has seen, and delete them again.

A pull-through mirror can only be tested on a cache miss with content it has never fetched, and
its cache cannot be purged through the API: so an experiment pushes a fresh image to the origin
(random bytes, so new blobs) under a tag unique to the run, e.g. ``${run_id}`` from
``CHAOSREGISTRY_RUN_ID`` (``chaosregistry gameday`` sets it). ``delete_images`` is the undo
partner. Content is not a fault: it breaks nothing, so it does not go through the fault ledger.
"""

from typing import Annotated

from chaosregistry.errors import ConfigError, PullError
from chaosregistry.experiment.activity import (
    Configuration,
    Result,
    Secrets,
    activity,
)
from chaosregistry.experiment.contracts import AT_LEAST_ONE, REPOSITORY, Image, Target
from chaosregistry.experiment.settings import settings_for
from chaosregistry.oci.reference import ImageReference
from chaosregistry.sandbox.seed import push_unique_image

__all__ = ["delete_images", "push_fresh_image"]


@activity
def push_fresh_image(
    image: Image,
    size_kib: Annotated[int, AT_LEAST_ONE] = 64,
    target: Target = "registry",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Push a small image with never-seen content to the target registry as ``image``.

    Arguments:
      image: ``repository:tag`` to create. It must not exist yet: a tag a mirror may already
        have cached would not be a cache miss.
      size_kib: size of its one layer in KiB (two files of 3/4 and 1/4), >= 1; a larger layer
        makes concurrent pulls overlap longer.
      target: ``registry`` (the origin; see chaosregistry.experiment.settings) or a URL.

    Returns a mapping: ``image``, ``registry``, ``digest``, ``bytes``. Raises ActivityFailed
    when the tag already exists or the registry refuses the push.
    """
    reference = ImageReference.parse(image)
    if reference.is_digest:
        raise ConfigError(f"image {image!r}: push a tag, not a digest")
    registry = settings_for(configuration).registry.resolve(secrets, target)
    with registry.client(max_connections=2) as client:
        try:
            existing = client.get_manifest(reference.repository, reference.reference)
        except PullError as exc:
            if exc.status != 404:
                raise ConfigError(f"cannot check {image} on {registry.url}: {exc}") from None
        else:
            raise ConfigError(
                f"{image} already exists on {registry.url} ({existing.digest}): use a new tag "
                "(set CHAOSREGISTRY_RUN_ID)"
            )
    entry = push_unique_image(
        registry.url,
        registry.credentials,
        reference.repository,
        reference.reference,
        layer_sizes=(max(1, size_kib * 768), max(1, size_kib * 256)),
        verify=registry.verify,
    )
    return {
        "image": str(reference),
        "registry": registry.url,
        "digest": entry["digest"],
        "bytes": entry["total_bytes"],
    }


@activity
def delete_images(
    repository: Annotated[str, REPOSITORY],
    target: Target = "registry",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Result:
    """Undo partner of ``push_fresh_image``: delete every tag of ``repository`` on the target.

    Arguments:
      repository: the repository whose manifests go (e.g. ``scratch/mirror-outage``).
      target: ``registry`` or a URL.

    Returns a mapping: ``deleted`` (digests) and ``count``. Idempotent: an unknown repository
    deletes nothing. The registry must allow deletes (the sandbox does).
    """
    ImageReference.parse(f"{repository}:x")  # validates the name
    registry = settings_for(configuration).registry.resolve(secrets, target)
    with registry.client(max_connections=2) as client:
        try:
            digests = client.delete_repository_tags(repository)
        except PullError as exc:
            raise ConfigError(f"cannot delete {repository} on {registry.url}: {exc}") from None
    return {"deleted": digests, "count": len(digests)}
