"""Probes of a registry as a service: is it answering, what its TLS says, what its metrics say."""

import time
from typing import Annotated, Any
from urllib.parse import urlsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families

from chaosregistry.errors import ConfigError, PullError
from chaosregistry.experiment.activity import (
    Configuration,
    Result,
    Secrets,
    activity,
)
from chaosregistry.experiment.contracts import ResultKind, Returns, Seconds, Target, Url
from chaosregistry.experiment.needs import SandboxUnlessGiven
from chaosregistry.experiment.settings import settings_for
from chaosregistry.trust.tlsinspect import Endpoint, inspect, no_facts

__all__ = ["registry_metrics", "registry_reachable", "registry_tls"]


@activity
def registry_reachable(
    target: Target = "registry",
    timeout: Seconds = 5.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Annotated[
    Result,
    Returns(
        "reachable url status auth_scheme api_version seconds error",
        kind=ResultKind.REACHABILITY,
    ),
]:
    """Check that a registry answers its ``/v2/`` endpoint, and how fast.

    Reachable means an HTTP answer of 200 (anonymous) or 401 (it wants credentials): both prove
    the registry process is up and speaks the distribution API.

    Arguments:
      target: ``registry``, ``mirror`` (see chaosregistry.experiment.settings) or a URL.
      timeout: seconds to wait for the connection and the answer.

    Returns a mapping: ``reachable`` (bool), ``url``, ``status`` (HTTP status or null),
    ``auth_scheme`` (none, basic, bearer), ``api_version``, ``seconds``, ``error`` (null or
    {class, message, status, detail}).
    """
    seconds = float(timeout)
    registry = settings_for(configuration).registry.resolve(secrets, target)
    started = time.perf_counter()
    result: dict[str, Any] = {
        "reachable": False,
        "url": registry.url,
        "status": None,
        "auth_scheme": None,
        "api_version": "",
        "error": None,
    }
    client = registry.client(max_connections=1, timeout=seconds)
    try:
        ping = client.ping()
        result.update(
            reachable=True,
            status=ping.status,
            auth_scheme=ping.auth_scheme,
            api_version=ping.api_version,
        )
    except PullError as exc:
        result.update(error=exc.as_dict(), status=exc.status)
    finally:
        client.close()
    result["seconds"] = time.perf_counter() - started
    return result


@activity
def registry_tls(
    target: Target = "registry",
    timeout: Seconds = 5.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Annotated[
    Result,
    Returns(
        "url tls tls_version cipher alpn_offered h2 trusted verified hostname_match leaf",
        "chain min_days_left seconds error",
        kind=ResultKind.TLS,
    ),
]:
    """Inspect a registry's TLS endpoint: protocol, HTTP/2, certificates, days left, trust.

    The facts are read with verification off, so an expired, wrong-host or untrusted
    certificate is still described; trust is then checked on its own against the configured
    CA bundle (``registry_ca_bundle``), else the system CAs (also when ``registry_verify_tls``
    is false: checking is this probe's purpose). Only TLS handshakes: no HTTP request is sent.
    Behind a fault proxy (configuration ``fault_proxy``) the handshakes cross its hop and the
    name checked is still the registry's own.

    Arguments:
      target: ``registry``, ``mirror`` (see chaosregistry.experiment.settings) or a URL.
      timeout: seconds for all the handshakes together (five at most).

    Returns a mapping:
      ``url``; ``tls`` (bool: the URL is https; for http the facts below are null, empty or
      false and ``error`` is null);
      ``tls_version`` (e.g. ``TLSv1.3``) and ``cipher`` (OpenSSL's name) as negotiated;
      ``alpn_offered``: which of ``h2`` and ``http/1.1`` the server accepts, asked one at a
      time; ``h2`` (bool: ``h2`` is among them);
      ``trusted`` (bool: the chain verifies up to a trusted CA, host name not checked);
      ``verified`` (bool: chain and host name verify, as a pull's client would require);
      ``hostname_match`` (bool: the URL's host is one of the leaf's subjectAltNames, checked
      apart from trust; null when no certificate was seen);
      ``leaf`` {``subject``, ``issuer``, ``sans`` (DNS names, then IP addresses), ``not_before``,
      ``not_after`` (UTC, ``YYYY-MM-DDTHH:MM:SSZ``), ``days_left`` (float, negative once
      expired)}, null when no handshake completed;
      ``chain`` [{``subject``, ``not_after``, ``days_left``}]: every certificate the server sent,
      leaf first; ``min_days_left`` over the leaf and the chain;
      ``seconds``; ``error``: null, or {class, message, status, detail} as for pulls: class
      ``tls`` with ``detail.reason`` ``unknown-ca``, ``expired``, ``hostname-mismatch`` or
      ``handshake`` (no TLS handshake at all, e.g. plain HTTP on the port), or ``refused`` /
      ``timeout`` / ``reset`` when no connection could be had, ``dns`` (with its
      ``detail.reason``) when the host name did not resolve.

    A failed check is data, not an exception: raises ``ActivityFailed`` only for a bad
    ``timeout``, an unknown ``target`` or a CA bundle that is missing or not PEM.
    """
    seconds = float(timeout)
    registry = settings_for(configuration).registry.resolve(secrets, target)
    started = time.perf_counter()
    parts = urlsplit(registry.url)
    result: dict[str, Any]
    if parts.scheme != "https":
        result = {"url": registry.url, **no_facts(tls=False)}
    else:
        endpoint = Endpoint(parts.hostname or "", parts.port or 443, registry.connect_to)
        facts = inspect(endpoint, verify=registry.verify, timeout=seconds, what=registry.url)
        result = {"url": registry.url, **facts}
    result["seconds"] = time.perf_counter() - started
    return result


@activity
def registry_metrics(
    metrics_url: Annotated[
        str, Url(), SandboxUnlessGiven("reads a sandbox replica's metrics")
    ] = "",
    series: list = None,  # type: ignore[type-arg]
    replica: str = "",
    timeout: Seconds = 5.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> Annotated[
    Result,
    Returns(
        "url seconds samples series totals",
        kind=ResultKind.REGISTRY_METRICS,
    ),
]:
    """Scrape a registry's Prometheus endpoint and return the selected series.

    Arguments:
      metrics_url: the ``/metrics`` URL. Empty: the sandbox replica named by ``replica``
        (default the first), or the mirror when ``replica`` is ``mirror``.
      replica: which of the sandbox's registries to scrape when ``metrics_url`` is empty (a
        replica's name, or ``mirror``); empty: the first replica.
      series: metric family names to keep (e.g. ``registry_http_requests_total``; a counter may
        be named with or without ``_total``); empty keeps every ``registry_*`` family.
      timeout: seconds for the scrape.

    Returns a mapping: ``url``, ``seconds``, ``samples`` (count), ``series`` {family name
    (counters without ``_total``): [{``name``, ``labels``, ``value``}]} and ``totals`` {family
    name: sum of its samples}.
    """
    seconds = float(timeout)
    url = metrics_url or _sandbox_metrics_url(configuration, replica)
    if series is not None and (
        not isinstance(series, list) or not all(isinstance(s, str) for s in series)
    ):
        raise ConfigError("series must be a list of metric family names")
    wanted = set(series or [])
    started = time.perf_counter()
    try:
        response = httpx.get(url, timeout=seconds)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise ConfigError(f"cannot scrape {url}: {exc}") from None
    selected: dict[str, list[dict[str, Any]]] = {}
    try:
        families = list(text_string_to_metric_families(response.text))
    except ValueError as exc:
        raise ConfigError(f"{url} did not serve Prometheus text format: {exc}") from None
    for family in families:
        # The parser names a counter family without its "_total"; accept either spelling.
        names = {family.name, f"{family.name}_total"}
        keep = bool(names & wanted) if wanted else family.name.startswith("registry_")
        if keep:
            selected[family.name] = [
                {"name": s.name, "labels": dict(s.labels), "value": s.value} for s in family.samples
            ]
    return {
        "url": url,
        "seconds": time.perf_counter() - started,
        "samples": sum(len(v) for v in selected.values()),
        "series": selected,
        "totals": {name: sum(s["value"] for s in samples) for name, samples in selected.items()},
    }


def _sandbox_metrics_url(configuration: Configuration | None, replica: str) -> str:
    settings = settings_for(configuration).registry
    if settings.sandbox_dir is None:
        raise ConfigError("registry_metrics needs metrics_url or configuration 'sandbox_dir'")
    endpoints = settings.endpoints()
    if replica == "mirror":
        return str(endpoints["mirror_metrics_url"])
    replicas = endpoints.get("replicas") or []
    for entry in replicas:
        if not replica or entry.get("name") == replica:
            if not entry.get("metrics_url"):
                raise ConfigError(
                    f"sandbox replica {entry.get('name')!r} has no metrics endpoint "
                    f"(it runs {endpoints.get('implementation')}); use replica 'mirror'"
                )
            return str(entry["metrics_url"])
    names = ", ".join(str(r.get("name")) for r in replicas)
    raise ConfigError(f"no sandbox replica named {replica!r} (have: {names})")
