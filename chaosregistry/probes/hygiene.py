"""Probes of a registry's hygiene: do tags follow the naming convention, how much do layers share.

Both walk the paged catalog and tag listings through the one client
(:meth:`~chaosregistry.oci.client.RegistryClient.list_repositories` / ``list_tags``: ``n`` and
``last``, ``Link: rel="next"`` headers, and what real registries do instead). What the sandbox's
implementations were seen to do, asking ``n=2``:

- Distribution 2.8: the catalog pages with Link headers; ``tags/list`` ignores ``n`` and
  ``last`` (every tag in one answer, no Link).
- Distribution 3.1: both page with Link headers (a Link also on a full last page; the page
  after it is empty).
- go-containerregistry: the catalog honours ``n`` but not ``last``, in no stable order, without
  Link (so it is read in one request without ``n``); ``tags/list`` honours ``n`` and ``last``
  without Link, and asked past the end starts again from the first tag.

Registry failures are data (``errors`` with a class from the one error table), as for pulls;
bad arguments raise ``ActivityFailed``. Only ``layer_reuse(check_mount=True)`` writes anything.
"""

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Annotated, Any, List

from chaosregistry.errors import ConfigError, ErrorClass, PullError
from chaosregistry.experiment.activity import (
    Configuration,
    Result,
    Secrets,
    activity,
    require_positive_int,
    require_positive_number,
)
from chaosregistry.experiment.contracts import (
    AT_LEAST_ONE,
    NON_NEGATIVE,
    REPOSITORY,
    TAG_PATTERN,
    Each,
    ResultKind,
    Returns,
    Target,
)
from chaosregistry.experiment.settings import resolve_target
from chaosregistry.oci.client import RegistryClient
from chaosregistry.oci.protocol import Descriptor, Listing, Manifest, image_blobs, index_manifests
from chaosregistry.oci.reference import DEFAULT_TAG_PATTERN, repository_name, tag_pattern

__all__ = ["layer_reuse", "tag_compliance"]

# Moving tags that name no release on purpose; allowed unless the caller says otherwise.
DEFAULT_ALLOWED = ("latest",)
DEFAULT_MOUNT_REPOSITORY = "chaosregistry-probe/mount-check"
# An index naming indexes is legal; deeper than this is a loop or a mistake.
MAX_INDEX_DEPTH = 3


