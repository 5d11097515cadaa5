"""Probes that pull images over the OCI distribution API and time them.

Registry failures are data, not exceptions: a pull that times out under a fault returns
``ok: false`` with a classified ``error``, so a hypothesis can say "pulls fail fast and clearly".
Bad arguments (an unknown platform string, a count of zero) raise ``ActivityFailed``.
"""

import time
from typing import Annotated, Any

from chaosregistry.errors import PullError
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
    Image,
    PlatformName,
    ResultKind,
    Returns,
    Seconds,
    Target,
)
from chaosregistry.experiment.settings import settings_for
from chaosregistry.observability.sli import SliSink, sink_for
from chaosregistry.oci.protocol import choose_platform
from chaosregistry.oci.pull import PullResult, pull, pull_many
from chaosregistry.oci.reference import ImageReference, Platform
from chaosregistry.stats import summarize

__all__ = ["manifest_digest", "pull_image", "pull_latency", "pull_recovery"]


@activity
def pull_image(
    image: Image,
    platform: PlatformName = "linux/amd64",
    concurrency: Annotated[int, AT_LEAST_ONE] = 3,
    verify: bool = True,
    target: Target = "registry",
    timeout: Annotated[float, NON_NEGATIVE] = 0,
    http2: bool = False,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Annotated[
    Result,
    Returns(
        "ok image registry platform digest manifest_digest media_type timings bytes blobs",
        "throughput_bytes_per_second verified http_version layers error",
        kind=ResultKind.PULL,
    ),
]:
    """Pull one image like a container runtime and report how long each phase took.

    Arguments:
      image: ``repository:tag`` or ``repository@sha256:...`` on the target registry.
      platform: ``os/arch[/variant]`` picked from a multi-platform index.
      concurrency: blobs (config and layers) fetched at once; dockerd uses 3.
      verify: check every blob's sha256 and size while it streams.
      target: ``registry`` or ``mirror`` (resolved from configuration, see
        chaosregistry.experiment.settings), or a URL.
      timeout: seconds each request may take (connect and each read); 0 uses
        ``configuration.registry_timeout`` (default 30).
      http2: speak HTTP/2 where the registry offers it by ALPN, on libcurl (default
        HTTP/1.1, as containerd pulls).

    Returns a mapping: ``ok`` (bool), ``image``, ``registry``, ``platform``, ``digest`` (what the
    reference resolved to), ``manifest_digest`` (the platform manifest), ``media_type``,
    ``timings`` {``auth``, ``manifest``, ``blobs``, ``total``} in seconds, ``bytes``,
    ``blobs``, ``throughput_bytes_per_second``, ``verified``, ``http_version`` (what the
    answers came over: ``HTTP/1.1`` or ``HTTP/2``), ``layers`` [{digest, size, seconds}], and
    ``error`` (null, or {``class``, ``message``, ``status``, ``detail``} where
    class is one of ``chaosregistry.errors.ErrorClass``: timeout, refused, dns, tls, reset, auth,
    auth-unavailable, not-found, method-not-allowed, rate-limited, server-error,
    digest-mismatch, truncated, platform-not-found, protocol; ``tls`` and ``dns`` carry
    ``detail.reason``, for ``dns`` one of name-not-known, no-address, temporary, failed).

    Raises ActivityFailed on bad arguments or configuration, never for a failed pull.
    """
    return _pull_once(
        image, platform, concurrency, verify, target, timeout, http2, configuration, secrets
    )


@activity
def pull_latency(
    image: Image,
    count: Annotated[int, AT_LEAST_ONE] = 10,
    concurrency: Annotated[int, AT_LEAST_ONE] = 1,
    platform: PlatformName = "linux/amd64",
    blob_concurrency: Annotated[int, AT_LEAST_ONE] = 3,
    verify: bool = True,
    target: Target = "registry",
    timeout: Annotated[float, NON_NEGATIVE] = 0,
    http2: bool = False,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Annotated[
    Result,
    Returns(
        "image registry count succeeded failed success_ratio min mean p50 p95 p99 max phases",
        "max_attempt errors first_error bytes durations http_version elapsed",
        kind=ResultKind.PULL_STATISTICS,
    ),
]:
    """Pull the same image ``count`` times, ``concurrency`` pulls at once; summarise exactly.

    Arguments:
      image: ``repository:tag`` or ``repository@sha256:...``.
      count: how many pulls in total (>= 1).
      concurrency: pulls in flight at once (>= 1).
      platform, blob_concurrency, verify, target, timeout, http2: as for ``pull_image``.

    Returns a mapping: ``count``, ``succeeded``, ``failed``, ``success_ratio`` (0..1),
    ``min``, ``mean``, ``p50``, ``p95``, ``p99``, ``max`` in seconds over successful pulls
    (null when none succeeded; percentiles interpolate linearly between ranks, as numpy does;
    top-level so a ``range`` tolerance can target them),
    ``phases`` {``auth``, ``manifest``, ``blobs``} mean seconds over successful pulls,
    ``max_attempt`` (the slowest pull, failed ones included: how long a caller waited at
    worst), ``errors`` {class: count}, ``first_error`` (message or null), ``bytes`` (per pull),
    ``durations`` (every pull's total seconds, in completion order), ``http_version`` and
    ``elapsed``.

    Raises ActivityFailed on bad arguments or configuration.
    """
    total = count
    parallel = concurrency
    reference = ImageReference.parse(image)
    wanted = Platform.parse(platform)
    registry = settings_for(configuration).registry.resolve(secrets, target)
    started = time.perf_counter()
    with registry.client(
        max_connections=parallel * max(1, blob_concurrency), timeout=_timeout(timeout), http2=http2
    ) as client:
        results = pull_many(
            client,
            reference,
            count=total,
            concurrency=parallel,
            platform=wanted,
            blob_concurrency=blob_concurrency,
            verify=verify,
        )
    elapsed = time.perf_counter() - started
    sink = sink_for(configuration)
    for r in results:
        _report(sink, r)

    good = [r for r in results if r.ok]
    errors: dict[str, int] = {}
    for r in results:
        if r.error is not None:
            errors[str(r.error.error_class)] = errors.get(str(r.error.error_class), 0) + 1
    first_error = next((str(r.error) for r in results if r.error is not None), None)
    phases = {
        phase: (sum(getattr(r, f"{phase}_seconds") for r in good) / len(good) if good else None)
        for phase in ("auth", "manifest", "blobs")
    }
    return {
        "image": str(reference),
        "registry": registry.url,
        "count": total,
        "succeeded": len(good),
        "failed": total - len(good),
        "success_ratio": len(good) / total,
        **summarize([r.total_seconds for r in good]),
        "phases": phases,
        "errors": errors,
        "first_error": first_error,
        "bytes": good[0].bytes if good else 0,
        "max_attempt": max(r.total_seconds for r in results),
        "durations": [r.total_seconds for r in results],
        "http_version": next((r.http_version for r in results if r.http_version), ""),
        "elapsed": elapsed,
    }


@activity
def manifest_digest(
    image: Image,
    platform: PlatformName = "",
    target: Target = "registry",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Annotated[
    Result,
    Returns(
        "image registry digest media_type platform_digest seconds ok error",
        kind=ResultKind.MANIFEST,
    ),
]:
    """Resolve a tag to its digest without fetching blobs: compare a mirror with its origin.

    Arguments:
      image: ``repository:tag``.
      platform: when set (``os/arch``), also resolve that platform's manifest in an index.
      target: ``registry``, ``mirror`` or a URL.

    Returns a mapping: ``image``, ``registry``, ``digest``, ``media_type``,
    ``platform_digest`` (empty unless ``platform`` is set), ``seconds``, ``ok`` and ``error``
    (as in ``pull_image``).
    """
    reference = ImageReference.parse(image)
    wanted = Platform.parse(platform) if platform else None
    registry = settings_for(configuration).registry.resolve(secrets, target)
    started = time.perf_counter()
    result: dict[str, Any] = {
        "image": str(reference),
        "registry": registry.url,
        "digest": "",
        "media_type": "",
        "platform_digest": "",
        "ok": False,
        "error": None,
    }
    with registry.client(max_connections=2) as client:
        try:
            top = client.get_manifest(reference.repository, reference.reference)
            result.update(digest=top.digest, media_type=top.media_type)
            if wanted is not None:
                if not top.is_index:
                    result["platform_digest"] = top.digest
                else:
                    result["platform_digest"] = choose_platform(top, wanted, str(reference))
            result["ok"] = True
        except PullError as exc:
            result["error"] = exc.as_dict()
    result["seconds"] = time.perf_counter() - started
    return result


@activity
def pull_recovery(
    image: Image,
    within: Seconds = 30,
    interval: Seconds = 0.5,
    timeout: Seconds = 2,
    platform: PlatformName = "linux/amd64",
    target: Target = "registry",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Annotated[
    Result,
    Returns(
        "recovered seconds attempts errors last_error",
        kind=ResultKind.PULL_RECOVERY,
    ),
]:
    """Pull until a pull succeeds, up to ``within`` seconds: how long the registry took to recover.

    Arguments:
      image: ``repository:tag`` to pull.
      within: give up after this many seconds.
      interval: seconds between attempts.
      timeout: seconds each request may take, so one black-holed attempt cannot eat the budget.
      platform, target: as for ``pull_image``.

    Returns a mapping: ``recovered`` (bool), ``seconds`` (until the first successful pull
    finished, or the time spent when it never did), ``attempts``, ``errors`` {class: count},
    ``last_error`` (message or null). Use a ``range`` tolerance on ``seconds`` for "recovers within
    N seconds" and a ``jsonpath`` on ``$.recovered``.
    """
    budget = float(within)
    pause = float(interval)
    reference = ImageReference.parse(image)
    wanted = Platform.parse(platform)
    registry = settings_for(configuration).registry.resolve(secrets, target)
    started = time.perf_counter()
    attempts = 0
    errors: dict[str, int] = {}
    last_error: str | None = None
    sink = sink_for(configuration)
    while True:
        attempts += 1
        with registry.client(max_connections=3, timeout=_timeout(timeout)) as client:
            result = pull(client, reference, platform=wanted)
        _report(sink, result)
        elapsed = time.perf_counter() - started
        if result.ok:
            return {
                "recovered": True,
                "seconds": elapsed,
                "attempts": attempts,
                "errors": errors,
                "last_error": last_error,
            }
        assert result.error is not None
        errors[str(result.error.error_class)] = errors.get(str(result.error.error_class), 0) + 1
        last_error = str(result.error)
        if elapsed + pause >= budget:
            return {
                "recovered": False,
                "seconds": elapsed,
                "attempts": attempts,
                "errors": errors,
                "last_error": last_error,
            }
        time.sleep(pause)


def _timeout(value: object) -> float | None:
    """A probe's ``timeout`` argument: 0 means "as configured"."""
    if value == 0:
        return None
    return require_positive_number("timeout", value)


def _pull_once(
    image: str,
    platform: str,
    concurrency: int,
    verify: bool,
    target: str,
    timeout: float,
    http2: bool,
    configuration: dict[str, Any] | None,
    secrets: dict[str, Any] | None,
) -> dict[str, Any]:
    reference = ImageReference.parse(image)
    wanted = Platform.parse(platform)
    require_positive_int("concurrency", concurrency)
    registry = settings_for(configuration).registry.resolve(secrets, target)
    client = registry.client(max_connections=concurrency, timeout=_timeout(timeout), http2=http2)
    with client:
        result = pull(client, reference, platform=wanted, concurrency=concurrency, verify=verify)
    _report(sink_for(configuration), result)
    return result.to_dict()


def _report(sink: SliSink, result: PullResult) -> None:
    """The pull to the SLI exporter (a no-op without one): chaosregistry.observability.sli."""
    sink.pull(
        result.registry,
        result.ok,
        None if result.error is None else str(result.error.error_class),
        result.total_seconds,
        result.auth_seconds,
        result.manifest_seconds,
        result.blobs_seconds,
    )