@activity
def tag_compliance(
    pattern: Annotated[str, TAG_PATTERN] = "",
    repositories: Annotated[List[str], Each(REPOSITORY)] = None,
    allowed: List[str] = None,
    page_size: Annotated[int, AT_LEAST_ONE] = 100,
    target: Target = "registry",
    timeout: Annotated[float, NON_NEGATIVE] = 0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Annotated[
    Result,
    Returns(
        "registry pattern allowed repositories tags compliant allowed_tags",
        "non_compliant_count non_compliant compliance_ratio pages paging ok catalog_error",
        "errors seconds",
        kind=ResultKind.TAG_COMPLIANCE,
    ),
]:
    """Check every tag against the naming convention; list the ones that break it.

    Arguments:
      pattern: a Python regular expression a tag must match whole (``re.fullmatch``). Empty:
        the ``<project>-<env>-<semver>`` convention, e.g. ``shop-prod-1.4.2`` or
        ``shop-staging-1.5.0-rc.1``: project and environment a lower-case letter then letters
        and digits, then a Semantic Versioning 2.0 version (pre-release and build metadata
        allowed; build metadata after ``+`` or, since a tag cannot hold ``+``, ``_``).
      repositories: the repositories to check; empty (default): every one in the catalog.
      allowed: tags accepted whatever the pattern says (exact names, e.g. moving tags).
        Default ``["latest"]``; ``[]`` allows none.
      page_size: ``n`` asked per page of the catalog and of each tag listing (>= 1).
      target: ``registry``, ``mirror`` or a URL (see chaosregistry.experiment.settings).
      timeout: seconds each request may take; 0 uses ``configuration.registry_timeout``.

    Returns a mapping: ``registry``, ``pattern`` (as used), ``allowed``, ``repositories``
    (listed), ``tags`` (scanned), ``compliant`` (matching or allowed), ``allowed_tags``,
    ``non_compliant_count``, ``non_compliant`` {repository: [tags]} (only repositories with
    any), ``compliance_ratio`` (compliant / tags, 0..1; 1.0 with no tags), ``pages`` (listing
    requests made), ``paging`` {``catalog``: how the catalog paged, or ``given`` when
    ``repositories`` was set; ``tags``: {how: repositories}} with ``single``, ``link``,
    ``n-ignored``, ``last`` or ``unpaged`` (see ``oci.protocol.Listing``), ``ok`` (no listing
    failed), ``catalog_error`` and ``errors`` {repository: error} (null / {class, message,
    status, detail} as for pulls), ``seconds``.

    Raises ActivityFailed for a pattern that is not a valid regular expression, a repository
    name that is not one, a bad page size, timeout or target.
    """
    compiled = tag_pattern(pattern)
    accepted = _names("allowed", DEFAULT_ALLOWED if allowed is None else allowed)
    started = time.perf_counter()
    with _client(target, timeout, 2, configuration, secrets) as client:
        scan = _scan(client, repositories, page_size)
    compliant = allowed_tags = 0
    non_compliant: dict[str, list[str]] = {}
    for repository, listing in scan.tags.items():
        for tag in listing.names:
            if compiled.fullmatch(tag):
                compliant += 1
            elif tag in accepted:
                compliant += 1
                allowed_tags += 1
            else:
                non_compliant.setdefault(repository, []).append(tag)
    tags = sum(len(listing.names) for listing in scan.tags.values())
    return {
        "registry": client.url,
        "pattern": compiled.pattern if pattern else DEFAULT_TAG_PATTERN,
        "allowed": sorted(accepted),
        "repositories": len(scan.tags),
        "tags": tags,
        "compliant": compliant,
        "allowed_tags": allowed_tags,
        "non_compliant_count": tags - compliant,
        "non_compliant": non_compliant,
        "compliance_ratio": compliant / tags if tags else 1.0,
        **scan.summary(),
        "seconds": time.perf_counter() - started,
    }


@activity
def layer_reuse(
    repositories: Annotated[List[str], Each(REPOSITORY)] = None,
    top: Annotated[int, AT_LEAST_ONE] = 10,
    page_size: Annotated[int, AT_LEAST_ONE] = 100,
    concurrency: Annotated[int, AT_LEAST_ONE] = 4,
    check_mount: bool = False,
    mount_repository: Annotated[str, REPOSITORY] = DEFAULT_MOUNT_REPOSITORY,
    target: Target = "registry",
    timeout: Annotated[float, NON_NEGATIVE] = 0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Annotated[
    Result,
    Returns(
        "registry repositories tags manifests indexes blobs references shared_blobs",
        "shared_bytes bytes_stored bytes_referenced bytes_by_repository reuse_ratio",
        "saved_bytes top_shared mount pages paging ok catalog_error errors seconds",
        kind=ResultKind.LAYER_REUSE,
    ),
]:
    """Measure how much the images share: blobs across repositories, bytes stored vs referenced.

    Every tag's manifest is read (for an index, every manifest it names: each platform's,
    attestations too) and the config and layer blobs it references are counted; manifests
    themselves are not counted as blobs. An image manifest named by several tags counts once.

    Arguments:
      repositories: the repositories to scan; empty (default): every one in the catalog.
      top: how many of the most shared layers to list (>= 1).
      page_size: ``n`` per page of the catalog and tag listings (>= 1).
      concurrency: manifests fetched at once (>= 1).
      check_mount: also check that a cross-repository blob mount works
        (``POST /v2/<mount_repository>/blobs/uploads/?mount=<digest>&from=<repository>``).
        **This writes**: on success the registry links the blob into ``mount_repository``
        (the link stays; the blob's bytes are not copied). When the registry answers 202 (no
        mount: it started an ordinary upload), the upload is cancelled with a DELETE. Default
        false: then the probe changes nothing.
      mount_repository: the scratch repository the mount goes into (default
        ``chaosregistry-probe/mount-check``); needs push rights there.
      target, timeout: as for ``tag_compliance``.

    Returns a mapping: ``registry``, ``repositories`` (listed), ``tags``, ``manifests`` (distinct
    image manifests, per repository), ``indexes``, ``blobs`` (distinct digests), ``references``
    (a manifest's use of a blob), ``shared_blobs`` (blobs referenced from two or more
    repositories), ``shared_bytes`` (their sizes), ``bytes_stored`` (sizes of the distinct
    blobs: what a content-addressed registry keeps), ``bytes_referenced`` (summed over every
    reference: what one copy per image would cost), ``bytes_by_repository`` (one copy per
    repository that uses a blob), ``reuse_ratio`` (bytes_referenced / bytes_stored, >= 1;
    null with no blobs), ``saved_bytes`` (referenced - stored), ``top_shared`` [{``digest``,
    ``size``, ``media_type``, ``repositories`` (count), ``references``}] (layers used more than
    once, most repositories first, then most references, then largest), ``mount`` (null unless
    ``check_mount``: {``mounted`` (bool, null when the request failed), ``status`` (201 mounted,
    202 not), ``digest``, ``from``, ``to``, ``upload_cancelled`` (bool or null),
    ``cancel_status``, ``error``}), ``pages``, ``paging``, ``ok``, ``catalog_error`` and
    ``errors`` {repository or repository:tag: error}, ``seconds``.

    Raises ActivityFailed on bad arguments (as for ``tag_compliance``; also a bad
    ``mount_repository``), never for a registry failure.
    """
    count = top
    workers = concurrency
    scratch = repository_name(mount_repository, "mount_repository")
    if not isinstance(check_mount, bool):
        raise ConfigError(f"check_mount must be true or false, got {check_mount!r}")
    started = time.perf_counter()
    with _client(target, timeout, workers, configuration, secrets) as client:
        scan = _scan(client, repositories, page_size)
        references = [(repo, tag) for repo, listing in scan.tags.items() for tag in listing.names]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="manifest") as pool:
            found = list(pool.map(lambda ref: _image_blobs(client, *ref), references))
        images: dict[tuple[str, str], list[Descriptor]] = {}
        configs: set[str] = set()
        indexes: set[tuple[str, str]] = set()
        for (repository, tag), result in zip(references, found, strict=True):
            if isinstance(result, PullError):
                scan.errors[f"{repository}:{tag}"] = result.as_dict()
                continue
            for digest, blobs, index_digests in result:
                images[(repository, digest)] = blobs
                configs.add(blobs[0].digest)
                indexes.update((repository, d) for d in index_digests)
        mount = None
        if check_mount:
            mount = _check_mount(client, images, configs, scratch)
    figures = _reuse_figures(images, configs, count)
    return {
        "registry": client.url,
        "repositories": len(scan.tags),
        "tags": len(references),
        "manifests": len(images),
        "indexes": len(indexes),
        **figures,
        "mount": mount,
        **scan.summary(),
        "seconds": time.perf_counter() - started,
    }


# -- the walk ---------------------------------------------------------------------------------
@dataclass
class _Scan:
    """The listings of one walk, and what failed (as data)."""

    tags: dict[str, Listing] = field(default_factory=dict)
    errors: dict[str, Any] = field(default_factory=dict)
    catalog_error: dict[str, Any] | None = None
    catalog_paging: str = "given"
    pages: int = 0

    def summary(self) -> dict[str, Any]:
        by_kind: dict[str, int] = {}
        for listing in self.tags.values():
            by_kind[listing.paging] = by_kind.get(listing.paging, 0) + 1
        return {
            "pages": self.pages,
            "paging": {"catalog": self.catalog_paging, "tags": by_kind},
            "ok": self.catalog_error is None and not self.errors,
            "catalog_error": self.catalog_error,
            "errors": self.errors,
        }


def _names(what: str, value: object) -> list[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{what} must be a list of names, got {value!r}")
    return list(value)


def _client(
    target: str,
    timeout: float,
    connections: int,
    configuration: dict[str, Any] | None,
    secrets: dict[str, Any] | None,
) -> RegistryClient:
    seconds = None if timeout == 0 else require_positive_number("timeout", timeout)
    registry = resolve_target(configuration, secrets, target=target)
    return registry.client(max_connections=connections, timeout=seconds)


def _scan(client: RegistryClient, repositories: list[str] | None, page_size: int) -> _Scan:
    """The catalog (unless ``repositories`` names them), then each repository's tags."""
    size = require_positive_int("page_size", page_size)
    names = [repository_name(r) for r in _names("repositories", repositories or [])]
    scan = _Scan()
    if not names:
        try:
            catalog = client.list_repositories(size)
        except PullError as exc:
            scan.catalog_error = exc.as_dict()
            return scan
        names, scan.pages, scan.catalog_paging = catalog.names, catalog.pages, catalog.paging
    listed = scan.catalog_paging != "given"
    for repository in dict.fromkeys(names):
        try:
            listing = client.list_tags(repository, size)
        except PullError as exc:
            if listed and exc.error_class is ErrorClass.NOT_FOUND:
                # In the catalog without a tag (blobs only, e.g. a mount target, or every tag
                # deleted): Distribution answers NAME_UNKNOWN. A repository named by the caller
                # that is not there stays an error.
                listing = Listing([], 1, "single")
            else:
                scan.errors[repository] = exc.as_dict()
                continue
        scan.tags[repository] = listing
        scan.pages += listing.pages
    return scan


ImageBlobs = list[tuple[str, list[Descriptor], list[str]]]


def _image_blobs(client: RegistryClient, repository: str, tag: str) -> ImageBlobs | PullError:
    """(image manifest digest, its blobs (config first), the indexes above it) for every image
    manifest ``repository:tag`` leads to; the failure, as a value, when one cannot be read."""
    try:
        found: ImageBlobs = []
        _walk(client, repository, client.get_manifest(repository, tag), [], found)
        return found
    except PullError as exc:
        return exc


def _walk(
    client: RegistryClient,
    repository: str,
    manifest: Manifest,
    above: list[str],
    found: ImageBlobs,
) -> None:
    if not manifest.is_index:
        found.append((manifest.digest, image_blobs(manifest), above))
        return
    if len(above) >= MAX_INDEX_DEPTH or manifest.digest in above:
        raise PullError(
            ErrorClass.PROTOCOL,
            f"index {manifest.digest[:19]} of {repository}: indexes nested too deep",
        )
    for entry in index_manifests(manifest):
        child = client.get_manifest(repository, entry.digest)
        _walk(client, repository, child, [*above, manifest.digest], found)


# -- the figures ------------------------------------------------------------------------------
def _reuse_figures(
    images: dict[tuple[str, str], list[Descriptor]], configs: set[str], top: int
) -> dict[str, Any]:
    size: dict[str, int] = {}
    media_type: dict[str, str] = {}
    used_by: dict[str, set[str]] = {}
    references: dict[str, int] = {}
    for (repository, _), blobs in images.items():
        # A blob listed twice in one manifest (an empty layer, say) is one reference.
        for blob in {b.digest: b for b in blobs}.values():
            size[blob.digest] = blob.size
            media_type[blob.digest] = blob.media_type
            used_by.setdefault(blob.digest, set()).add(repository)
            references[blob.digest] = references.get(blob.digest, 0) + 1
    stored = sum(size.values())
    referenced = sum(size[d] * references[d] for d in size)
    shared = [d for d in size if len(used_by[d]) > 1]
    layers = [d for d in size if d not in configs and references[d] > 1]
    layers.sort(key=lambda d: (-len(used_by[d]), -references[d], -size[d], d))
    return {
        "blobs": len(size),
        "references": sum(references.values()),
        "shared_blobs": len(shared),
        "shared_bytes": sum(size[d] for d in shared),
        "bytes_stored": stored,
        "bytes_referenced": referenced,
        "bytes_by_repository": sum(size[d] * len(used_by[d]) for d in size),
        "reuse_ratio": referenced / stored if stored else None,
        "saved_bytes": referenced - stored,
        "top_shared": [
            {
                "digest": d,
                "size": size[d],
                "media_type": media_type[d],
                "repositories": len(used_by[d]),
                "references": references[d],
            }
            for d in layers[:top]
        ],
    }


def _check_mount(
    client: RegistryClient,
    images: dict[tuple[str, str], list[Descriptor]],
    configs: set[str],
    scratch: str,
) -> dict[str, Any]:
    """Mount the smallest layer seen (cheap if the registry copies instead) into ``scratch``."""
    candidates = [
        (blob.size, blob.digest, repository)
        for (repository, _), blobs in images.items()
        for blob in blobs
        if blob.digest not in configs and repository != scratch
    ]
    result: dict[str, Any] = {
        "mounted": None,
        "status": None,
        "digest": None,
        "from": None,
        "to": scratch,
        "upload_cancelled": None,
        "cancel_status": None,
        "error": None,
    }
    if not candidates:
        result["error"] = {
            "class": str(ErrorClass.NOT_FOUND),
            "message": "no layer outside the scratch repository to mount",
            "status": None,
            "detail": {},
        }
        return result
    _, digest, source = min(candidates)
    result.update(digest=digest, **{"from": source})
    try:
        mount = client.mount_blob(scratch, digest, source)
    except PullError as exc:
        result["error"] = exc.as_dict()
        return result
    result.update(mounted=mount.mounted, status=mount.status, cancel_status=mount.cancel_status)
    if not mount.mounted:
        cancelled = mount.cancel_status is not None and 200 <= mount.cancel_status < 300
        result["upload_cancelled"] = cancelled
        if mount.cancel_error:
            result["error"] = {
                "class": str(ErrorClass.PROTOCOL),
                "message": f"upload not cancelled: {mount.cancel_error}",
                "status": mount.cancel_status,
                "detail": {},
            }
    return result
